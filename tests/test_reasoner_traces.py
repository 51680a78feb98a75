"""The shipped probed traces of the trained reasoner, and the risk study's defaults on them (issue 17): schema, the
recording model in the traces' meta, what the study and its dashboard certify, and clear
errors for levels outside (0, 1), an empty calibration split, and a live run of another model."""
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


def test_the_reasoner_usually_gets_there_and_the_study_certifies_at_its_defaults():
    """The organism is right at the full budget on nearly every traced addition, so ε_wrong = 0.05 is reachable, and the
    study's defaults (ε_wrong = 0.05, δ = 0.1) certify a rule whose calibration tokens are below the full budget's."""
    d = _defaults()
    assert (d["trace_source"], d["eps_wrong"], d["delta"]) == ("data/traces/smollm2-reasoner", 0.05, 0.1) and d["splits"] >= 1000
    _, inst = _tables()
    assert inst.final_correct.mean() >= 0.97
    tr, mech, cal, test, res = _study_calibration(d, TRACES)
    assert res.ok, res.guarantee
    assert res.cost < cal.final_tokens.mean()


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


def test_dashboard_at_the_study_defaults_opens_with_a_certified_choice():
    pytest.importorskip("ipywidgets")
    from adaptbench.dashboards.risk import RiskDashboard
    d = _defaults()
    folder = ROOT / d["trace_source"]
    _, _, _, _, res = _study_calibration(d, folder)
    assert res.ok, res.guarantee                                              # the study certifies at its defaults
    dash = RiskDashboard.from_tables(pd.read_parquet(folder / "probes.parquet"), pd.read_parquet(folder / "instances.parquet"),
                                     eps=(d["eps_wrong"], d["eps_premature"]), delta=d["delta"], cal_fraction=d["cal_fraction"],
                                     seed=d["seed"], p_value=d["p_value"], fwer=d["fwer"], policy=res.chosen_config["policy"])
    assert dash.result.ok and "<b>chosen</b>" in dash.info.value
    dash.delta.value = 0.01                                                   # the sliders re-calibrate
    assert dash.delta.value == 0.01 and dash.eps_wrong.min == 0.001


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
