"""Atomic writes: a process killed while writing leaves the previous table whole, never a half-written one."""
import os
import signal
import subprocess
import sys
import time

import pandas as pd

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
