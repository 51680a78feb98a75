"""The papermill runner and the `adaptbench` CLI: a run, a rerun that skips, a failing study, bad parameters."""
import json
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize("argv, message", [
    (["run", "reasoning_colapse", "--dry-run"], "unknown study 'reasoning_colapse' (did you mean 'reasoning_collapse'?)"),
    (["run", "reasoning_collapse", "-p", "n_maxx", "3", "--dry-run"], "no parameter 'n_maxx' (did you mean 'n_max'?)"),
    (["run", "reasoning_collapse", "-p", "ci_level", "1", "--dry-run"], "needs 0 < ci_level < 1"),
    (["run", "reasoning_collapse", "-p", "model", "no-such-model-xyz", "--dry-run"], "model 'no-such-model-xyz' is not available"),
    (["run", "reasoning_collapse", "-p", "model", "no-such-model-xyz", "--quiet"], "model 'no-such-model-xyz' is not available"),
    (["run", "smoke", "-p", "model", "nobody/not-in-the-cache", "--dry-run"], "not available on this machine"),
    (["run", "risk_controlled_budgets", "-p", "trace_source", "no/such/folder", "--dry-run"],
     "trace_source: 'no/such/folder' does not exist"),
    (["run", "risk_controlled_budgets", "-p", "fresh_source", "no/such/folder", "--quiet"], "fresh_source: 'no/such/folder' does not exist"),
    (["run", "reasoning_collapse", "--preset", "refrence", "--dry-run"], "has no preset 'refrence' (did you mean 'reference'?); its presets: test, reference"),
    (["run", "smoke", "--preset", "reference", "--dry-run"], "study 'smoke' declares no presets"),
    (["run", "plasticity_traps", "--preset", "huge", "--dry-run"], "its presets: auto, reference, tiny, default, study, custom"),
    (["run", "reasoning_collapse", "--preset", "reference", "-p", "preset", "test", "--dry-run"], "--preset and -p preset"),
])
def test_every_mistake_is_one_line_before_anything_loads(runs_dir, capsys, argv, message):
    "A misspelt study, parameter or preset, a value out of range, a path or model that is not here: exit 2, one line."
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert message in err and len(err.strip().splitlines()) == 1 and out == "", err
    assert not runs_dir.exists()                        # nothing ran, nothing was written


def test_a_path_or_model_that_exists_passes_dry_run(runs_dir, tmp_path, capsys, monkeypatch):
    model = tmp_path / "my-model"
    model.mkdir(); (model / "config.json").write_text("{}")
    monkeypatch.setenv("ADAPTBENCH_ROOT", str(Path(__file__).resolve().parent.parent))
    monkeypatch.chdir(tmp_path)                          # typed where the folder is, not in the project
    for argv in (["run", "smoke", "-p", "model", "my-model", "--dry-run"],            # a local folder, typed relative
                 ["run", "smoke", "-p", "model", "smollm2-135m-reasoner", "--dry-run"],   # a shipped alias
                 ["run", "risk_controlled_budgets", "-p", "trace_source", "synthetic", "--dry-run"],   # a keyword
                 ["run", "risk_controlled_budgets", "-p", "fresh_source", "", "--dry-run"]):          # empty: skipped
        assert main(argv) == 0, capsys.readouterr().err
    assert f"'{model}'" in capsys.readouterr().out


def test_one_value_for_a_list_parameter_is_a_list_of_one(runs_dir, capsys):
    assert main(["run", "reasoning_collapse", "-p", "tasks", "hanoi", "--dry-run"]) == 0
    assert "tasks                ['hanoi']" in capsys.readouterr().out


def test_a_preset_reproduces_the_reference_run_of_the_page(runs_dir, capsys, monkeypatch):
    "`--preset reference` resolves to the parameters of the run each page's reference-run cell names: the same run id."
    import re
    from adaptbench.catalogue import study_path
    monkeypatch.delenv("IN_TEST", raising=False)
    for study in ("reasoning_collapse", "plasticity_traps", "forgetting"):
        page = study_path(study).read_text()
        rid = re.search(r"run `([0-9a-f]{16})`, finished", page)[1]
        assert main(["run", study, "--preset", "reference", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert f"run {rid} " in out, (study, out.splitlines()[0])
    assert main(["run", "reasoning_collapse", "--preset", "reference", "-p", "n_max", "5", "--dry-run"]) == 0
    out = capsys.readouterr().out                        # a value set explicitly wins over the preset's
    assert "n_max                5" in out and "smollm2-135m-reasoner" in out and "preset" not in out.split("\n", 1)[1]
    assert main(["run", "reasoning_collapse", "--preset", "test", "--dry-run"]) == 0
    test = capsys.readouterr().out
    assert main(["run", "reasoning_collapse", "--dry-run"]) == 0
    assert capsys.readouterr().out == test               # test is the default, and names no value of its own


def test_parameter_conversion(studies):
    p = resolve_params("typed", {"i": "7", "x": "3", "flag": "true", "name": "b", "items": "[3, 4, 5]"})
    assert p == {"i": 7, "x": 3.0, "flag": True, "name": "b", "items": [3, 4, 5]}
    assert resolve_params("typed", {"x": 2})["x"] == 2.0              # int where a float is expected
    assert resolve_params("typed", {"items": "3"})["items"] == [3]       # one item, no comma: a list of one
    for bad in ({"flag": "maybe"}, {"items": "{a: 1}"}, {"i": True}, {"x": "abc"}):
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


def test_studies_lists_questions_presets_and_measured_times(runs_dir, capsys, monkeypatch):
    monkeypatch.delenv("IN_TEST", raising=False)
    assert main(["studies"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    at = lambda study: lines.index(next(l for l in lines if l.startswith(study + "  ")))
    assert lines[at("plasticity_traps")] == "plasticity_traps  Plasticity traps: do frozen and cloned units cause loss of plasticity?"
    rc = lines[at("reasoning_collapse") + 1: at("reasoning_collapse") + 3]
    assert rc[0].split()[:4] == ["--preset", "test", "[default,", "test-sized]"] and "not measured" in rc[0]
    assert rc[1].split()[:2] == ["--preset", "reference"] and "496 s (run 1482aa4f4e6b306a, the page's reference run)" in rc[1]
    pt = next(l for l in lines if l.split()[:2] == ["--preset", "reference"] and "= study" in l)
    assert "1673 s (run 9fdca90f0a62298c" in pt
    assert "[test-sized]" in next(l for l in lines[at("forgetting"):] if l.split()[:2] == ["--preset", "tiny"])
    assert "presets: none declared" in lines[at("smoke") + 1]
    # a run stored in the runs folder gives its own time
    from adaptbench.catalogue import resolve_params
    from adaptbench.runs import Run
    run = Run.create("reasoning_collapse", resolve_params("reasoning_collapse", {}))
    run.mark("complete", seconds=12.3)
    assert main(["studies", "reasoning_collapse"]) == 0
    out = capsys.readouterr().out
    assert "preset" in out.split()[0] and f"12 s (run {run.id}, stored)" in out


def test_output_piped_into_a_reader_that_leaves_early_is_no_error():
    "`adaptbench studies | head -1`: the reader closes the pipe while the command still prints; it ends quietly, exit 0."
    p = subprocess.Popen([sys.executable, "-m", "adaptbench.cli", "studies"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().strip()
    p.stdout.close()                                                      # as `head -1` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
