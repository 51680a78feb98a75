"""What a new user ran into: an interactive run over a batch run, relative paths, two identical runs at once,
Ctrl-C, `adaptbench results`, and commands typed outside a project."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml
from conftest import make_study

from adaptbench.cli import main
from adaptbench.catalogue import resolve_params
from adaptbench.runner import ensure_kernel
from adaptbench.runs import Run, load_results, run_id


SLOW_PARAMS = 'n = 1  # a label [range: 1..]\nsecs = 4.0  # seconds to sleep [range: 0..]\nrun_dir = ""  # set by the runner'


@pytest.fixture
def slow(studies):
    "A study that sleeps `secs` seconds, then writes a one-row table."
    make_study(studies, "slow", SLOW_PARAMS, "import time, pandas as pd\nfrom adaptbench.catalogue import current_run\n"
               "run = current_run('slow', globals())\ntime.sleep(secs)\nrun.write_table(pd.DataFrame({'n': [n]}))")
    return studies


def status(d): return json.loads((d / "status.json").read_text())


def like_a_terminal():
    "Popen preexec_fn: Ctrl-C's default action, whatever this suite inherited (a background job starts with SIGINT ignored)."
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for(pred, timeout=60):
    t0 = time.time()
    while not pred():
        if time.time() - t0 > timeout: raise TimeoutError("condition not reached")
        time.sleep(0.1)


def test_interactive_run_never_takes_over_a_batch_run(studies, runs_dir, capsys):
    "'Run All' in JupyterLab with the parameters of a complete batch run writes its own run, and the batch run stays."
    import papermill as pm
    assert main(["run", "ok", "-p", "n", "4", "--quiet"]) == 0
    (batch,) = [d for d in (runs_dir / "ok").iterdir() if d.name != "_interactive"]
    before = (batch / "status.json").read_text()
    pm.execute_notebook(str(studies / "ok.ipynb"), str(runs_dir.parent / "by_hand.ipynb"), parameters=dict(n=4),
                        kernel_name=ensure_kernel(), progress_bar=False)      # run_dir stays "": run by hand
    assert (batch / "status.json").read_text() == before and status(batch)["state"] == "complete"
    assert (batch / "executions.txt").read_text() == "1"
    by_hand = runs_dir / "ok" / "_interactive" / batch.name                 # same id, its own folder
    assert status(by_hand)["state"] == "interactive" and (by_hand / "executions.txt").read_text() == "1"
    assert sorted(load_results("ok").i) == [0, 1, 2, 3]                      # results still see the batch run only
    capsys.readouterr()
    assert main(["run", "ok", "-p", "n", "4", "--quiet"]) == 0
    assert "skipped" in capsys.readouterr().out                             # and the next batch run skips it


def test_typed_paths_resolve_against_where_they_were_typed(studies, runs_dir, tmp_path, monkeypatch, capsys):
    make_study(studies, "pathy", 'data = ""  # a folder [path]\nrun_dir = ""  # set by the runner',
               "import os, pandas as pd\nfrom adaptbench.catalogue import current_run\nrun = current_run('pathy', globals())\n"
               "run.write_table(pd.DataFrame({'seen': [os.path.isdir(data)]}))")
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    (tmp_path / "work" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work" / "deep")
    assert main(["run", "pathy", "-p", "data", "../../models/tiny", "--runs-dir", "../x", "--quiet"]) == 0
    (d,) = (tmp_path / "work" / "x" / "pathy").iterdir()                    # --runs-dir: from the typing folder
    assert Run.from_dir(d).params["data"] == str(tmp_path / "models" / "tiny")
    assert Run.from_dir(d).read_table().seen.tolist() == [True]             # the notebook (cwd: studies/) found it
    assert not runs_dir.exists()


def test_two_identical_runs_at_once(slow, runs_dir, capsys):
    first = subprocess.Popen(["adaptbench", "run", "slow", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    rid = run_id("slow", resolve_params("slow", {}))
    wait_for(lambda: (runs_dir / "slow" / rid / ".lock").exists())
    assert main(["run", "slow", "--quiet"]) == 2
    assert f"already running (pid {first.pid}" in capsys.readouterr().err
    assert main(["run", "slow", "--quiet", "--wait"]) == 0                  # waits, then finds it complete
    assert "skipped" in capsys.readouterr().out
    assert first.wait(60) == 0 and status(runs_dir / "slow" / rid)["state"] == "complete"
    assert not (runs_dir / "slow" / rid / ".lock").exists()
    # a lock left by a process that is gone is stale: the run proceeds
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket
    (runs_dir / "slow" / rid / ".lock").write_text(json.dumps(dict(pid=int(dead.stdout), host=socket.gethostname())))
    assert main(["run", "slow", "-p", "secs", "4.0", "--force", "--quiet"]) == 0


def test_ctrl_c_is_one_line_and_a_rerun_is_clean(slow, runs_dir, tmp_path):
    p = subprocess.Popen(["adaptbench", "run", "slow", "-p", "secs", "60", "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=like_a_terminal)
    d = runs_dir / "slow" / run_id("slow", resolve_params("slow", {"secs": 60}))
    wait_for(lambda: (d / "status.json").exists() and status(d)["state"] == "running")
    time.sleep(3)                                                           # inside the notebook by now
    os.killpg(p.pid, signal.SIGINT)                                         # what Ctrl-C in a terminal sends
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err and "Traceback" not in err
    assert status(d)["state"] == "interrupted"
    # the rerun completes with a clean status: nothing left of the interruption
    make_study(slow, "slow", SLOW_PARAMS, "import pandas as pd\nfrom adaptbench.catalogue import current_run\nrun = current_run('slow', globals())\n"
               "run.write_table(pd.DataFrame({'n': [n]}))")                  # the same run, now quick
    assert main(["run", "slow", "-p", "secs", "60", "--quiet"]) == 0
    s = status(d)
    assert s["state"] == "complete" and not {"error", "traceback"} & set(s), s


@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_stops_a_sweep(slow, runs_dir, tmp_path, workers):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump(dict(fixed=dict(secs=60), grid=dict(n=[1, 2, 3]))))
    p = subprocess.Popen(["adaptbench", "sweep", "slow", str(spec), "--workers", str(workers), "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         preexec_fn=like_a_terminal)
    started = lambda: [d for d in (runs_dir / "slow").glob("*") if (d / "status.json").exists()]
    wait_for(lambda: (runs_dir / "slow").exists() and len(started()) == workers
             and all(status(d)["state"] == "running" for d in started()))
    time.sleep(3)
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=90)
    assert p.returncode == 130 and "Traceback" not in err, err
    time.sleep(5)                                                           # a queued run would have started by now
    assert len(started()) == workers and {status(d)["state"] for d in started()} == {"interrupted"}


def test_results_command(studies, runs_dir, capsys):
    assert main(["results", "ok"]) == 0 and "no complete runs" in capsys.readouterr().err
    for n in (2, 3): assert main(["run", "ok", "-p", "n", str(n), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["results", "ok"]) == 0
    out = capsys.readouterr().out
    assert "same in every run: label=x" in out and out.splitlines()[1].split()[:3] == ["run_id", "n", "i"]
    assert main(["results", "ok", "--format", "csv", "--columns", "n,i"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "run_id,n,i" and sorted(l.split(",", 1)[1] for l in lines[1:]) == ["2,0", "2,1", "3,0", "3,1", "3,2"]
    assert main(["results", "ok", "--format", "json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 5
    assert main(["results", "ok", "--list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("complete") == 2 and "seconds" in listing
    for argv, message in [(["results", "nope"], "unknown study 'nope'"),
                          (["results", "ok", "--table", "nope"], "has a table 'nope'; its tables: results"),
                          (["results", "ok", "--columns", "zz"], "unknown column(s) 'zz'")]:
        assert main(argv) == 2 and message in capsys.readouterr().err


def test_outside_a_project_every_command_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADAPTBENCH_")}
    for argv in (["studies"], ["results", "smoke"], ["run", "smoke"], ["sweep", "smoke", "x.yaml"]):
        r = subprocess.run(["adaptbench", *argv], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert r.returncode == 2 and "no adaptbench project" in r.stderr and "ADAPTBENCH_ROOT" in r.stderr, r.stderr


FLAKY_BODY = ("import os, time, pandas as pd\nimport matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
              "from adaptbench.catalogue import current_run\nrun = current_run('flaky', globals())\n"
              "mode = os.environ.get('FLAKY_MODE', 'ok')\n"
              "run.write_table(pd.DataFrame({'part': [1]}), 'partial')       # the new run has begun writing\n"
              "if mode == 'fail': raise RuntimeError('planted failure')\n"
              "if mode == 'exit': import sys; sys.exit(0)\n"
              "if mode == 'die': os._exit(1)\n"
              "if mode == 'sleep': time.sleep(60)\n"
              "run.save_figure(plt.figure(), 'fig')\n"
              "run.write_table(pd.DataFrame({'version': [os.environ.get('FLAKY_VERSION', '1')]}))")


def snapshot(d):
    "Every file under `d` (relative path → bytes)."
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_force_keeps_the_run_it_replaces_until_the_new_one_is_complete(studies, runs_dir, capsys, monkeypatch):
    make_study(studies, "flaky", 'n = 1  # anything\nrun_dir = ""  # set by the runner', FLAKY_BODY)
    assert main(["run", "flaky", "--quiet"]) == 0
    (d,) = (runs_dir / "flaky").iterdir()
    before = snapshot(d)
    assert {"tables/results.parquet", "figures/fig.png", "status.json"} <= set(before)
    # a forced rerun that fails in any way leaves the complete run, its tables and figures, byte for byte
    for mode, rc, message in [("fail", 1, "planted failure"), ("exit", 1, "SystemExit: 0"), ("die", 1, "the kernel died")]:
        monkeypatch.setenv("FLAKY_MODE", mode)
        assert main(["run", "flaky", "--force", "--quiet"]) == rc
        err = capsys.readouterr().err
        assert message in err and f"the run it would replace is kept as it was ({d})" in err, err
        assert snapshot(d) == before and load_results("flaky").version.tolist() == ["1"]
        attempt = d.with_name(f".{d.name}.forced")                      # the failed attempt, for its notebook
        assert json.loads((attempt / "status.json").read_text())["state"] == "failed"
    # an interrupted one too; while it runs, readers see the complete run
    shutil.rmtree(d.with_name(f".{d.name}.forced"))                   # (the next attempt starts afresh anyway)
    p = subprocess.Popen(["adaptbench", "run", "flaky", "--force", "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, start_new_session=True, preexec_fn=like_a_terminal, env=dict(os.environ, FLAKY_MODE="sleep"))
    attempt = d.with_name(f".{d.name}.forced")
    wait_for(lambda: (attempt / "tables" / "partial.parquet").exists())
    assert load_results("flaky").version.tolist() == ["1"] and main(["results", "flaky", "--list"]) == 0
    assert "complete" in capsys.readouterr().out
    os.killpg(p.pid, signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "kept as it was" in err and "Traceback" not in err, err
    assert snapshot(d) == before
    # one that completes takes the run's place, whole, and leaves nothing beside it
    monkeypatch.setenv("FLAKY_MODE", "ok")
    monkeypatch.setenv("FLAKY_VERSION", "2")
    assert main(["run", "flaky", "--force", "--quiet"]) == 0
    assert load_results("flaky").version.tolist() == ["2"] and json.loads((d / "status.json").read_text())["state"] == "complete"
    assert sorted(p.name for p in (runs_dir / "flaky").iterdir()) == [d.name]          # no attempt, no old copy
    assert not (d / ".lock").exists() and (d / "figures" / "fig.png").exists()
    assert Run.from_dir(d).id == d.name and set(Run.from_dir(d).read_table().run_id) == {d.name}


RACER = """
import sys, time
from pathlib import Path
import adaptbench.runs as R
from adaptbench.core import RunLockedError
judge = R.lock_holder
def slow_judge(path):
    "The judgement of a lock, then a pause before acting on it: the window in which another process acts too."
    holder = judge(path)
    if holder is None and Path(path).name == ".lock": time.sleep(0.5)
    return holder
R.lock_holder = slow_judge
run = R.Run.from_dir(sys.argv[1])
print("ready", flush=True)
while not Path(sys.argv[2]).exists(): time.sleep(0.002)
try:
    with R.run_lock(run):
        print("won", flush=True)
        time.sleep(2)
except RunLockedError:
    print("locked", flush=True)
"""


@pytest.mark.parametrize("racers", [2, 3])
def test_racing_for_a_stale_lock_exactly_one_wins(tmp_path, racers):
    "Processes that all find the same stale lock and take it over at once: exactly one holds the run."
    import socket
    run = Run.create("race", {"n": 1}, tmp_path / "runs")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run.dir / ".lock").write_text(json.dumps(dict(pid=int(dead.stdout), host=socket.gethostname())))
    go = tmp_path / "go"
    ps = [subprocess.Popen([sys.executable, "-c", RACER, str(run.dir), str(go)], stdout=subprocess.PIPE, text=True)
          for _ in range(racers)]
    for p in ps: assert p.stdout.readline().strip() == "ready"
    go.touch()                                                             # all at once
    outcomes = sorted(p.communicate(timeout=60)[0].strip() for p in ps)
    assert outcomes == ["locked"] * (racers - 1) + ["won"], outcomes
    assert sorted(os.listdir(run.dir)) == ["params.json"]                 # released; nothing left of the stale lock
