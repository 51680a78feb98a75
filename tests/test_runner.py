"""The papermill runner and the `adaptbench` CLI: a run, a rerun that skips, a failing study, bad parameters."""
import json
import subprocess
import sys

import pytest

from adaptbench.cli import main
from adaptbench.core import ParameterError, StudyError, StudyFailedError
from adaptbench.catalogue import resolve_params
from adaptbench.runner import run_study
from adaptbench.runs import load_results


def test_run_then_rerun_skips(studies, runs_dir, capsys):
    assert main(["run", "ok", "-p", "n", "4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "complete" in out and str(runs_dir) in out
    (run_dir,) = (runs_dir / "ok").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "complete"
    assert (run_dir / "notebook.ipynb").exists()
    df = load_results("ok")
    assert sorted(df.i) == [0, 1, 2, 3] and set(df.n) == {4}
    # the same parameters again: skipped, the notebook does not execute a second time
    assert main(["run", "ok", "-p", "n", "4", "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out
    assert (run_dir / "executions.txt").read_text() == "1"
    # forced: runs again
    run = run_study("ok", {"n": 4}, force=True, progress=False)
    assert run.dir == run_dir and (run_dir / "executions.txt").read_text() == "11"
    # other parameters: another run, and load_results filters by parameter
    run_study("ok", {"n": 2, "label": "y"}, progress=False)
    assert len(load_results("ok")) == 6 and sorted(load_results("ok", label="y").i) == [0, 1]


def test_failing_study_is_recorded(studies, runs_dir, capsys):
    assert main(["run", "boom", "--quiet"]) == 1
    assert "planted failure with n=1" in capsys.readouterr().err
    (run_dir,) = (runs_dir / "boom").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "RuntimeError" in status["traceback"]
    assert (run_dir / "notebook.ipynb").exists()       # the executed notebook, with the error, is kept
    with pytest.raises(StudyFailedError, match="planted failure"):
        run_study("boom", progress=False)               # a failed run is not skipped: it runs again


@pytest.mark.parametrize("argv, message", [
    (["run", "nope"], "unknown study 'nope'"),
    (["run", "ok", "-p", "m", "1"], "has no parameter 'm'"),
    (["run", "ok", "-p", "n", "three"], "parameter 'n' must be int"),
    (["run", "ok", "-p", "n", "2.5"], "parameter 'n' must be int"),
    (["run", "ok", "-p", "run_dir", "/tmp/x"], "has no parameter 'run_dir'"),
    (["run", "ok", "-p", "n", "1", "-p", "n", "2"], "given twice"),
])
def test_bad_input_fails_before_execution(studies, runs_dir, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not runs_dir.exists()                        # nothing ran, nothing was written


def test_parameter_conversion(studies):
    p = resolve_params("typed", {"i": "7", "x": "3", "flag": "true", "name": "b", "items": "[3, 4, 5]"})
    assert p == {"i": 7, "x": 3.0, "flag": True, "name": "b", "items": [3, 4, 5]}
    assert resolve_params("typed", {"x": 2})["x"] == 2.0              # int where a float is expected
    for bad in ({"flag": "maybe"}, {"items": "3"}, {"i": True}, {"x": "abc"}):
        with pytest.raises(ParameterError):
            resolve_params("typed", bad)


def test_cli_entry_point_and_smoke_study(runs_dir):
    "The installed command runs the real smoke study notebook (on the tiny model, to stay fast) and lists studies."
    exe = ["adaptbench"]
    out = subprocess.run(exe + ["studies"], capture_output=True, text=True, check=True).stdout
    assert "smoke" in out.split()
    r = subprocess.run(exe + ["run", "smoke", "-p", "model", "tiny-random-llama", "-p", "max_new_tokens", "6", "--quiet"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "entropy_per_position.png" in r.stdout
    df = load_results("smoke", model="tiny-random-llama")
    assert len(df) > 0 and {"max_prob", "entropy", "position"} <= set(df.columns)
    assert df.max_prob.between(0, 1).all() and (df.entropy >= -1e-6).all()
