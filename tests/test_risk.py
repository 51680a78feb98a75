"Statistical tests of `adaptbench.risk`: p-values and FWER against MAPIE and scipy, and the LTT / CRC guarantees."
import numpy as np
import pytest
from scipy.stats import binom

from adaptbench.risk import (P_VALUES, bonferroni, fixed_sequence, ltt_p_values, ltt_valid, cheapest, crc_index,
                             learn_then_test, hoeffding_bentkus_p, hoeffding_kl_p, binomial_p, bentkus_p)

# ---------------------------------------------------------------- against MAPIE (LTT reference implementation)

mapie_methods = pytest.importorskip("mapie.risk_control.methods")
from mapie.risk_control.fwer_control import control_fwer
from mapie.risk_control._base_controller import ltt_procedure

# empirical risks whose n·R̂ is safely away from an integer boundary in float (MAPIE takes a plain ceiling, see
# test_mapie_ceiling_float_artifact), plus R̂ = 0 and R̂ ≥ ε
def _grid(n):
    k = np.arange(n + 1)
    r = k / n
    return r[np.abs(np.ceil(n * r) - k) == 0]

@pytest.mark.parametrize("n", [10, 57, 200, 1000])
@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_hoeffding_bentkus_matches_mapie(n, eps):
    r = _grid(n)
    ours = hoeffding_bentkus_p(r, n, eps)
    theirs = mapie_methods.compute_hoeffding_bentkus_p_value(r, n, eps, binary=False)[:, 0]
    np.testing.assert_allclose(np.minimum(ours, 1), np.minimum(theirs, 1), rtol=1e-10, atol=1e-300)
    # MAPIE's binary=True variant is min(tighter Hoeffding, exact binomial)
    theirs_b = mapie_methods.compute_hoeffding_bentkus_p_value(r, n, eps, binary=True)[:, 0]
    np.testing.assert_allclose(np.minimum(hoeffding_kl_p(r, n, eps), binomial_p(r, n, eps)), theirs_b, rtol=1e-10, atol=1e-300)

def test_mapie_ceiling_float_artifact():
    "Where k/n·n lands above k in float, MAPIE's ceil counts k+1 losses (conservative); we count k, like scipy on k."
    n, k, eps = 100, 7, 0.1
    assert np.ceil(n * (k / n)) == k + 1
    np.testing.assert_allclose(binomial_p(k / n, n, eps), binom.cdf(k, n, eps), rtol=1e-12)
    theirs = mapie_methods.compute_hoeffding_bentkus_p_value(np.array([k / n]), n, eps, binary=True)[0, 0]
    assert theirs >= binomial_p(k / n, n, eps)

def test_p_values_against_scipy():
    for n in (13, 100):
        for eps in (0.05, 0.2):
            k = np.arange(n + 1)
            np.testing.assert_allclose(binomial_p(k / n, n, eps), binom.cdf(k, n, eps), rtol=1e-12)
            np.testing.assert_allclose(bentkus_p(k / n, n, eps), np.minimum(1, np.e * binom.cdf(k, n, eps)), rtol=1e-12)
            # continuous losses: Bentkus rounds n·R̂ up
            np.testing.assert_allclose(bentkus_p((k[:-1] + 0.3) / n, n, eps), np.minimum(1, np.e * binom.cdf(k[:-1] + 1, n, eps)))

@pytest.mark.parametrize("seed", range(20))
def test_fwer_matches_mapie(seed):
    rng = np.random.default_rng(seed)
    C = int(rng.integers(1, 40))
    p = np.sort(rng.random(C) ** 3)            # increasing, like a monotone risk grid ordered safest first
    if seed % 2: p = rng.random(C) ** 3        # and unordered ones
    for delta in (0.05, 0.2):
        np.testing.assert_array_equal(np.flatnonzero(bonferroni(p, delta)), control_fwer(p, delta, "bonferroni"))
        np.testing.assert_array_equal(np.flatnonzero(fixed_sequence(p, delta)), control_fwer(p, delta, "fixed_sequence"))

@pytest.mark.parametrize("seed", range(10))
def test_ltt_multi_risk_matches_mapie(seed):
    "Several risks at once: max of the per-risk p-values, then Bonferroni — as MAPIE's ltt_procedure."
    rng = np.random.default_rng(seed)
    n, C, K = 300, 25, 2
    r_hat = np.round(rng.random((K, C)) * 0.3 * n) / n
    r_hat = np.where(np.abs(np.ceil(n * r_hat) - np.round(n * r_hat)) > 0, r_hat - 1e-12, r_hat)   # dodge the ceil artifact
    alphas = np.array([[0.1], [0.2]])
    valid_idx, p_m = ltt_procedure(r_hat, alphas, 0.1, np.full((K, C), n), binary=False, fwer_method="bonferroni")
    p = ltt_p_values(r_hat, n, alphas[:, 0], "hoeffding_bentkus")
    np.testing.assert_allclose(p, p_m[:, 0], rtol=1e-9)
    np.testing.assert_array_equal(np.flatnonzero(ltt_valid(r_hat, n, alphas[:, 0], 0.1, fwer="bonferroni")), valid_idx[0])

def test_crc_matches_mapie_bound():
    "MAPIE's CRC upper bound is n/(n+1)·R̂ + 1/(n+1) (B = 1)."
    rng = np.random.default_rng(0)
    L = np.maximum.accumulate((rng.random((12, 80)) < np.linspace(0, 0.4, 12)[:, None]).astype(float), axis=0)
    lambdas = np.linspace(0, 1, 12)
    r_hat, r_plus = mapie_methods.get_r_hat_plus(L.T, lambdas, "crc", None, None, None)
    np.testing.assert_allclose(r_plus, 80 / 81 * L.mean(1) + 1 / 81)
    j = crc_index(L.mean(1), 80, 0.2)
    assert (r_plus[: j + 1] <= 0.2).all() and (j == 11 or r_plus[j + 1] > 0.2)
