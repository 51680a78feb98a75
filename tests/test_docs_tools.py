"""The docs tools: README generated from nbs/index.ipynb, reference-run cells on study pages, figure shrinking."""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import readme  # noqa: E402
import reference_run as rr  # noqa: E402


def test_readme_is_generated_from_index():
    assert (ROOT / "README.md").read_text() == readme.readme_text(), "run `python tools/readme.py`"


def test_readme_rebases_image_paths_and_skips_hidden_cells(tmp_path):
    nb = dict(nbformat=4, nbformat_minor=5, metadata={}, cells=[
        dict(cell_type="markdown", metadata={}, source="# T\n\n![a](images/x.png) ![b](https://h/images/y.png) ![c](nbs/images/z.png)"),
        dict(cell_type="code", metadata={}, outputs=[], execution_count=None, source="#| hide\nsecret = 1"),
        dict(cell_type="code", metadata={}, outputs=[], execution_count=None, source="#| eval: false\nshown = 2")])
    (tmp_path / "index.ipynb").write_text(json.dumps(nb))
    text = readme.readme_text(tmp_path / "index.ipynb")
    assert "](nbs/images/x.png)" in text and "](https://h/images/y.png)" in text and "](nbs/images/z.png)" in text
    assert "secret" not in text and "```python\nshown = 2\n```" in text and "#|" not in text


def _run(tmp_path, study="smoke", state="complete"):
    d = tmp_path / study / "abc123"
    (d / "figures").mkdir(parents=True); (d / "tables").mkdir()
    (d / "params.json").write_text(json.dumps(dict(study=study, version="9.9", params=dict(n_prompts=3, model=""))))
    (d / "status.json").write_text(json.dumps(dict(state=state, updated="2026-01-02T03:04:05", seconds=12.3)))
    pd.DataFrame(dict(run_id="abc123", prompt=["p|q", "r"], score=[0.123456, float("nan")])).to_parquet(d / "tables" / "results.parquet")
    return d


def test_reference_cell_and_notebook_update(tmp_path):
    d = _run(tmp_path)
    md = rr.reference_cell("smoke", d, ["a.png"], None, rows=1)
    assert rr.MARK in md and "`abc123`" in md and "adaptbench run smoke -p n_prompts 3" in md
    assert "-p model" not in md                                           # equal to the default: not in the command
    assert "| prompt | score |" in md and "| p\\|q | 0.123 |" in md and "first 1 of 2 rows" in md
    assert "](../images/studies/smoke/a.png)" in md
    nb = tmp_path / "s.ipynb"
    cells = [dict(cell_type="markdown", id="t", metadata={}, source="# Title\n\n> what"),
             dict(cell_type="code", id="p", metadata={"tags": ["parameters"]}, outputs=[], execution_count=None, source="x = 1")]
    nb.write_text(json.dumps(dict(nbformat=4, nbformat_minor=5, metadata={}, cells=cells)))
    assert rr.update_notebook(nb, md) == "inserted"
    assert rr.update_notebook(nb, md.replace("abc123", "def456")) == "replaced"
    got = json.loads(nb.read_text())["cells"]
    assert [c["cell_type"] for c in got] == ["markdown", "markdown", "code"]     # one cell, right after the title
    assert "def456" in "".join(got[1]["source"]) and "abc123" not in "".join(got[1]["source"])


def test_reference_run_refuses_incomplete_or_foreign_runs(tmp_path, capsys):
    with pytest.raises(SystemExit): rr.main(["smoke", str(_run(tmp_path, state="running"))])
    assert "not complete" in capsys.readouterr().err
    with pytest.raises(SystemExit): rr.main(["smoke", str(_run(tmp_path / "o", study="forgetting"))])
    assert "is a run of 'forgetting'" in capsys.readouterr().err
    with pytest.raises(SystemExit): rr.main(["no_such_study", str(tmp_path)])
    assert "no study notebook" in capsys.readouterr().err


def test_shrink_png_meets_the_size_limit(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8)).save(tmp_path / "big.png")   # ~1.4 MB of noise
    before, after = rr.shrink_png(tmp_path / "big.png", tmp_path / "small.png", max_kb=100)
    assert before > 500 * 1024 and after == (tmp_path / "small.png").stat().st_size and after <= 100 * 1024
    assert Image.open(tmp_path / "small.png").width < 800


def test_the_sidebar_lists_every_notebook_once():
    "nbs/sidebar.yml is written by hand (grouped); a new notebook must be placed in it, and nothing listed twice."
    import yaml
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    side = yaml.safe_load((root / "nbs" / "sidebar.yml").read_text())
    pages = []
    def walk(x):
        if isinstance(x, str) and x.endswith(".ipynb"): pages.append(x)
        elif isinstance(x, dict): [walk(v) for v in x.values()]
        elif isinstance(x, list): [walk(v) for v in x]
    walk(side)
    nbs = sorted(p.relative_to(root / "nbs").as_posix() for p in (root / "nbs").rglob("*.ipynb")
                 if not any(part.startswith(("_", ".")) for part in p.relative_to(root / "nbs").parts))
    assert len(pages) == len(set(pages)), f"listed twice: {sorted({p for p in pages if pages.count(p) > 1})}"
    assert sorted(pages) == nbs, f"not in the sidebar: {sorted(set(nbs) - set(pages))}; no such notebook: {sorted(set(pages) - set(nbs))}"
    names = [x["section"] for x in side["website"]["sidebar"]["contents"] if isinstance(x, dict)]
    assert names == ["Studies", "Explanations", "Reference"]
