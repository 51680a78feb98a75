"""Atomic writes: a process killed while writing leaves the previous table whole, never a half-written one."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from adaptbench.runs import Run

WRITER = """
import sys, numpy as np, pandas as pd
from adaptbench.runs import Run
run = Run.from_dir(sys.argv[1])
big = pd.DataFrame(np.random.rand(400_000, 8), columns=list('abcdefgh'))
print('ready', flush=True)
while True:
    run.write_table(big, 'results')
"""


def test_killed_writer_never_leaves_a_partial_table(tmp_path):
    run = Run.create("atomic", {"k": 1}, tmp_path)
    run.write_table(pd.DataFrame({"a": [1.0]}), "results")
    for delay in (0.05, 0.2, 0.45, 0.8):
        p = subprocess.Popen([sys.executable, "-c", WRITER, str(run.dir)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        df = run.read_table("results")                # must parse: the old table or a whole new one
        assert len(df) in (1, 400_000)
    files = os.listdir(run.dir / "tables")
    assert [f for f in files if not f.startswith(".")] == ["results.parquet"]  # temp files are hidden, never read
    assert any(f.endswith(".tmp") for f in files), "no kill landed mid-write: the test tested nothing"


@pytest.fixture(params=[(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)], ids=["umask022", "umask002"])
def umask(request):
    "Run the test under a umask; yields (umask, the mode of a new file, of a new folder)."
    old = os.umask(request.param[0])
    try: yield request.param
    finally: os.umask(old)


def modes(root):
    "Mode bits of every file and folder under `root` (relative path → mode)."
    return {str(p.relative_to(root)): p.stat().st_mode & 0o777 for p in sorted(root.rglob("*"))}


def test_every_writer_honours_the_umask(tmp_path, umask):
    "Results, parameters, status, figures, locks and replaced folders are created as the umask says (not 0600)."
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from adaptbench.core import atomic_path, atomic_write_json, atomic_write_text
    from adaptbench.runs import run_lock
    _, file_mode, dir_mode = umask
    atomic_write_text(tmp_path / "core" / "a.txt", "x")
    atomic_write_json(tmp_path / "core" / "a.json", {"a": 1})
    with atomic_path(tmp_path / "core" / "b.csv") as tmp: pd.DataFrame({"a": [1]}).to_csv(tmp)
    run = Run.create("perm", {"k": 1}, tmp_path / "runs")                   # params.json
    run.mark("running")                                                     # status.json
    run.write_table(pd.DataFrame({"a": [1.0]}))                             # parquet
    run.save_figure(plt.figure(), "fig")                                    # png
    with run_lock(run) as lock: assert lock.stat().st_mode & 0o777 == file_mode
    new = run.aside()                                                       # a forced rerun's folder, swapped in
    new.write_table(pd.DataFrame({"a": [2.0]})); new.save_figure(plt.figure(), "fig"); new.mark("complete")
    run.replace_with(new)
    got = modes(tmp_path)
    want = {k: dir_mode if (tmp_path / k).is_dir() else file_mode for k in got}
    assert got == want
    assert {"core/a.json", f"runs/perm/{run.id}/params.json", f"runs/perm/{run.id}/status.json",
            f"runs/perm/{run.id}/tables/results.parquet", f"runs/perm/{run.id}/figures/fig.png"} <= set(got)


def test_a_run_through_the_command_line_honours_the_umask(studies, runs_dir, umask):
    "Everything an `adaptbench run` writes (papermill's notebook, the kernel's own files included) follows the umask."
    _, file_mode, dir_mode = umask
    r = subprocess.run(["adaptbench", "run", "ok", "--quiet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    got = modes(runs_dir)
    assert got and got == {k: dir_mode if (runs_dir / k).is_dir() else file_mode for k in got}
