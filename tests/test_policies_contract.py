"""The stopping-policy contract, for every policy in `policies.POLICIES` (its `example()` grid): the vectorised replay
of the grid equals the replay of each selected configuration alone, configurations and paths agree, and a policy
judges each instance on its own trace (the live stopper replays one-row traces)."""
import numpy as np
import pytest

from adaptbench.policies import POLICIES, SyntheticTraces, replay


@pytest.fixture(scope="module")
def traces():
    return SyntheticTraces(n_probes=8, interval=16).sample(120, seed=3)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_policy_contract(name, traces):
    p = POLICIES[name].example()
    C = len(p)
    assert C >= 2 and len(p.configs()) == C
    flat = np.concatenate(p.paths())
    assert sorted(flat.tolist()) == list(range(C)), "fixed-sequence paths must cover every configuration once"
    grid = replay(p, traces)
    for i in range(C):
        one = replay(p.select(i), traces)
        assert len(p.select(i)) == 1
        for risk in grid.loss:
            np.testing.assert_array_equal(one.loss[risk][0], grid.loss[risk][i])
        np.testing.assert_array_equal(one.cost[0], grid.cost[i])
    stop, abandon = p.fire(traces)
    sub = traces.subset(np.arange(0, traces.n, 7))
    s2, a2 = p.fire(sub)
    np.testing.assert_array_equal(s2, stop[:, ::7]); np.testing.assert_array_equal(a2, abandon[:, ::7])


def test_every_study_mechanism_is_a_registered_kind():
    "The mechanisms the studies compare are built from registered policies (or their any-of combinations)."
    from adaptbench.policies import _Product, standard_policies
    kinds = tuple(POLICIES.values())
    for name, p in standard_policies().items():
        parts = p.policies if isinstance(p, _Product) else (p,)
        assert all(isinstance(q, kinds) for q in parts), name
