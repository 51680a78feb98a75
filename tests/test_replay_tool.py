"""tools/replay_speculative.py: the policy replay prices steps the way `speculative_generate` runs them."""
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import replay_speculative as rs  # noqa: E402
from adaptbench.speculative import DraftRecords, FixedGamma, HeuristicGamma  # noqa: E402


def costs(**kw):
    c = dict(draft_prefill=0.0, target_prefill=1.0, d1=0.0, d2=0.0, gen_token=1.0, **{f"V{t}": 1.0 for t in range(1, 14)})
    c.update(kw)
    return c


def stats(n, right=True, p=1.0):
    "Draft records of one n-token reply (its budget), the draft always right or always wrong, with probability p."
    ref = list(range(100, 100 + n))
    return DraftRecords([[1, 2]], [ref], [ref if right else [t + 1 for t in ref]], [[p] * n], max_new_tokens=n)


def test_a_perfect_free_draft_gives_gamma_plus_one_tokens_per_pass():
    # 8 tokens, γ 3: the prefill verifies 3 drafts (4 tokens), one more pass the other 4; generate: prefill + 7 steps
    r = rs.replay(stats(8), costs(), 0.0, FixedGamma(3))
    assert r["tokens_per_step"] == 4 and r["acceptance"] == 1
    assert r["speedup"] == pytest.approx((1 + 7) / (1 + 1))


def test_a_wrong_draft_yields_one_token_per_pass_and_pays_its_steps():
    r = rs.replay(stats(8, right=False), costs(d1=0.25, V2=1.5), 0.0, FixedGamma(1))
    assert r["acceptance"] == 0 and r["tokens_per_step"] == 1
    # 7 passes with one rejected draft (the first draft step is the draft's prefill, 0 here), a last one with no room
    spec = 0.0 + 6 * 0.25 + 7 * 1.5 + 1.0
    assert r["speedup"] == pytest.approx(8 / spec)


def test_stop_below_ends_each_draft_after_an_unsure_token():
    r = rs.replay(stats(8, p=0.3), costs(), 0.5, FixedGamma(4))
    assert r["drafted_per_step"] == 1 and r["tokens_per_step"] == 2       # one kept draft + the target's token


def test_after_a_fully_kept_draft_the_next_step_feeds_two_tokens():
    c = costs(draft_prefill=0.5, d1=0.1, d2=0.2)
    r = rs.replay(stats(8), c, 0.0, FixedGamma(3))
    spec = (1.0 - 1.0) + 0.5 + 2 * 0.1 + 1.0 + 0.2 + 2 * 0.1 + 1.0
    assert r["speedup"] == pytest.approx(8 / spec)
    cheaper = rs.replay(stats(8), c, 0.0, FixedGamma(3), draft_scale=0.5)
    assert cheaper["speedup"] == pytest.approx(8 / (spec - (0.5 + 2 * 0.1 + 0.2 + 2 * 0.1) / 2))   # draft costs halved


def test_heuristic_gamma_grows_while_drafts_are_kept():
    fixed = rs.replay(stats(40), costs(), 0.0, FixedGamma(3))
    grown = rs.replay(stats(40), costs(), 0.0, HeuristicGamma(start=3, max_gamma=12))
    assert grown["tokens_per_step"] > fixed["tokens_per_step"] == 4


def test_a_verify_longer_than_measured_is_an_error_not_a_guess():
    c = {k: v for k, v in costs().items() if k not in ("V5", "V6")}
    with pytest.raises(ValueError, match="5-token verify"):
        rs.replay(stats(8), c, 0.0, FixedGamma(4))
