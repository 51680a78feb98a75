"""Shared fixtures: offline mode, a private runs folder, and tiny study notebooks made on the fly."""
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import nbformat
import pytest


def make_study(folder, name, params_src, body_src):
    "Write `folder/name.ipynb`: a `parameters` cell, then a body cell."
    nb = nbformat.v4.new_notebook()
    p = nbformat.v4.new_code_cell(params_src)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell(body_src)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / f"{name}.ipynb")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    d = tmp_path / "runs"
    monkeypatch.setenv("ADAPTBENCH_RUNS_DIR", str(d))
    return d


@pytest.fixture
def studies(tmp_path, monkeypatch):
    "A studies folder with `ok` (writes a table), `boom` (raises) and `typed` (one parameter of each type)."
    d = tmp_path / "studies"
    d.mkdir()
    make_study(d, "ok", 'n = 3  # rows\nlabel = "x"  # a label\nrun_dir = ""  # set by the runner',
               "import pandas as pd\nfrom adaptbench.catalogue import current_run\n"
               "run = current_run('ok', dict(n=n, label=label), run_dir)\n"
               "run.write_table(pd.DataFrame({'i': range(n), 'label': label}))\n"
               "open(run.dir / 'executions.txt', 'a').write('1')")
    make_study(d, "boom", 'n = 1  # anything\nrun_dir = ""  # set by the runner',
               "raise RuntimeError(f'planted failure with n={n}')")
    make_study(d, "typed", 'i = 1  # int\nx = 0.5  # float\nflag = False  # bool\nname = "a"  # str\n'
               'items = [1, 2]  # list\nrun_dir = ""  # set by the runner', "pass")
    monkeypatch.setenv("ADAPTBENCH_STUDIES_DIR", str(d))
    return d
