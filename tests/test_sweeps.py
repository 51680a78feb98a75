"""Sweeps: a grid of runs on the local executor (parallel processes) and on Ray; resume, failures, bad files."""
import json

import pytest
import yaml
from conftest import make_study

from adaptbench.cli import main
from adaptbench.runs import load_results
from adaptbench.sweeps import sweep


@pytest.fixture
def picky(studies):
    "A study that fails for n == 2 only, and counts its executions."
    make_study(studies, "picky", 'n = 1  # anything [range: 1..]\nlabel = "x"  # a label\nrun_dir = ""  # set by the runner',
               "import pandas as pd\nfrom adaptbench.catalogue import current_run\n"
               "run = current_run('picky', dict(n=n, label=label), run_dir)\n"
               "open(run.dir / 'executions.txt', 'a').write('1')\n"
               "if n == 2: raise ValueError('n = 2 is planted to fail')\n"
               "run.write_table(pd.DataFrame({'n': [n], 'sq': [n * n]}))")
    return studies


def write_spec(tmp_path, spec):
    p = tmp_path / "sweep.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def executions(runs_dir, study):
    return sorted((d / "executions.txt").read_text() for d in (runs_dir / study).iterdir() if d.name != "_sweeps")


def test_local_sweep_runs_in_parallel_keeps_going_and_resumes(picky, runs_dir, tmp_path, capsys):
    spec = write_spec(tmp_path, dict(study="picky", fixed=dict(label="s"), grid=dict(n=[1, 2, 3])))
    assert main(["sweep", "picky", str(spec), "--workers", "2", "--quiet"]) == 1    # one run failed: exit 1
    out, err = capsys.readouterr()
    assert "2 complete" in out and "1 failed" in out and "planted to fail" in err
    df = load_results("picky")
    assert sorted(zip(df.n, df.sq)) == [(1, 1), (3, 9)] and set(df.label) == {"s"}
    (summary,) = (runs_dir / "picky" / "_sweeps").glob("*.csv")                     # the sweep's own record
    assert "failed" in summary.read_text()
    failed = [d for d in (runs_dir / "picky").iterdir() if (d / "params.json").exists()
              and json.loads((d / "status.json").read_text())["state"] == "failed"]
    assert len(failed) == 1 and json.loads((failed[0] / "params.json").read_text())["params"]["n"] == 2
    # run again: the complete runs are skipped, only the failed one executes again
    df = sweep("picky", spec, workers=2, progress=False)
    assert sorted(df.state) == ["failed", "skipped", "skipped"]
    assert executions(runs_dir, "picky") == ["1", "1", "11"]
    # the plan shows what is done
    assert main(["sweep", "picky", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "3 runs, 2 already complete" in out


@pytest.mark.parametrize("spec, message", [
    (dict(grid=dict(n=[1, "two"])), "parameter 'n' must be int"),
    (dict(grid=dict(m=[1])), "has no parameter 'm'"),
    (dict(grid=dict(n=[1, 0])), "n = 0 is outside its range 1.."),          # declared in the parameters cell
    (dict(grid=dict(n=1)), "must be a non-empty list"),
    (dict(study="ok", grid=dict(n=[1])), "is for study 'ok'"),
])
def test_bad_sweep_file_fails_before_anything_runs(picky, runs_dir, tmp_path, capsys, spec, message):
    assert main(["sweep", "picky", str(write_spec(tmp_path, spec)), "--quiet"]) == 2
    assert message in capsys.readouterr().err
    assert not runs_dir.exists()


def test_ray_sweep(picky, runs_dir, tmp_path):
    "The same sweep as Ray tasks on a local Ray instance: identical runs, identical results."
    pytest.importorskip("ray")
    spec = dict(fixed=dict(label="r"), grid=dict(n=[1, 3]), runs=[dict(n=2)])
    df = sweep("picky", spec, executor="ray", workers=2, progress=False)
    assert dict(zip(df.n, df.state)) == {1: "complete", 3: "complete", 2: "failed"}
    assert sorted(load_results("picky").sq) == [1, 9]
    # the local executor sees the Ray runs as done
    assert sorted(sweep("picky", spec, progress=False).state) == ["failed", "skipped", "skipped"]


def test_a_worker_process_that_dies_is_a_failed_run(picky, runs_dir):
    "A job whose process dies before reporting (here: a malformed job) comes back as a failed row, not a crash."
    from adaptbench.catalogue import resolve_params
    from adaptbench.sweeps import _sweep_job_subprocess
    row = _sweep_job_subprocess(dict(study="picky", params=resolve_params("picky", {}), force=False,
                                     runs_dir=str(runs_dir), bogus=1))
    assert row["state"] == "failed" and "exited with 1" in row["error"] and "bogus" in row["error"]


def test_a_sweep_over_damaged_runs_plans_and_repairs_them(picky, runs_dir, tmp_path, capsys):
    "Sweep status reads every planned run: a damaged status.json is planned as `unreadable` and run again; a damaged params.json is rewritten."
    spec = write_spec(tmp_path, dict(fixed=dict(label="d"), grid=dict(n=[1, 3])))
    assert main(["sweep", "picky", str(spec), "--quiet"]) == 0
    one, three = sorted((d for d in (runs_dir / "picky").iterdir() if d.name != "_sweeps"),
                        key=lambda d: json.loads((d / "params.json").read_text())["params"]["n"])
    (one / "status.json").write_text("")
    (three / "params.json").write_text("{")
    capsys.readouterr()
    assert main(["sweep", "picky", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 runs, 1 already complete" in out and "unreadable" in out
    df = sweep("picky", spec, progress=False)
    assert dict(zip(df.n, df.state)) == {1: "complete", 3: "skipped"}    # the unreadable status: not complete, rerun
    assert json.loads((three / "params.json").read_text())["params"]["n"] == 3     # rewritten
    assert sorted(load_results("picky").sq) == [1, 9]


def test_the_shipped_risk_sweep_runs(runs_dir):
    "data/sweeps/risk_levels.yaml (the README's sweep example) on its real defaults: one of its runs completes."
    from pathlib import Path
    from adaptbench.runner import run_study
    from adaptbench.sweeps import expand_sweep, load_sweep
    spec = load_sweep(Path(__file__).resolve().parents[1] / "data" / "sweeps" / "risk_levels.yaml")
    runs = expand_sweep(spec)
    assert len(runs) == 4
    run = run_study("risk_controlled_budgets", dict(runs[0], splits=5), progress=False)
    assert run.is_complete and len(run.read_table("chosen_thresholds")) > 0
