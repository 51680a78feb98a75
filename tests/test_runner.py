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
    # forced: runs again, into a fresh folder that then takes the run's place
    (run_dir / "left-by-the-old-run.txt").write_text("old")
    run = run_study("ok", {"n": 4}, force=True, progress=False)
    assert run.dir == run_dir and (run_dir / "executions.txt").read_text() == "1"
    assert not (run_dir / "left-by-the-old-run.txt").exists() and run.is_complete
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


def make_cells_study(folder, name, cells):
    "A study `name` whose parameters cell is followed by `cells` (code), the first of which opens the run and counts executions."
    import nbformat
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell('n = 1  # anything\nrun_dir = ""  # set by the runner')
    p.metadata["tags"] = ["parameters"]
    first = (f"import pandas as pd\nfrom adaptbench.catalogue import current_run\nrun = current_run({name!r}, globals())\n"
             "open(run.dir / 'executions.txt', 'a').write('1')")
    nb.cells = [p] + [nbformat.v4.new_code_cell(s) for s in [first, *cells]]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


TABLE = "run.write_table(pd.DataFrame({'n': [n]}))"


@pytest.mark.parametrize("cells, message", [
    # papermill counts these as success: the run must not
    (["import sys\nsys.exit(0)", TABLE], "stopped in cell 4 (import sys): SystemExit: 0, before its last cell"),
    (["raise SystemExit", TABLE], "stopped in cell 4 (raise SystemExit): SystemExit, before its last cell"),
    ([TABLE + "\nimport sys\nsys.exit(0)"], "stopped in cell 4 (run.write_table(pd.DataFrame({'n': [n]}))): SystemExit: 0"),
    (["x = 1"], "ran to its end but wrote no table"),
    # a dead kernel: one line naming its cell
    (["import os\nos._exit(1)", TABLE], "the kernel died in cell 4 (import os)"),
    (["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", TABLE], "the kernel died in cell 4 (import os, signal)"),
])
def test_complete_means_complete(studies, runs_dir, capsys, cells, message):
    "A notebook that stops early, writes nothing or whose kernel dies is a failed run: one line, rerun next time."
    make_cells_study(studies, "stops", cells)
    assert main(["run", "stops", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    (run_dir,) = (runs_dir / "stops").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "failed" and message.split(" (")[0].split(",")[0] in status["error"], status
    assert main(["run", "stops", "--quiet"]) == 1                        # not skipped as done: it runs again
    assert (run_dir / "executions.txt").read_text() == "11"
    assert load_results("stops").empty                                   # and no result is taken from it


def test_a_notebook_that_runs_to_its_end_is_complete(studies, runs_dir, capsys):
    "The same checks pass a study whose last cell writes its table (and `exit()`, IPython's, does not stop a cell)."
    make_cells_study(studies, "ends", ["exit()", TABLE])
    assert main(["run", "ends", "--quiet"]) == 0
    assert load_results("ends").n.tolist() == [1]


def test_a_kernel_that_dies_at_start_is_one_line(studies, runs_dir, tmp_path, monkeypatch, capsys):
    "A kernel that exits before running anything (a broken environment): a failed run, said in one line."
    spec = tmp_path / "jupyter" / "kernels" / "dead-on-start"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(json.dumps(dict(argv=[sys.executable, "-c", "raise SystemExit(3)", "-f",
                                                                  "{connection_file}"], display_name="dead", language="python")))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    with pytest.raises(StudyFailedError, match="the kernel died before its first cell ran") as e:
        run_study("ok", kernel_name="dead-on-start", progress=False)
    assert "\n" not in str(e.value)
    assert "Kernel died" not in capsys.readouterr().err                  # nbclient's own log lines are not repeated
    (run_dir,) = (runs_dir / "ok").iterdir()
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"


def test_a_complete_run_whose_path_data_changed_is_not_skipped_silently(studies, runs_dir, tmp_path, capsys):
    "The run id is keyed by the parameters; the data a `[path]` parameter names is fingerprinted, so a changed folder is caught."
    from conftest import make_study
    data = tmp_path / "traces"
    data.mkdir()
    (data / "a.txt").write_text("first")
    make_study(studies, "reads", 'source = "x"  # a folder to read  [path]\nrun_dir = ""  # set by the runner',
               "import pandas as pd\nfrom pathlib import Path\nfrom adaptbench.catalogue import current_run\n"
               "run = current_run('reads', dict(source=source), run_dir)\n"
               "run.write_table(pd.DataFrame({'text': [p.read_text() for p in sorted(Path(source).iterdir())]}))\n")
    run = run_study("reads", {"source": str(data)}, progress=False)
    assert set(json.loads((run.dir / "inputs.json").read_text())) == {"source"}
    assert run_study("reads", {"source": str(data)}, progress=False).skipped          # unchanged: skipped
    (data / "a.txt").write_text("second")
    with pytest.raises(StudyError, match=r"the data of source = .* changed since it ran .*--force"):
        run_study("reads", {"source": str(data)}, progress=False)
    assert main(["run", "reads", "-p", "source", str(data), "--quiet"]) == 2
    assert "changed since it ran" in capsys.readouterr().err
    run = run_study("reads", {"source": str(data)}, force=True, progress=False)
    assert list(run.read_table().text) == ["second"]
    assert run_study("reads", {"source": str(data)}, progress=False).skipped          # the new data is now the run's
