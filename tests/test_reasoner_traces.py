"""The shipped probed traces of the trained reasoner, and the risk study's defaults on them (issue 17): schema, the
recording model in the traces' meta, what the study and its dashboard certify, and clear
errors for levels outside (0, 1), an empty calibration split, and a live run of another model; the held-out traces
of issue 30 (unsolvable instances, no training pair, fresh draws disjoint from the pool)."""
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adaptbench.calibrate import calibrate
from adaptbench.core import ParameterError
from adaptbench.policies import INSTANCE_COLUMNS, PROBE_COLUMNS, TraceTableError, from_tables, replay, standard_policies, trace_settings
from adaptbench.risk import RiskInputError
from adaptbench.catalogue import parameters_cell, study_path

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "data" / "traces" / "smollm2-reasoner"
ADAPTER = ROOT / "data" / "reasoner" / "smollm2-135m-reasoner" / "adapter.json"
STUDY = "risk_controlled_budgets"


def _defaults() -> dict:
    "The study's parameters cell, as Run All leaves it."
    ns = {}
    exec(parameters_cell(STUDY), ns)
    return {k: v for k, v in ns.items() if not k.startswith("__")}


def _tables():
    return pd.read_parquet(TRACES / "probes.parquet"), pd.read_parquet(TRACES / "instances.parquet")


def _study_calibration(d, folder, **over):
    "The study's one calibration at its parameters `d` (with `over`) on the traces in `folder`: the notebook's split, mechanisms and LTT."
    d = dict(d, **over)
    tr = from_tables(pd.read_parquet(folder / "probes.parquet"), pd.read_parquet(folder / "instances.parquet"))
    sig = [s.strip() for s in d["signals"].split(",")]
    allp = standard_policies(sig[0], budget=tr.budget, n_budgets=tr.n_probes, other_signal=sig[1] if len(sig) > 1 else None)
    mech = {k: allp[k] for k in (p.strip() for p in d["policies"].split(";")) if k}
    perm = np.random.default_rng([0xCA1, d["seed"]]).permutation(tr.n)
    k = int(round(d["cal_fraction"] * tr.n))
    cal = tr.subset(perm[:k])
    eps = dict(wrong=d["eps_wrong"], premature=d["eps_premature"])
    return tr, mech, cal, tr.subset(perm[k:]), calibrate([replay(p, cal) for p in mech.values()], eps, d["delta"], d["p_value"], d["fwer"])


def test_shipped_reasoner_traces_follow_the_schema_and_name_their_model():
    probes, inst = _tables()
    assert set(PROBE_COLUMNS) <= set(probes.columns)
    assert set(INSTANCE_COLUMNS) | {"family", "n", "task", "model"} <= set(inst.columns)
    tr = from_tables(probes, inst)
    assert tr.model == "smollm2-135m-reasoner"
    assert trace_settings(tr) == dict(budget=128.0, probe_interval=8, model="smollm2-135m-reasoner")
    assert tr.n == len(inst) >= 400 and set(inst.family) == {"addition"} and sorted(inst.n.unique()) == [1, 2, 3, 4]
    assert (inst.final_tokens <= 128 + probes.probe_tokens.max()).all()
    assert sum(p.stat().st_size for p in TRACES.iterdir()) < 2 * 2**20          # small enough to ship
    readme = (TRACES / "README.md").read_text()
    assert json.loads(ADAPTER.read_text())["sha256"][:12] in readme           # the adapter that recorded them


def test_study_defaults_are_valid_levels_and_skip_the_live_run():
    d = _defaults()
    assert all(0 < d[k] < 1 for k in ("eps_wrong", "eps_premature", "delta", "cal_fraction"))
    assert d["live_instances"] == 0 and d["force_live"] is False


HELD_OUT, FRESH = ROOT / "data" / "traces" / "smollm2-reasoner-held-out", ROOT / "data" / "traces" / "smollm2-reasoner-held-out-fresh"


def test_held_out_traces_hold_unsolvable_instances_and_no_training_pair():
    """The risk study's traces (issue 30): additions of 2–6 digits with a substantial unsolvable share at the full budget,
    none of them a training instance of the organism, and fresh draws that share no instance with the pool."""
    import ast
    from adaptbench.reasoner import training_instances
    from adaptbench.tasks import instance_key
    train = {instance_key(i) for i in training_instances()}
    keys = {}
    for folder in (HELD_OUT, FRESH):
        probes, inst = pd.read_parquet(folder / "probes.parquet"), pd.read_parquet(folder / "instances.parquet")
        tr = from_tables(probes, inst)
        assert tr.model == "smollm2-135m-reasoner" and set(inst.family) == {"addition"} and sorted(inst.n.unique()) == [2, 3, 4, 5, 6]
        settings = trace_settings(tr)
        assert {k: settings[k] for k in ("budget", "probe_interval", "model")} == dict(budget=192.0, probe_interval=16, model="smollm2-135m-reasoner")
        assert settings["weights"] == inst.weights.iloc[0] and len(settings["weights"]) == 32   # the weights fingerprint
        assert inst.groupby("n").size().nunique() == 1                               # balanced strata
        assert 1 - inst.final_correct.mean() >= 0.25                                 # unsolvable instances
        keys[folder.name] = {ast.literal_eval(k) if isinstance(k, str) else k for k in inst.key}
        assert len(keys[folder.name]) == len(inst) and not keys[folder.name] & train    # distinct, never trained on
        readme = (folder / "README.md").read_text()
        assert json.loads(ADAPTER.read_text())["sha256"] in readme and "tools/record_risk_traces.py" in readme
        assert sum(p.stat().st_size for p in folder.iterdir()) < 2 * 2**20
    assert not keys[HELD_OUT.name] & keys[FRESH.name]
    assert len(keys[HELD_OUT.name]) == 600 and len(keys[FRESH.name]) == 200


def test_study_defaults_name_the_held_out_traces_and_a_headline():
    d = _defaults()
    assert (d["trace_source"], d["fresh_source"]) == ("data/traces/smollm2-reasoner-held-out", "data/traces/smollm2-reasoner-held-out-fresh")
    mechanisms = [p.strip() for p in d["policies"].split(";")]
    assert d["headline"] in mechanisms + ["all (efficiency loss)"] and d["splits"] >= 200
    assert "upper" in mechanisms and "upper + lower" in mechanisms                 # the lower threshold's marginal effect


def test_a_target_below_what_n_calibration_traces_can_show_certifies_nothing_and_says_why():
    """Known answer: with n calibration instances and zero observed losses the binomial bound is 1 − δ^(1/n) (0.0082 at
    n = 280, δ = 0.1), so ε_wrong = 0.005 is out of reach for any rule; the calibration and the dashboard say so."""
    d = _defaults()
    tr, mech, cal, test, res = _study_calibration(d, TRACES, eps_wrong=0.005)
    assert 1 - d["delta"] ** (1 / cal.n) > 0.005
    assert not res.ok and "no valid configuration" in res.guarantee
    pytest.importorskip("ipywidgets")
    from adaptbench.dashboards.risk import RiskDashboard
    dash = RiskDashboard.from_tables(*_tables(), eps=(0.005, d["eps_premature"]), delta=0.1, cal_fraction=d["cal_fraction"],
                                     p_value=d["p_value"], fwer=d["fwer"], policy="upper + lower")
    assert not dash.result.ok and "<b>no valid configuration</b>" in dash.info.value


def test_dashboard_at_the_study_defaults_opens_and_certifies_where_the_target_is_reachable():
    """At the study's defaults the dashboard opens on its split and says what it certified (or that nothing was);
    at a wrong-answer target above the unsolvable share (the largest of `eps_wrong_grid`) it opens on a certified choice."""
    pytest.importorskip("ipywidgets")
    from adaptbench.dashboards.risk import RiskDashboard
    d = _defaults()
    folder = ROOT / d["trace_source"]
    tables = pd.read_parquet(folder / "probes.parquet"), pd.read_parquet(folder / "instances.parquet")
    kw = dict(delta=d["delta"], cal_fraction=d["cal_fraction"], seed=d["seed"], p_value=d["p_value"], fwer=d["fwer"])
    _, _, _, _, res = _study_calibration(d, folder)
    dash = RiskDashboard.from_tables(*tables, eps=(d["eps_wrong"], d["eps_premature"]), policy="upper + lower", **kw)
    assert ("<b>chosen</b>" in dash.info.value) == dash.result.ok
    if not res.ok: assert "no valid configuration" in res.guarantee
    e_w = max(d["eps_wrong_grid"])
    _, _, _, _, res = _study_calibration(d, folder, eps_wrong=e_w)
    assert res.ok, res.guarantee
    dash = RiskDashboard.from_tables(*tables, eps=(e_w, d["eps_premature"]), policy=res.chosen_config["policy"], **kw)
    assert dash.result.ok and "<b>chosen</b>" in dash.info.value
    dash.delta.value = 0.01                                                   # the sliders re-calibrate
    assert dash.delta.value == 0.01 and 10 ** dash.eps_wrong.min == pytest.approx(0.001)   # a log-scale slider


def test_levels_outside_0_1_and_an_empty_calibration_split_are_clear_errors():
    tr = from_tables(*_tables())
    rep = replay(standard_policies("confidence", budget=tr.budget, n_budgets=4, other_signal=None)["upper"], tr)
    for eps, delta in [(dict(wrong=0.0, premature=0.1), 0.1), (dict(wrong=0.05, premature=1.0), 0.1),
                       (dict(wrong=0.05, premature=0.1), 0.0), (dict(wrong=0.05, premature=0.1), 1.5)]:
        with pytest.raises(RiskInputError, match="strictly between 0 and 1"): calibrate(rep, eps, delta, "binomial")
    upper = standard_policies("confidence", budget=tr.budget, n_budgets=4, other_signal=None)["upper"]
    with pytest.raises(TraceTableError, match="0 instances"): replay(upper, tr.subset([]))      # an empty split
    with pytest.raises(RiskInputError, match="calibration set is empty"):                       # losses of no instance
        calibrate(rep.subset(np.array([], int)), dict(wrong=0.05, premature=0.1), 0.1)


def _study_cells():
    cells = json.loads(study_path(STUDY).read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def _run_study_until(marker, runs_dir, monkeypatch, **over):
    "Execute the study's code cells in-process, up to and including the first cell containing `marker`."
    monkeypatch.setenv("ADAPTBENCH_RUNS_DIR", str(runs_dir))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns = {}
    for i, src in enumerate(_study_cells()):
        exec(src, ns)
        if i == 0: ns.update(over)
        if marker in src: return ns
    raise AssertionError(f"no cell contains {marker!r}")


@pytest.mark.parametrize("over, message", [                   # the declared open range (0..1), checked by current_run
    (dict(eps_wrong=0.0), "eps_wrong = 0.0 is outside its range (0..1): needs 0 < eps_wrong < 1"),
    (dict(delta=1.0), "delta = 1.0 is outside its range (0..1): needs 0 < delta < 1"),
    (dict(eps_premature=1.0), "eps_premature = 1.0 is outside its range (0..1)"),
    (dict(eps_premature=1.2), "eps_premature = 1.2 is outside its range (0..1)"),
    (dict(cal_fraction=0.0), "cal_fraction = 0.0 is outside its range (0..1)"),
])
def test_study_refuses_levels_outside_0_1_before_any_work(over, message, tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match=re.escape(message)):
        _run_study_until("EPS = dict(", tmp_path / "runs", monkeypatch, **over)


def test_study_refuses_an_empty_calibration_split(tmp_path, monkeypatch):
    with pytest.raises(ParameterError, match="empty calibration or test split"):
        _run_study_until("k_cal = int(", tmp_path / "runs", monkeypatch, trace_source="synthetic", n_instances=20,
                         cal_fraction=0.01)


def test_shipped_puzzle_traces_show_the_collapse_point():
    "The reasoner's probed puzzle traces: the trace schema, its model, right at n ≤ 2 (trained) and wrong at n = 3."
    folder = ROOT / "data" / "traces" / "smollm2-reasoner-puzzles"
    probes, inst = pd.read_parquet(folder / "probes.parquet"), pd.read_parquet(folder / "instances.parquet")
    tr = from_tables(probes, inst)
    assert tr.model == "smollm2-135m-reasoner" and set(inst.family) == {"hanoi", "checker_jumping"}
    assert inst.groupby("n").final_correct.all().to_dict() == {1: True, 2: True, 3: False}
    assert not inst[inst.n == 3].final_correct.any()
    assert json.loads(ADAPTER.read_text())["sha256"] in (folder / "README.md").read_text()
