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


# --- the no-Quarto preview (tools/check_docs.py) shows what Quarto would show -------------------------------------
import check_docs  # noqa: E402


def _nb(*cells):
    import nbformat
    cells = [dict(c, id=f"c{i}") for i, c in enumerate(cells)]
    return nbformat.from_dict(dict(nbformat=4, nbformat_minor=5, metadata={}, cells=cells))


def _md(s): return dict(cell_type="markdown", id="m", metadata={}, source=s)


def _code(s, *outputs): return dict(cell_type="code", id="c", metadata={}, execution_count=1, source=s, outputs=list(outputs))


def _show_doc_output(md):
    return dict(output_type="execute_result", execution_count=1, metadata={},
                data={"text/markdown": md, "text/plain": "PLAIN-FALLBACK"})


def test_preview_applies_cell_options_drops_attributes_and_renders_math():
    "Known answer: a tiny notebook holding each construct renders clean, and each construct renders as Quarto would."
    nb = _nb(
        _md("# Page\n\nInline $x_i^2$ and a price of $5 or $10, display\n\n$$\\frac{a}{b} \\le \\varepsilon$$\n\n"
            "[source](https://h/x.py#L1){target=\"_blank\" style=\"float:right; font-size:smaller\"} "
            "[marked]{.mark} ![fig](images/a.png){width=50%}\n\n## Section {#sec .unnumbered}\n\n"
            "```python\n# a fence keeps $x$ and {target=\"_blank\"} as they are\n```\n\nand `$code$` too"),
        _code("#| echo: false\n#| output: asis\nshow_doc(f)", _show_doc_output(
            "---\n\n[source](https://h/f.py#L3){target=\"_blank\" style=\"float:right\"}\n\n### ShownFunction\n\n"
            "*Returns $\\alpha$ within $$\\delta$$.*")),
        _code("#| include: false\nsecret_cell = 1"),
        _code("#| output: false\nprint('x')", dict(output_type="stream", name="stdout", text="HIDDEN-OUTPUT\n")),
        _code("#| slow\n#| code-fold: true\nvisible_code = 2"),
        _code("#| echo: false\nprint('y')", dict(output_type="stream", name="stdout", text="SHOWN-OUTPUT\n")),
        _code("Markdown('$\\beta$ [doc](https://h/d){target=\"_blank\"}')", dict(output_type="display_data", metadata={},
              data={"text/markdown": "$\\beta$ [doc](https://h/d){target=\"_blank\"}", "text/plain": "<Markdown>"})))
    html = check_docs.to_html(nb)
    assert check_docs.page_problems(html) == []
    prose, code = check_docs.visible_text(html)
    assert "secret_cell" not in html and "HIDDEN-OUTPUT" not in html and "PLAIN-FALLBACK" not in html
    assert "SHOWN-OUTPUT" in html and "print('y')" not in code and "show_doc" not in code
    assert "visible_code = 2" in code and "#|" not in code
    assert "<h3" in html and "ShownFunction" in prose and "source" in prose and "target=" not in prose
    assert html.count("<math") == 5 and 'display="block"' in html             # x_i^2, the fraction, α, δ, β
    assert "$5 or $10" in prose                                                 # a dollar amount is not math
    assert "marked" in prose and "[marked]" not in prose and "{.mark}" not in prose                # a span shows its text
    assert "Section" in prose and "{#sec" not in prose
    assert '{target="_blank"}' in html and "$code$" in html                     # code is left as written
    assert "cdnjs" not in html and "mathjax" not in html.lower()                # nothing from a CDN


@pytest.mark.parametrize("planted, what", [
    ("#| echo: false\nx = 1", "raw cell directive in shown code"),
    ("#| output: asis\nshow_doc(f)", "raw cell directive in shown code")])
def test_a_page_showing_a_raw_directive_fails(planted, what, tmp_path, capsys):
    "A planted raw directive (a page rendered without applying cell options) fails the check, naming page and snippet."
    from nbconvert import HTMLExporter
    html, _ = HTMLExporter().from_notebook_node(_nb(_md("# T"), _code(planted)))
    problems = check_docs.page_problems(html)
    assert problems and problems[0].startswith(what) and planted.splitlines()[0] in problems[0]
    proc = tmp_path / "_proc"; proc.mkdir()
    bad = _nb(dict(cell_type="raw", metadata={}, source="---\ntitle: T\n---"), _md("leaked: `ok` #| echo: false"))
    (proc / "bad.ipynb").write_text(json.dumps(bad))
    with pytest.raises(SystemExit): check_docs.render([proc / "bad.ipynb"], proc, tmp_path / "out")
    err = capsys.readouterr().err
    assert "bad.html" in err and "raw cell directive in the text" in err and "#| echo: false" in err


def test_page_check_names_attribute_text_unrendered_math_and_network_loads():
    page = ("<html><head><script src=\"https://cdn.example/mathjax.js\"></script></head><body>"
            "<p>source{target=\"_blank\" style=\"float:right\"}</p><p>where $$x^2$$ holds and $a_i$ too</p>"
            "<pre>$$in code$$ {target=</pre><p><code>$x$</code></p></body></html>")
    kinds = [p.split(":")[0] for p in check_docs.page_problems(page)]
    assert sorted(set(kinds)) == ["Pandoc/Quarto attribute text", "loads from the network", "unrendered display math",
                                  "unrendered inline math"]
    assert kinds.count("unrendered display math") == 2 and kinds.count("unrendered inline math") == 1


def test_decoding_speedup_figure_is_drawn_from_the_committed_tables(tmp_path, capsys):
    "The home page's decoding figure: tools/plot_decoding_speedups.py redraws it from data/bench/ alone."
    import plot_decoding_speedups
    from PIL import Image
    assert plot_decoding_speedups.main(["--out", str(tmp_path / "s.png")]) == 0
    assert "lossless rows" in capsys.readouterr().out and Image.open(tmp_path / "s.png").width > 500
    assert (ROOT / "nbs" / "images" / "decoding_speedups.png").is_file()
