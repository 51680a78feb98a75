"Statistical tests of `adaptbench.risk`: p-values and FWER against MAPIE and scipy, and the LTT / CRC guarantees."
import numpy as np
import pytest
from scipy.stats import binom

from adaptbench.risk import (P_VALUES, bonferroni, fixed_sequence, ltt_p_values, ltt_valid, cheapest, crc_index,
                             learn_then_test, hoeffding_bentkus_p, hoeffding_kl_p, binomial_p, bentkus_p)

# ---------------------------------------------------------------- against MAPIE (LTT reference implementation)

try:   # MAPIE (pip install mapie; numpy/scipy/scikit-learn only) is the reference; the other tests run without it
    import mapie.risk_control.methods as mapie_methods
    from mapie.risk_control.fwer_control import control_fwer
    from mapie.risk_control._base_controller import ltt_procedure
except ImportError:
    mapie_methods = None
needs_mapie = pytest.mark.skipif(mapie_methods is None, reason="MAPIE is not installed")

# empirical risks whose n·R̂ is safely away from an integer boundary in float (MAPIE takes a plain ceiling, see
# test_mapie_ceiling_float_artifact), plus R̂ = 0 and R̂ ≥ ε
def _grid(n):
    k = np.arange(n + 1)
    r = k / n
    return r[np.abs(np.ceil(n * r) - k) == 0]

@needs_mapie
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

@needs_mapie
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

@needs_mapie
@pytest.mark.parametrize("seed", range(20))
def test_fwer_matches_mapie(seed):
    rng = np.random.default_rng(seed)
    C = int(rng.integers(1, 40))
    p = np.sort(rng.random(C) ** 3)            # increasing, like a monotone risk grid ordered safest first
    if seed % 2: p = rng.random(C) ** 3        # and unordered ones
    for delta in (0.05, 0.2):
        np.testing.assert_array_equal(np.flatnonzero(bonferroni(p, delta)), control_fwer(p, delta, "bonferroni"))
        np.testing.assert_array_equal(np.flatnonzero(fixed_sequence(p, delta)), control_fwer(p, delta, "fixed_sequence"))

@needs_mapie
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

@needs_mapie
def test_crc_matches_mapie_bound():
    "MAPIE's CRC upper bound is n/(n+1)·R̂ + 1/(n+1) (B = 1)."
    rng = np.random.default_rng(0)
    L = np.maximum.accumulate((rng.random((12, 80)) < np.linspace(0, 0.4, 12)[:, None]).astype(float), axis=0)
    lambdas = np.linspace(0, 1, 12)
    r_hat, r_plus = mapie_methods.get_r_hat_plus(L.T, lambdas, "crc", None, None, None)
    np.testing.assert_allclose(r_plus, 80 / 81 * L.mean(1) + 1 / 81)
    j = crc_index(L.mean(1), 80, 0.2)
    assert (r_plus[: j + 1] <= 0.2).all() and (j == 11 or r_plus[j + 1] > 0.2)


# ---------------------------------------------------------------- exact validity of every p-value (no Monte Carlo)

@pytest.mark.parametrize("name", sorted(P_VALUES))
def test_p_values_are_valid_exactly(name):
    """For 0/1 losses the rejection region {p ≤ α} is {k ≤ k*}; its worst-case probability under the null,
    P(Binomial(n, ε) ≤ k*), must be ≤ α. Checked exactly over a grid of (n, ε, α)."""
    f = P_VALUES[name]
    for n in (5, 10, 37, 50, 200, 1000, 3000):
        k = np.arange(n + 1)
        for eps in (0.02, 0.05, 0.1, 0.3, 0.6):
            p = f(k / n, n, eps)
            assert np.all(np.diff(p) >= -1e-12), "p-value must not decrease as losses grow"
            for alpha in (0.001, 0.01, 0.05, 0.1, 0.2):
                kstar = np.flatnonzero(p <= alpha)
                if len(kstar) == 0: continue
                size = binom.cdf(kstar.max(), n, eps)
                assert size <= alpha + 1e-12, (name, n, eps, alpha, size)
                if name == "binomial":   # the exact test is as large as it can be: one more loss would exceed α
                    assert binom.cdf(kstar.max() + 1, n, eps) > alpha

def test_p_value_ordering_on_0_1_losses():
    "Tighter p-values certify at least as much: binomial ≤ HB ≤ KL-Hoeffding ≤ Hoeffding."
    for n in (20, 300):
        r = np.arange(n + 1) / n
        for eps in (0.05, 0.2):
            assert np.all(binomial_p(r, n, eps) <= hoeffding_bentkus_p(r, n, eps) + 1e-15)
            assert np.all(hoeffding_bentkus_p(r, n, eps) <= hoeffding_kl_p(r, n, eps) + 1e-15)
            assert np.all(hoeffding_kl_p(r, n, eps) <= P_VALUES["hoeffding"](r, n, eps) + 1e-15)


# ---------------------------------------------------------------- the guarantee over random calibration draws

from adaptbench.policies import (SyntheticTraces, UpperThreshold, LowerThreshold, FixedBudget, Combined, AnyOf,
                                 replay)
from adaptbench.core import Replay
from adaptbench.risk import repeat_splits, min_calibration_size

DELTA, SPLITS = 0.1, 1000
SLACK = 3 * np.sqrt(DELTA * (1 - DELTA) / SPLITS)          # 3 binomial standard errors over the splits
METHODS = [(p, f) for p in sorted(P_VALUES) for f in ("bonferroni", "holm", "fixed_sequence")]

def _stacked(pols, traces):
    "Every policy replayed and stacked into one grid: losses name → (C, n), tokens (C, n), paths, configs."
    r = Replay.stack([replay(p, traces) for p in pols])
    return r.loss, r.cost, r.paths, r.configs

def _fresh_calibration(spec, policy, n_cal, n_splits, seed):
    "Fresh iid calibration sets from the generator, replayed at once: per split (K, C) empirical risks."
    out = replay(policy, spec.sample(n_cal * n_splits, seed=seed))
    L = np.stack([out.losses()["wrong"], out.losses()["premature"]])                # (2, C, S·n)
    rh = L.reshape(2, len(policy), n_splits, n_cal).mean(-1)                        # (2, C, S)
    cost = out.tokens.reshape(len(policy), n_splits, n_cal).mean(-1).T               # (S, C)
    return np.moveaxis(rh, -1, 0), cost

def _violations(rh, cost, truth, eps, n, paths, methods=METHODS):
    "Per method: the share of splits whose chosen configuration's TRUE risk exceeds a target, and of no-valid splits."
    ev = np.array(eps)
    tr = np.stack([truth.risk_wrong.values, truth.risk_premature.values])[: len(ev)]   # (K, C)
    res = {}
    for m in methods:
        if m == "naive": valid = (rh[:, : len(ev)] <= ev[:, None]).all(1)
        else: valid = ltt_valid(rh[:, : len(ev)], n, ev, DELTA, m[0], m[1], paths)
        ch = cheapest(valid, cost)
        ok = ch >= 0
        bad = ok & (tr[:, np.maximum(ch, 0)] > ev[:, None] + 1e-12).any(0)
        res[m] = (bad.mean(), 1 - ok.mean())
    return res

def test_ltt_guarantee_upper_threshold_exact_risks():
    """Upper threshold on confidence, 41 thresholds, wrong-answer risk ≤ 0.28: for every p-value × FWER the
    fraction of 1000 fresh calibration draws (n = 400) whose chosen threshold truly exceeds 0.28 is ≤ δ + slack."""
    spec, pol = SyntheticTraces(), UpperThreshold("confidence", np.linspace(1, 0.6, 41))
    truth = spec.exact(pol)
    rh, cost = _fresh_calibration(spec, pol, 400, SPLITS, seed=11)
    res = _violations(rh, cost, truth, [0.28], 400, pol.paths(), METHODS + ["naive"])
    print({("+".join(m) if isinstance(m, tuple) else m): v for m, v in res.items()})
    for m in METHODS: assert res[m][0] <= DELTA + SLACK, (m, res[m])
    assert res["naive"][0] > DELTA + SLACK                    # the check can fail: uncorrected selection does
    assert res[("binomial", "fixed_sequence")][1] < 0.5       # and the tight methods are not vacuous

def test_ltt_guarantee_two_risks_combined_policy():
    """Upper + lower threshold (11 × 8 configurations, 8 fixed-sequence paths), wrong ≤ 0.25 AND premature ≤ 0.06,
    p-values combined by their maximum: violation of either target in ≤ δ + slack of 1000 draws (n = 500)."""
    spec = SyntheticTraces()
    pol = Combined(UpperThreshold("confidence", np.linspace(1, 0.5, 11)),
                   LowerThreshold("confidence", [-np.inf, 0.05, 0.1, 0.15], [0.0, 0.2]))
    truth = spec.exact(pol)
    rh, cost = _fresh_calibration(spec, pol, 500, SPLITS, seed=12)
    res = _violations(rh, cost, truth, [0.25, 0.06], 500, pol.paths(), METHODS + ["naive"])
    print({("+".join(m) if isinstance(m, tuple) else m): v for m, v in res.items()})
    for m in METHODS: assert res[m][0] <= DELTA + SLACK, (m, res[m])
    assert res["naive"][0] > DELTA + SLACK
    assert res[("hoeffding_bentkus", "fixed_sequence")][1] < 0.5

def test_ltt_guarantee_on_a_pool_with_certaindex_ensemble():
    """Any-of(confidence, certaindex) thresholds across three policies stacked (efficiency loss across policies);
    no closed form, so the population is a pool of 60 000 instances (its risks exact for draws with replacement)."""
    spec = SyntheticTraces()
    pool = spec.sample(60_000, seed=5)
    pols = [FixedBudget(spec.t), UpperThreshold("certaindex", [np.inf, 1.0, 2 / 3]),
            AnyOf(UpperThreshold("certaindex", [np.inf, 1.0]), UpperThreshold("confidence", np.linspace(1, 0.7, 31)))]
    losses, tokens, paths, configs = _stacked(pols, pool)
    eps = dict(wrong=0.26, premature=0.02)
    pop = {k: v.mean(1) for k, v in losses.items()}
    methods = METHODS + ["naive"]
    sim = repeat_splits(losses, eps, DELTA, n_cal=800, n_splits=SPLITS, methods=methods, cost=tokens, paths=paths,
                        population_risk=pop, seed=7)
    rates = sim.groupby("method").violation.mean()
    print(rates.to_dict(), sim.groupby("method").chosen.apply(lambda c: (c < 0).mean()).to_dict())
    for m in METHODS: assert rates["+".join(m)] <= DELTA + SLACK, (m, rates["+".join(m)])
    assert rates["naive"] > DELTA + SLACK

def test_ltt_guarantee_near_the_boundary_is_sharp():
    """Bernoulli losses with risks (0.05, 0.1, ε + 0.002, 0.3) along the grid: fixed-sequence testing with the exact
    binomial p-value certifies the third configuration with probability close to, and not above, δ — the MC rate
    matches the exact probability Π_{c ≤ 3} P(Bin(n, R_c) ≤ k*) of rejecting the first three, within binomial noise."""
    rng = np.random.default_rng(0)
    n, eps, S = 300, 0.15, 4000
    risks = np.array([0.05, 0.1, eps + 0.002, 0.3])
    rh = rng.binomial(n, risks, size=(S, 4)) / n                                   # (S, C) iid calibration draws
    for p_value in sorted(P_VALUES):
        ch = cheapest(ltt_valid(rh[:, None], n, [eps], DELTA, p_value, "fixed_sequence"), -np.arange(4.0))
        rate = (risks[np.maximum(ch, 0)] > eps).mean()
        k = np.arange(n + 1)
        kstar = k[P_VALUES[p_value](k / n, n, eps) <= DELTA].max()
        exact = np.prod(binom.cdf(kstar, n, risks[:3]))      # columns are independent: all of the first three rejected
        assert rate <= DELTA + 3 * np.sqrt(DELTA * (1 - DELTA) / S), (p_value, rate)
        assert abs(rate - exact) <= 4 * np.sqrt(exact * (1 - exact) / S) + 1e-3, (p_value, rate, exact)
        if p_value == "binomial": assert rate > 0.6 * DELTA     # the exact test is nearly exhausting δ

def test_crc_expected_risk():
    """Conformal risk control of the premature-stop risk (monotone along a descending threshold grid), ε = 0.05,
    n = 200: the mean TRUE risk of λ̂ over 2000 fresh calibration draws is ≤ ε + 3 SE, and CRC is not vacuous."""
    spec, pol = SyntheticTraces(), UpperThreshold("confidence", np.linspace(1, 0.5, 51))
    truth = spec.exact(pol).risk_premature.values
    S, n = 2000, 200
    out = replay(pol, spec.sample(S * n, seed=21))
    L = out.losses()["premature"]
    assert (np.diff(L, axis=0) >= 0).all()                                        # monotone per instance
    rh = L.reshape(len(pol), S, n).mean(-1).T                                      # (S, C)
    ch = crc_index(rh, n, 0.05)
    assert (ch >= 0).all()
    r = truth[ch]
    print(f"CRC: mean true risk {r.mean():.4f} (ε = 0.05), sd {r.std():.4f}")
    assert r.mean() <= 0.05 + 3 * r.std() / np.sqrt(S)
    assert r.mean() > 0.03
    # the high-probability LTT choice on the same draws is more conservative on average
    ltt = cheapest(ltt_valid(rh[:, None], n, [0.05], DELTA, "binomial", "fixed_sequence"), -np.arange(len(pol), dtype=float))
    assert truth[np.maximum(ltt, 0)].mean() < r.mean()

def test_no_valid_configuration_reports_n_min_that_suffices():
    "A too-small calibration set returns no valid configuration; at the reported n_min, zero losses certify."
    L = np.zeros((5, 20))
    res = learn_then_test(L, 0.05, 0.1)
    assert not res.ok and res.n_min > 20
    assert learn_then_test(np.zeros((5, int(res.n_min))), 0.05, 0.1).ok
    assert not learn_then_test(np.zeros((5, int(res.n_min) - 1)), 0.05, 0.1).ok
    for p in sorted(P_VALUES):
        nb = min_calibration_size(0.05, 0.1 / 5, p)
        assert learn_then_test(np.zeros((5, int(nb))), 0.05, 0.1, p_value=p, fwer="bonferroni").ok
        assert not learn_then_test(np.zeros((5, int(nb) - 1)), 0.05, 0.1, p_value=p, fwer="bonferroni").ok

def test_splits_do_not_align_with_the_generator_seed():
    """Regression: splits drawn with seed s from the same stream as traces drawn with seed s put all the solvable
    instances in the calibration half (split 0 once showed test wrong-risk 0.48 against 0.24 in the pool)."""
    tr = SyntheticTraces().sample(600, seed=0)
    W = replay(FixedBudget([tr.budget]), tr).losses()["wrong"]                       # (1, 600)
    sim = repeat_splits(dict(wrong=W), dict(wrong=0.99), 0.1, n_cal=300, n_splits=300, methods=["naive"], seed=0)
    p = W.mean()
    sd = np.sqrt(p * (1 - p) / 300 * (300 / 599))                                    # hypergeometric sd of a half
    assert np.abs(sim.risk_wrong - p).max() < 5 * sd

def test_crc_in_repeat_splits_monotonises_per_instance():
    """Non-monotone losses (independent Bernoulli per configuration): `repeat_splits` runs CRC on each instance's
    running max, so the mean true risk of its choice stays ≤ ε — and is well below what the raw risk curve allows."""
    rng = np.random.default_rng(3)
    risks = np.linspace(0.0, 0.3, 16)
    L = (rng.random((16, 20_000)) < risks[:, None]).astype(float)                   # (C, N), not monotone per instance
    pop = L.mean(1)
    sim = repeat_splits(dict(r=L), dict(r=0.1), 0.1, n_cal=300, n_splits=1000, methods=["crc"],
                        population_risk=dict(r=pop), seed=1)
    r = sim.risk_r.fillna(0.0)                                                        # no valid configuration: loss 0
    assert r.mean() <= 0.1 + 3 * r.std() / np.sqrt(len(r))
    assert r.mean() < 0.06                            # the running max (risk 1 − Π(1 − r_j)) is conservative here


# ---------------------------------------------------------------- the guarantee on real recorded traces

import pandas as pd
from pathlib import Path
from adaptbench.policies import from_tables, standard_policies

TRACES = Path(__file__).resolve().parents[1] / "data" / "traces" / "smollm2-addition"
REAL_EPS = dict(wrong=0.5, premature=0.1)

def _real_pool():
    "The shipped SmolLM2 probed traces, all five standard mechanisms stacked (efficiency loss across them)."
    tr = from_tables(pd.read_parquet(TRACES / "probes.parquet"), pd.read_parquet(TRACES / "instances.parquet"))
    pols = list(standard_policies("confidence", budget=tr.budget, n_budgets=tr.n_probes, other_signal="certaindex").values())
    return tr, _stacked(pols, tr)

def test_ltt_guarantee_on_recorded_smollm2_traces_population():
    """Real traces, the pool as the population: calibration sets of n = 200 drawn iid from the shipped SmolLM2 traces,
    so each configuration's true risks are its pool means. For every p-value × FWER, over 1000 draws, the share whose
    chosen configuration truly exceeds a target is ≤ δ + slack; uncorrected selection exceeds it."""
    tr, (losses, tokens, paths, configs) = _real_pool()
    pop = {k: v.mean(1) for k, v in losses.items()}
    sim = repeat_splits(losses, REAL_EPS, DELTA, n_cal=200, n_splits=SPLITS, methods=METHODS + ["naive"], cost=tokens,
                        paths=paths, population_risk=pop, seed=31)
    rates = sim.groupby("method").violation.mean()
    none = sim.groupby("method").chosen.apply(lambda c: (c < 0).mean())
    print(rates.round(3).to_dict(), none.round(3).to_dict())
    for m in METHODS: assert rates["+".join(m)] <= DELTA + SLACK, (m, rates["+".join(m)])
    assert rates["naive"] > DELTA + SLACK                                       # the check can fail
    assert none["binomial+fixed_sequence"] < 0.5                                # and LTT is not vacuous here

def test_ltt_guarantee_on_recorded_smollm2_traces_splits():
    """Real traces, random calibration/test splits (half and half, without replacement): for every p-value × FWER the
    share of 1000 splits whose chosen configuration's risk on the held-out half exceeds a target is ≤ δ + slack."""
    tr, (losses, tokens, paths, configs) = _real_pool()
    sim = repeat_splits(losses, REAL_EPS, DELTA, n_cal=tr.n // 2, n_splits=SPLITS, methods=METHODS, cost=tokens,
                        paths=paths, seed=32)
    rates = sim.groupby("method").violation.mean()
    print(rates.round(3).to_dict())
    for m in METHODS: assert rates["+".join(m)] <= DELTA + SLACK, (m, rates["+".join(m)])


# ---------------------------------------------------------------- one validity check for every entry point; Holm

from adaptbench.risk import holm, check_procedure, RiskInputError, FWER

def test_binomial_p_value_refused_on_non_binary_losses_everywhere():
    """Replayed report: `repeat_splits` certified constant 0.13 losses at ε = 0.2 with the exact binomial p-value (valid
    for 0/1 losses only) in 10 of 10 splits. Every entry point that takes a p-value name now refuses it."""
    L = np.full((1, 200), 0.13)
    with pytest.raises(RiskInputError, match="0/1 losses only"):
        repeat_splits({"r": L}, {"r": 0.2}, 0.1, n_cal=100, n_splits=10, methods=(("binomial", "fixed_sequence"),))
    with pytest.raises(RiskInputError, match="0/1 losses only"):
        learn_then_test(L, 0.2, 0.1, p_value="binomial")
    with pytest.raises(RiskInputError, match="0/1 losses only"):       # 13.5 losses out of 100: not 0/1 data
        ltt_valid(np.array([[0.135]]), 100, [0.2], 0.1, "binomial")
    with pytest.raises(RiskInputError, match="0/1 losses only"):
        ltt_p_values(np.array([[0.135]]), 100, [0.2], "binomial")
    with pytest.raises(RiskInputError, match="unknown p_value"):
        min_calibration_size(0.1, 0.1, "binom")
    # a valid p-value on the same losses certifies the configuration in none of the splits
    sim = repeat_splits({"r": L}, {"r": 0.2}, 0.1, n_cal=100, n_splits=10, methods=(("hoeffding_bentkus", "fixed_sequence"),))
    assert (sim.chosen < 0).all()
    # 0/1 losses still pass every entry point
    B = (np.random.default_rng(0).random((3, 200)) < 0.05).astype(float)
    assert learn_then_test(B, 0.2, 0.1, p_value="binomial").ok
    sim = repeat_splits({"r": B}, {"r": 0.2}, 0.1, n_cal=100, n_splits=10, methods=(("binomial", "holm"),))
    assert (sim.chosen >= 0).all()

def test_check_procedure_is_the_one_check():
    check_procedure("binomial", "holm", losses={"a": np.array([[0.0, 1.0]])}, risk_hat=np.array([0.07]), n=100)
    with pytest.raises(RiskInputError, match="unknown fwer"): check_procedure("binomial", "hochberg")
    with pytest.raises(RiskInputError, match="0/1 losses only"): check_procedure("binomial", losses={"a": [[0.5]]})
    check_procedure("hoeffding_bentkus", losses={"a": [[0.5]]}, risk_hat=0.135, n=100)   # valid for any loss in [0, 1]

def test_fixed_sequence_stopped_early_says_so():
    """Replayed report: configuration 0 always fails and stops the sequence while configuration 1 would pass with
    p ≈ 2.7e-5; the result used to ask for n ≥ 22 instances (it had 100). It must say that the order is the cause."""
    res = learn_then_test(np.vstack([np.ones(100), np.zeros(100)]), 0.1, 0.1)
    assert not res.ok and res.stopped_early
    g = res.guarantee
    assert "stopped early" in g and "safest first" in g and "configuration 1" in g, g
    assert "n = 22" not in g
    np.testing.assert_allclose(res.p_values[1], 0.9 ** 100, rtol=1e-9)     # Hoeffding–Bentkus at R̂ = 0: (1 − ε)ⁿ
    # several paths: the message names the first configuration of each; the per-path level is δ/2
    res2 = learn_then_test(np.vstack([np.ones(100), np.ones(100), np.zeros(100)]), 0.1, 0.1, paths=[[0, 2], [1]])
    assert res2.stopped_early and "configuration 0, 1" in res2.guarantee and "0.05" in res2.guarantee
    # genuinely too little data: the old explanation, with the n that would help
    small = learn_then_test(np.zeros((2, 10)), 0.1, 0.1)
    assert not small.stopped_early and "n = 22" in small.guarantee
    # Bonferroni / Holm never stop early
    assert not learn_then_test(np.ones((2, 10)), 0.1, 0.1, fwer="holm").stopped_early

@needs_mapie
@pytest.mark.parametrize("seed", range(20))
def test_holm_matches_mapie(seed):
    "Holm's step-down procedure against MAPIE's `bonferroni_holm` (sequential graphical testing) on the same p-values."
    rng = np.random.default_rng(100 + seed)
    C = int(rng.integers(1, 40))
    p = rng.random(C) ** (2 + seed % 4)
    if seed % 3 == 0: p[rng.integers(0, C, C // 2)] = p[0]                  # ties
    for delta in (0.05, 0.1, 0.2):
        np.testing.assert_array_equal(np.flatnonzero(holm(p, delta)), np.sort(control_fwer(p, delta, "bonferroni_holm")))

def test_holm_known_answer_and_power():
    "Holm (1979) by hand, batched, and never fewer rejections than Bonferroni on the same p-values."
    p = np.array([0.01, 0.04, 0.03, 0.005])                                  # sorted: .005 .01 .03 .04 vs δ/4, δ/3, δ/2, δ
    np.testing.assert_array_equal(holm(p, 0.1), [True, True, True, True])
    np.testing.assert_array_equal(holm(p, 0.05), [True, False, False, True])  # .005 ≤ .0125, .01 ≤ .0167, .03 > .025
    rng = np.random.default_rng(1)
    P = rng.random((500, 12)) ** 4
    H, B = holm(P, 0.1), bonferroni(P, 0.1)
    assert (H >= B).all() and (H.sum() > B.sum())
    for row in range(0, 500, 50): np.testing.assert_array_equal(H[row], holm(P[row], 0.1))
    assert "holm" in FWER
    # everywhere FWER names are accepted
    rh = np.array([[0.0, 0.3, 0.0]])
    np.testing.assert_array_equal(ltt_valid(rh, 200, [0.2], 0.1, fwer="holm"), [True, False, True])
    assert learn_then_test(np.vstack([np.ones(100), np.zeros(100)]), 0.1, 0.1, fwer="holm").chosen == 1
