"""`adaptbench compare` (the complete runs of a study side by side) and `adaptbench dashboard` (a study's dashboard on a stored run)."""
import json

import nbformat
import pandas as pd
import pytest

from adaptbench.cli import main
from adaptbench.runs import Run
from conftest import make_study

CMP_PARAMS = 'lr = 0.1  # learning rate\nn = 2  # size\nrun_dir = ""  # set by the runner'
CMP_BODY = ("import pandas as pd\nfrom adaptbench.catalogue import current_run\n"
            "run = current_run('cmp', globals())\n"
            "run.write_table(pd.DataFrame({'method': ['a', 'b'], 'acc': [n * lr, 2 * n * lr], 'loss': [1 / n, 2 / n]}))\n"
            "run.write_table(pd.DataFrame({'x': [n]}), 'extra')")


@pytest.fixture
def cmp_study(studies):
    make_study(studies, "cmp", CMP_PARAMS, CMP_BODY)
    return studies


def test_compare_needs_two_complete_runs_and_a_known_study(cmp_study, runs_dir, capsys):
    assert main(["compare", "nope"]) == 2 and "unknown study 'nope'" in capsys.readouterr().err
    assert main(["compare", "cmp"]) == 2 and "at least 2 complete runs" in capsys.readouterr().err
    assert main(["run", "cmp", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["compare", "cmp"]) == 2
    assert "has 1 complete" in capsys.readouterr().err


def test_compare_table_and_figure(cmp_study, runs_dir, tmp_path, capsys):
    for n in (1, 2, 4): assert main(["run", "cmp", "-p", "n", str(n), "--quiet"]) == 0
    capsys.readouterr()
    fig = tmp_path / "cmp.png"
    assert main(["compare", "cmp", "--out", str(fig)]) == 0
    out = capsys.readouterr().out
    assert "3 complete runs" in out and "differing: n" in out and "metrics: acc, loss" in out
    assert "same in every run: lr=0.1" in out and f"figure: {fig}" in out
    assert fig.stat().st_size > 5000 and fig.read_bytes()[:4] == b"\x89PNG"
    head = next(l for l in out.splitlines() if l.split()[:1] == ["run_id"])
    assert head.split() == ["run_id", "n", "method", "acc", "loss"]          # lr is shared: not a column
    assert main(["compare", "cmp", "--format", "csv", "--columns", "n,method,acc", "--no-figure"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "n,method,acc"
    rows = [l.split(",") for l in lines[1:]]
    assert [(int(n), m, float(a)) for n, m, a in rows] == [(n, m, k * n * 0.1) for n in (1, 2, 4) for m, k in (("a", 1), ("b", 2))]
    assert main(["compare", "cmp", "--format", "json", "--metrics", "loss", "--no-figure"]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert len(recs) == 6 and set(recs[0]) == {"run_id", "n", "method", "loss"}
    assert main(["compare", "cmp", "--table", "extra", "--no-figure", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "run_id,n,x"
    default_fig = runs_dir / "cmp" / "compare-results.png"
    assert main(["compare", "cmp", "--metric", "loss"]) == 0 and default_fig.exists()
    capsys.readouterr()
    for argv, message in [(["compare", "cmp", "--table", "nope"], "with a 'nope' table"),
                          (["compare", "cmp", "--metrics", "zz"], "unknown metric(s) 'zz'"),
                          (["compare", "cmp", "--metric", "zz"], "unknown metric 'zz'"),
                          (["compare", "cmp", "--columns", "zz"], "unknown column(s) 'zz'")]:
        assert main(argv) == 2 and message in capsys.readouterr().err, argv


def fake_risk_run(runs_dir, **over):
    "A complete risk_controlled_budgets run on synthetic traces whose chosen_thresholds certified `upper + lower`."
    from adaptbench.policies import SyntheticTraces, to_tables
    params = dict(eps_wrong=0.3, eps_premature=0.1, delta=0.2, p_value="binomial", fwer="holm", cal_fraction=0.6,
                  seed=5, signals="confidence,certaindex", policies="fixed budget;upper;upper + lower", **over)
    run = Run.create("risk_controlled_budgets", params, runs_dir)
    for t, name in zip(to_tables(SyntheticTraces().sample(400, seed=0)), ("probes", "instances")): run.write_table(t, name)
    run.write_table(pd.DataFrame(dict(mechanism=["upper", "upper + lower", "all (efficiency loss)"], ok=[False, True, True],
                                      chosen=[None, "upper + lower: a=0.1", "upper + lower: a=0.1"])), "chosen_thresholds")
    run.mark("complete")
    return run


def test_dashboard_writes_a_notebook_that_opens_the_run(runs_dir, tmp_path, capsys):
    assert main(["dashboard", "risk_controlled_budgets", "--no-open"]) == 2
    assert "no complete run of 'risk_controlled_budgets'" in capsys.readouterr().err
    older = fake_risk_run(runs_dir, splits=3)
    run = fake_risk_run(runs_dir, splits=4)
    (older.dir / "status.json").write_text(json.dumps(dict(state="complete", updated="2020-01-01T00:00:00")))
    assert main(["dashboard", "risk_controlled_budgets", "--no-open"]) == 0        # the latest complete run
    out = capsys.readouterr().out
    path = run.dir / "dashboard.ipynb"
    assert f"run {run.id}" in out and f"jupyter lab {path}" in out
    assert "upper + lower on confidence, ε = (0.3, 0.1), δ = 0.2, binomial + holm, 240 calibration / 160 test: chosen" in out
    nb = nbformat.read(path, as_version=4)
    code = nb.cells[-1].source
    assert repr(str(run.dir)) in code and "RiskDashboard.from_run(run)" in code and run.id in nb.cells[0].source
    ns = {}
    exec(code.replace("RiskDashboard.from_run(run)", "dash = RiskDashboard.from_run(run)"), ns)
    dash = ns["dash"]                                                         # the notebook's dashboard: the run's own parameters
    assert (dash.eps_wrong.value, dash.delta.value, dash.fwer.value, dash.policy.value) == (0.3, 0.2, "holm", "upper + lower")
    assert dash.result.ok and "<b>chosen</b>" in dash.info.value
    other = tmp_path / "mine.ipynb"
    assert main(["dashboard", "risk_controlled_budgets", older.id[:7], "--print", "--out", str(other)]) == 0
    assert f"run {older.id}" in capsys.readouterr().out and str(older.dir) in other.read_text()


def test_dashboard_errors(runs_dir, capsys):
    fake_risk_run(runs_dir)
    for argv, message in [(["dashboard", "smoke"], "study 'smoke' has no dashboard; studies with one: plasticity_traps, risk_controlled_budgets"),
                          (["dashboard", "nope"], "unknown study 'nope'"),
                          (["dashboard", "risk_controlled_budgets", "zzz", "--no-open"], "no run 'zzz'")]:
        assert main(argv) == 2 and message in capsys.readouterr().err, argv
    bare = Run.create("risk_controlled_budgets", {"x": 1}, runs_dir)
    bare.mark("complete")
    assert main(["dashboard", "risk_controlled_budgets", bare.id, "--no-open"]) == 2
    assert "no probes/instances tables" in capsys.readouterr().err


def test_dashboard_finds_jupyterlab_next_to_the_interpreter(runs_dir, capsys, monkeypatch):
    "The venv need not be activated: JupyterLab installed beside this Python is found, not reported missing."
    import sys
    from pathlib import Path
    fake_risk_run(runs_dir, splits=3)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")                     # the venv's bin is not on PATH
    assert (Path(sys.executable).parent / "jupyter-lab").is_file()
    assert main(["dashboard", "risk_controlled_budgets", "--no-open"]) == 0
    assert "not installed" not in capsys.readouterr().out


def test_models_list_and_help_start_here(capsys):
    import pytest
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for alias in ("smollm2-135m-instruct", "smollm2-135m-reasoner", "tiny-random-llama"):
        assert alias in out
    assert "MB adapter" in out
    with pytest.raises(SystemExit):
        main(["--help"])
    lines = capsys.readouterr().out.rstrip().splitlines()
    assert lines[-4] == "start here:" and all(l.strip().startswith("adaptbench ") for l in lines[-3:])


def truncate(p):
    p.write_bytes(p.read_bytes()[:len(p.read_bytes()) // 2])


DAMAGE = {"table 'results' is not a readable Parquet file": lambda r: truncate(r.table_path("results")),
          "status.json is empty": lambda r: (r.dir / "status.json").write_text(""),
          "status.json is not valid JSON": lambda r: (r.dir / "status.json").write_text('{"state": "compl'),
          "no params.json": lambda r: (r.dir / "params.json").unlink(),
          "params.json is empty": lambda r: (r.dir / "params.json").write_text(""),
          "params.json is not valid JSON": lambda r: (r.dir / "params.json").write_text('{"study": "cmp", ')}


def stored_cmp_runs(runs_dir):
    "Three complete `cmp` runs (n = 1, 2, 4), as the study writes them; returns them."
    runs = []
    for n in (1, 2, 4):
        r = Run.create("cmp", dict(lr=0.1, n=n), runs_dir)
        r.write_table(pd.DataFrame({"method": ["a", "b"], "acc": [n * 0.1, 2 * n * 0.1], "loss": [1 / n, 2 / n]}))
        r.mark("complete")
        runs.append(r)
    return runs


def one_warning(err, bad, why):
    "The stderr of a command that skipped `bad`: one warning line, naming it and why, no traceback."
    lines = [l for l in err.splitlines() if l.startswith("warning:")]
    assert len(lines) == 1 and str(bad.dir) in lines[0] and why in lines[0] and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("why", list(DAMAGE))
def test_one_broken_run_hides_none_of_the_others(cmp_study, runs_dir, capsys, why):
    *good, bad = stored_cmp_runs(runs_dir)
    DAMAGE[why](bad)
    assert main(["results", "cmp", "--format", "csv", "--columns", "n,method,acc"]) == 0
    out, err = capsys.readouterr()
    one_warning(err, bad, why)
    assert out.splitlines()[0] == "run_id,n,method,acc"                    # the run id stays, --columns or not
    assert sorted(l.split(",", 1)[1] for l in out.splitlines()[1:]) == ["1,a,0.1", "1,b,0.2", "2,a,0.2", "2,b,0.4"]
    assert main(["compare", "cmp", "--no-figure", "--format", "csv", "--columns", "n,method,acc"]) == 0
    out, err = capsys.readouterr()
    one_warning(err, bad, why)
    assert sorted(out.splitlines()[1:]) == ["1,a,0.1", "1,b,0.2", "2,a,0.2", "2,b,0.4"]
    if "table" not in why:                                                  # the listing reads no table
        assert main(["results", "cmp", "--list", "--format", "csv", "--columns", "run_id,n,state"]) == 0
        out, err = capsys.readouterr()
        one_warning(err, bad, why)
        assert sorted(out.splitlines()[1:]) == sorted(f"{r.id},{r.params['n']},complete" for r in good)


def test_every_run_broken_still_answers_in_one_line(cmp_study, runs_dir, capsys):
    runs = stored_cmp_runs(runs_dir)
    for r in runs: truncate(r.table_path("results"))
    assert main(["results", "cmp"]) == 0
    out, err = capsys.readouterr()
    assert "skipped 3 unreadable runs of 'cmp'" in err and "no complete run of 'cmp' has a readable 'results' table" in err
    assert main(["compare", "cmp"]) == 2
    err = capsys.readouterr().err
    assert "skipped 3 unreadable runs" in err and "at least 2 complete runs" in err and "Traceback" not in err


def test_the_dashboard_skips_an_unreadable_run_and_names_a_damaged_one(runs_dir, capsys):
    older = fake_risk_run(runs_dir, splits=3)
    newer = fake_risk_run(runs_dir, splits=4)
    (older.dir / "status.json").write_text(json.dumps(dict(state="complete", updated="2020-01-01T00:00:00")))
    (newer.dir / "status.json").write_text("")                             # the latest is unreadable: the other opens
    assert main(["dashboard", "risk_controlled_budgets", "--no-open"]) == 0
    out, err = capsys.readouterr()
    one_warning(err, newer, "status.json is empty")
    assert f"run {older.id}" in out
    truncate(older.table_path("probes"))                                    # the run asked for is damaged: one line
    assert main(["dashboard", "risk_controlled_budgets", older.id, "--no-open"]) == 2
    err = capsys.readouterr().err
    assert "table 'probes' is not a readable Parquet file" in err and older.id in err and "Traceback" not in err, err
    (newer.dir / "params.json").write_text("{")                             # a folder named on the command line
    assert main(["dashboard", "risk_controlled_budgets", str(newer.dir), "--no-open"]) == 2
    assert "params.json is not valid JSON" in capsys.readouterr().err


# --- tables: what tells runs apart stays, small tables print whole, compare checks its arguments first ------------
def test_results_columns_keep_the_run_id_and_the_parameters_that_vary(cmp_study, runs_dir, capsys):
    for n in (1, 2): assert main(["run", "cmp", "-p", "n", str(n), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["results", "cmp", "--columns", "acc"]) == 0
    out = capsys.readouterr().out
    head = next(l for l in out.splitlines() if l.split()[:1] == ["run_id"])
    assert head.split() == ["run_id", "n", "acc"]                           # lr is the same in both runs: not kept
    assert main(["results", "cmp", "--columns", "n,acc", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "run_id,n,acc"        # asked for: in its place, not twice
    assert main(["results", "cmp", "--list", "--columns", "state", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "run_id,n,state"


LONG = "upper + lower (a=0.35, b=-0.002) chosen inside the guarantee"

def test_a_headline_table_of_ten_rows_prints_whole(studies, runs_dir, capsys):
    make_study(studies, "wide", 'n = 10  # rows\nrun_dir = ""  # set by the runner',
               "import pandas as pd\nfrom adaptbench.catalogue import current_run\nrun = current_run('wide', globals())\n"
               f"run.write_table(pd.DataFrame(dict(chosen=[{LONG!r}] * n, **{{f'col{{i}}': [i] * n for i in range(12)}})))")
    assert main(["run", "wide", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count(LONG) == 10 and "col11" in out and "…" not in out and "..." not in out
    assert main(["results", "wide"]) == 0
    assert capsys.readouterr().out.count(LONG) == 10                         # results too: strings uncut
    assert main(["run", "wide", "-p", "n", "11", "--quiet"]) == 0           # more rows: the first few
    out = capsys.readouterr().out
    assert out.count(LONG) == 5 and "first 5 of 11 rows" in out


@pytest.mark.parametrize("argv, message", [
    (["compare", "cmp", "--metric", "los"], "unknown metric 'los' (did you mean 'loss'?) for --metric; metrics of 'results': acc, loss"),
    (["compare", "cmp", "--metric", "zz", "--no-figure"], "unknown metric 'zz'"),
    (["compare", "cmp", "--columns", "n,nope"], "unknown column(s) 'nope'"),
    (["compare", "cmp", "--rows", "-1"], "--rows must be 0 (all) or more"),
])
def test_compare_checks_its_arguments_before_printing_anything(cmp_study, runs_dir, capsys, argv, message):
    for n in (1, 2): assert main(["run", "cmp", "-p", "n", str(n), "--quiet"]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and message in err and len(err.strip().splitlines()) == 1, (out, err)
    assert not (runs_dir / "cmp" / "compare-results.png").exists()
