"""Learn-then-Test guarantee of the calibrated early-finish threshold (`adaptbench.parallel`), over a (k, m) grid with
one fixed-sequence path per k, at several targets: over 1000 calibration draws from a pool with known risks, the share
whose chosen configuration truly exceeds ε stays ≤ δ + 3 binomial standard errors."""
import numpy as np
import pytest

from adaptbench.parallel import EarlyFinish, calibrate_early_finish, synthetic_records
from adaptbench.risk import cheapest, ltt_valid, repeat_splits

DELTA, SPLITS = 0.1, 1000
SLACK = 3 * np.sqrt(DELTA * (1 - DELTA) / SPLITS)
METHODS = [("binomial", "fixed_sequence"), ("hoeffding_bentkus", "fixed_sequence"), ("binomial", "holm")]


@pytest.fixture(scope="module")
def pool():
    recs = synthetic_records(30_000, k=8, difficulty=(4.0, 1.0), seed=11)
    rep = EarlyFinish([2, 4, 8]).replay(recs)
    return recs, rep, {k: v.mean(1) for k, v in rep.loss.items()}


@pytest.mark.parametrize("k,m", [(8, 3), (4, 2), (2, 1)])
def test_violation_rate_at_most_delta(pool, k, m):
    """ε 0.003 below the true error risk of (k, m), a configuration cheaper than the safe ones: uncorrected selection
    ('naive': the cheapest with empirical risk ≤ ε) picks it in > δ of the draws, Learn-then-Test in ≤ δ + slack."""
    _, rep, pop = pool
    c = int(np.flatnonzero((rep.configs.k == k) & (rep.configs.m == m))[0])
    eps = float(pop["wrong"][c]) - 0.003
    sim = repeat_splits(rep.loss, dict(wrong=eps), DELTA, n_cal=400, n_splits=SPLITS, cost=rep.cost, paths=rep.paths,
                        methods=METHODS + ["naive"], population_risk=pop, seed=5)
    rates = sim.groupby("method").violation.mean()
    for meth in METHODS: assert rates["+".join(meth)] <= DELTA + SLACK, (meth, eps, rates.to_dict())
    assert rates["naive"] > DELTA + SLACK, ("the check could not fail here", rates.to_dict())
    certified = sim[sim.method == "binomial+fixed_sequence"].chosen >= 0
    assert certified.mean() > 0.1, "the test would be vacuous if nothing were ever certified"


def test_calibrate_matches_the_vectorised_ltt(pool):
    "`calibrate_early_finish` on one split chooses what the vectorised LTT chooses on the same losses and paths."
    recs, rep, pop = pool
    eps = float(np.median(pop["wrong"]))
    for seed in range(5):
        idx = np.random.default_rng(seed).choice(recs.n, 400, replace=False)
        cal = calibrate_early_finish(recs.subset(idx), eps, DELTA, ks=[2, 4, 8])
        L = rep.loss["wrong"][:, idx]
        want = int(cheapest(ltt_valid(L.mean(1)[None], 400, [eps], DELTA, "binomial", "fixed_sequence", rep.paths),
                            rep.cost[:, idx].mean(1)))
        assert (cal.chosen if cal.ok else -1) == want
