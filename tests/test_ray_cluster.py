"""Losing a node: a sweep on a two-node Ray cluster (a head and a worker, each started with `ray start` on loopback)
whose worker dies mid-run still finishes with every run complete exactly once; a dead process's lock is stale."""
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import make_study

from adaptbench.runs import Run, load_results, lock_holder, run_lock

NAP = 4.0                                           # seconds each run's body sleeps: the worker is killed inside it
RAY = str(Path(sys.executable).with_name("ray"))    # the `ray` command of this environment
LINUX = Path("/proc/self/stat").exists()

# Each run records each start (the kernel's pid, the time) and each completion (the pid) of its body in append-only
# files of its folder.
NAPPER = ("import os, time, pandas as pd\nfrom adaptbench.catalogue import current_run\n"
          "run = current_run('napper', dict(n=n, nap=nap), run_dir)\n"
          "open(run.dir / 'starts.txt', 'a').write(f'{os.getpid()} {time.time()}\\n')\n"
          "time.sleep(nap)\n"
          "run.write_table(pd.DataFrame({'n': [n], 'sq': [n * n]}))\n"
          "open(run.dir / 'ends.txt', 'a').write(f'{os.getpid()}\\n')")

# A second driver: it holds the head's only CPU (a task pinned there by the head's custom resource) until told to let
# go, so that the sweep's first run can only start on the worker node; then it reports the cluster's nodes once one
# of them is dead.
HOLD_HEAD = """
import json, os, sys, time, pathlib, ray
ray.init(address=sys.argv[1], log_to_driver=False)
held, release, report = (pathlib.Path(a) for a in sys.argv[2:5])
while sum(n["Alive"] for n in ray.nodes()) < 2: time.sleep(0.2)
@ray.remote(num_cpus=1, resources={"head_node": 1})
def hold():
    held.write_text(str(os.getpid()))
    while not release.exists(): time.sleep(0.1)
ray.get(hold.remote())
deadline = time.time() + 60                  # the sweep is retrying its run by now: the lost node is seen as dead
while all(n["Alive"] for n in ray.nodes()) and time.time() < deadline: time.sleep(0.2)
report.write_text(json.dumps([dict(host=n["NodeManagerHostname"], alive=n["Alive"]) for n in ray.nodes()]))
"""


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks: s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks: s.close()
    return ports


def wait_for(cond, timeout, what):
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout: raise TimeoutError(f"waited {timeout} s for {what}")
        time.sleep(0.1)


def proc_state(pid):
    "(state, session id) of `pid` from /proc, or None once it is gone."
    try: fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError): return None
    return fields[0], int(fields[3])


def alive(pid):
    "Whether `pid` runs (a zombie does not)."
    return (proc_state(pid) or ("Z",))[0] != "Z"


def kill_session(sid):
    "SIGKILL every process of session `sid`: a whole Ray node (raylet, agents and workers, in process groups of their own)."
    for _ in range(3):
        pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and (proc_state(p.name) or ("", 0))[1] == sid]
        for pid in pids:
            try: os.kill(pid, signal.SIGKILL)
            except ProcessLookupError: pass
        if not pids: return


@pytest.fixture
def cluster(studies, runs_dir):
    "A head and a worker node on loopback, 1 CPU each, each in a session of its own: killed by session afterwards."
    tmp = Path(tempfile.mkdtemp(prefix="rayc-", dir="/tmp"))    # short: Ray's socket paths must stay < 108 characters
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0",   # loopback only: no token needed
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),   # workers import adaptbench
               # the head declares a silent node dead after ~2 s (default: ~30 s)
               RAY_health_check_initial_delay_ms="1000", RAY_health_check_period_ms="500",
               RAY_health_check_timeout_ms="500", RAY_health_check_failure_threshold="3")
    port, *ports = free_ports(13)
    common = ["--block", "--num-cpus", "1", "--object-store-memory", str(80 * 2**20), "--disable-usage-stats",
              "--node-ip-address", "127.0.0.1", "--include-log-monitor", "false"]

    def start(name, *args):
        "A node in a session of its own, on ports of its own (two nodes share this host)."
        own = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
               "--dashboard-agent-grpc-port", "--runtime-env-agent-port", "--metrics-export-port"]
        own = [str(x) for flag in own for x in (flag, ports.pop())]
        return subprocess.Popen([RAY, "start", *args, *common, *own, "--temp-dir", str(tmp / name)], env=env,
                                stdout=open(tmp / f"{name}.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    nodes = {}
    try:
        nodes["head"] = start("head", "--head", "--port", str(port), "--include-dashboard", "false",
                              "--resources", json.dumps({"head_node": 1}))
        wait_for(lambda: "Ray runtime started" in (tmp / "head.log").read_text() or nodes["head"].poll() is not None,
                 120, "the head node")
        assert nodes["head"].poll() is None, (tmp / "head.log").read_text()[-3000:]
        nodes["worker"] = start("worker", "--address", f"127.0.0.1:{port}", "--resources", json.dumps({"worker_node": 1}))
        yield dict(address=f"127.0.0.1:{port}", env=env, **nodes)
    finally:                                        # not `ray stop`: it would stop every Ray instance on this machine
        for p in nodes.values():
            kill_session(p.pid)
            p.wait(30)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install 'ray>=2.9'")
@pytest.mark.skipif(not LINUX, reason="kills the worker node's processes by session, found in /proc")
def test_sweep_survives_losing_a_worker_node(cluster, studies, runs_dir, tmp_path):
    make_study(studies, "napper", f'n = 1  # which run [range: 1..]\nnap = {NAP}  # seconds the body sleeps\n'
               'run_dir = ""  # set by the runner', NAPPER)
    spec = tmp_path / "grid.yaml"
    spec.write_text(yaml.safe_dump(dict(grid=dict(n=[1, 2, 3, 4]))))
    held, release, report = tmp_path / "held", tmp_path / "release", tmp_path / "nodes.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_HEAD, cluster["address"], str(held), str(release), str(report)],
                              env=cluster["env"], stdout=subprocess.DEVNULL, stderr=open(tmp_path / "hold.log", "w"))
    sweeper = None
    try:
        wait_for(lambda: held.exists() or holder.poll() is not None, 120, "the worker node to join, the head's CPU held")
        assert holder.poll() is None, (tmp_path / "hold.log").read_text()[-3000:]
        t0 = time.time()
        # the documented command, on the cluster named by RAY_ADDRESS
        sweeper = subprocess.Popen([sys.executable, "-c", "import sys; from adaptbench.cli import main; sys.exit(main())",
                                    "sweep", "napper", str(spec), "--executor", "ray", "--quiet"],
                                   env=dict(cluster["env"], RAY_ADDRESS=cluster["address"]),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started = lambda: [f for f in (runs_dir / "napper").glob("*/starts.txt") if f.read_text().endswith("\n")]
        wait_for(lambda: started() or sweeper.poll() is not None, 120, "the first run to start")
        assert sweeper.poll() is None, sweeper.communicate()
        (first,) = started()                        # the head's CPU is held: this run is on the worker node
        victim = first.parent
        ray_worker = json.loads((victim / "status.json").read_text())["pid"]     # the process holding the run's lock
        assert os.getsid(ray_worker) == cluster["worker"].pid
        kernel = int(first.read_text().split()[0])                                # the run's kernel (its own session)
        kill_session(cluster["worker"].pid)                                       # the worker node dies mid-run
        wait_for(lambda: not alive(ray_worker), 10, "the worker node's processes to die")
        left = (victim / ".lock").read_text()
        assert json.loads(left)["pid"] == ray_worker, left                       # its lock is left behind ...
        assert lock_holder(victim / ".lock") is None                              # ... and is stale
        t_kill, t_release = time.time() - t0, time.time()
        release.write_text("")                                                    # the head takes runs from now on
        out, err = sweeper.communicate(timeout=240)
        t_done = time.time() - t0
        assert holder.wait(60) == 0, (tmp_path / "hold.log").read_text()[-3000:]
        nodes = json.loads(report.read_text())
    finally:
        release.write_text("")
        for p in (sweeper, holder):
            if p is not None and p.poll() is None: p.kill()
    print(f"worker killed {t_kill:.1f} s into the sweep; sweep done after {t_done:.1f} s")
    # the sweep reports every run complete (exit 0), in its output and in its summary file
    assert sweeper.returncode == 0, err
    assert "sweep of 4 runs" in out and "4 complete" in out, out
    (summary,) = (runs_dir / "napper" / "_sweeps").glob("*.csv")
    s = pd.read_csv(summary)
    assert sorted(s.n) == [1, 2, 3, 4] and set(s.state) == {"complete"}
    # one folder per parameter set, each complete and unlocked; each body completed exactly once, and only the run
    # interrupted on the dead node started twice (a half-done run is redone: a run has no partial results to resume)
    dirs = sorted(d for d in (runs_dir / "napper").iterdir() if d.name != "_sweeps")
    assert len(dirs) == 4
    for d in dirs:
        assert json.loads((d / "status.json").read_text())["state"] == "complete"
        assert not (d / ".lock").exists()
        assert len((d / "ends.txt").read_text().split()) == 1, d
        assert len((d / "starts.txt").read_text().splitlines()) == (2 if d == victim else 1), d
    retry = (victim / "starts.txt").read_text().splitlines()[1].split()
    assert float(retry[1]) > t_release                                            # on the head, once it was free
    assert int((victim / "ends.txt").read_text()) == int(retry[0]) != kernel      # completed by the second attempt
    wait_for(lambda: not alive(kernel), 10, "the dead node's kernel to exit")     # nothing runs on for the dead node
    df = load_results("napper")
    assert sorted(df.n) == [1, 2, 3, 4] and sorted(df.sq) == [1, 4, 9, 16]        # each table once
    # what frees a lock left on another host (`sweeps._lock_of_dead_node`) reads: the dead node, by host name
    assert sorted(n["alive"] for n in nodes if n["host"] == socket.gethostname()) == [False, True], nodes


@pytest.mark.skipif(not LINUX, reason="zombies are found in /proc")
def test_a_lock_held_by_a_zombie_is_stale(tmp_path):
    "A process killed but not yet reaped (a Ray worker whose node died with it, until pid 1 reaps it) holds no lock."
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    p.kill()
    wait_for(lambda: proc_state(p.pid)[0] == "Z", 10, "a zombie")               # dead, but its pid is still taken
    run = Run.create("demo", {"n": 1}, tmp_path)
    (run.dir / ".lock").write_text(json.dumps(dict(pid=p.pid, host=socket.gethostname())))
    assert lock_holder(run.dir / ".lock") is None
    with run_lock(run): assert lock_holder(run.dir / ".lock")["pid"] == os.getpid()
    p.wait()


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install 'ray>=2.9'")
def test_a_run_that_kills_its_worker_every_time_is_a_failed_row(studies, runs_dir, monkeypatch):
    "Retries are for lost workers; once they are spent the run is a failed row and the sweep goes on (local Ray)."
    from adaptbench import sweeps
    monkeypatch.setattr(sweeps, "_RAY_RETRIES", 1)                                # one retry is enough to show it
    make_study(studies, "killer", 'n = 1  # which run [range: 1..]\nrun_dir = ""  # set by the runner',
               "import os, signal, pandas as pd\nfrom adaptbench.catalogue import current_run\n"
               "run = current_run('killer', dict(n=n), run_dir)\n"
               "open(run.dir / 'starts.txt', 'a').write('1')\n"
               "if n == 2: os.kill(os.getppid(), signal.SIGKILL)   # the kernel's parent: the Ray worker\n"
               "run.write_table(pd.DataFrame({'n': [n]}))")
    df = sweeps.sweep("killer", dict(grid=dict(n=[2, 1])), executor="ray", progress=False)
    assert dict(zip(df.n, df.state)) == {2: "failed", 1: "complete"}
    assert "died" in df.set_index("n").error[2].lower()
    starts = {json.loads((d / "params.json").read_text())["params"]["n"]: len((d / "starts.txt").read_text())
              for d in (runs_dir / "killer").iterdir() if d.name != "_sweeps"}
    assert starts == {2: 2, 1: 1}                                                 # n = 2: tried, retried once, given up
    assert all(lock_holder(d / ".lock") is None for d in (runs_dir / "killer").iterdir())   # no run is left locked
