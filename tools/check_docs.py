"""Docs check that needs no Quarto binary (it cannot be installed on these machines).

0. Lint: nbdev's docs processing executes, out of context, every cell that holds an import (besides exported
   cells), so such a cell must hold only imports (and definitions); mixed cells fail with their place named.
1. Run nbdev's docs pre-processing (what `nbdev-proc-nbs` does, minus the Quarto install): nbs/nbdev.yml,
   nbs/sidebar.yml and the processed notebooks in _proc/.
2. Check the site config: _quarto.yml parses, nbs/_quarto.yml is it, every sidebar page exists.
3. Render every processed notebook to HTML (nbconvert) and check each page: a title, no error outputs,
   no nbdev directives left in code. Where headless Chromium is present, open each page in it and check the
   browser sees the title (set ADAPTBENCH_REQUIRE_BROWSER=1 to fail when Chromium is missing).
Quarto, where installed, renders the same _proc/ folder with `nbdev-docs`.
"""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml
from nbconvert import HTMLExporter

ROOT = Path(__file__).resolve().parent.parent
os.chdir(ROOT)


def fail(msg):
    print(f"docs check FAILED: {msg}", file=sys.stderr)
    sys.exit(1)


def lint_import_cells():
    "Cells nbdev would execute for the docs (imports, not exported) must be imports and definitions only."
    import ast, warnings
    from nbdev.process import NBProcessor
    from nbdev.processors import _do_eval
    ok, bad = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef), []
    for f in sorted((ROOT / "nbs").rglob("*.ipynb")):
        if ".ipynb_checkpoints" in f.parts: continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for c in NBProcessor(f).nb.cells:
                if c.cell_type != "code" or not _do_eval(c): continue
                if c.directives_.keys() & {"export", "exports", "exporti", "exec_doc"}: continue
                if not all(isinstance(t, ok) for t in c.parsed_()):
                    bad.append(f"{f.relative_to(ROOT)} cell {c.idx_}: {c.source.strip().splitlines()[0][:60]!r}")
    if bad: fail("cells mixing imports with other code (the docs build runs them out of context; "
                 "put the imports in a cell of their own):\n  " + "\n  ".join(bad))
    print("   import cells are imports only")


def preprocess() -> Path:
    from nbdev.quarto import nbdev_sidebar, refresh_quarto_yml
    from nbdev.serve import proc_nbs
    refresh_quarto_yml()                      # writes nbs/nbdev.yml; keeps our _quarto.yml
    nbdev_sidebar.__wrapped__(path=ROOT / "nbs")
    return Path(proc_nbs(ROOT / "nbs", n_workers=0))


def check_config(cache: Path) -> list[Path]:
    cfg = yaml.safe_load((ROOT / "_quarto.yml").read_text())
    if cfg.get("project", {}).get("type") != "website": fail("_quarto.yml: project.type must be website")
    if (ROOT / "nbs" / "_quarto.yml").resolve() != (ROOT / "_quarto.yml").resolve():
        fail("nbs/_quarto.yml must be a link to the top-level _quarto.yml")
    for f in cfg.get("metadata-files", []):
        if not (ROOT / "nbs" / f).exists(): fail(f"metadata file nbs/{f} is missing")
    side = yaml.safe_load((ROOT / "nbs" / "sidebar.yml").read_text())
    pages = []
    def walk(x):
        if isinstance(x, str) and x.endswith((".ipynb", ".qmd", ".md")): pages.append(x)
        elif isinstance(x, dict): [walk(v) for v in x.values()]
        elif isinstance(x, list): [walk(v) for v in x]
    walk(side)
    if not pages: fail("sidebar.yml lists no pages")
    missing = [p for p in pages if not (cache / p).exists()]
    if missing: fail(f"sidebar pages missing from the processed site: {missing}")
    return [cache / p for p in pages]


def _front_matter_to_title_block(nb) -> str | None:
    "Replace nbdev's front-matter raw cell by the title block Quarto would show; return the title."
    for i, c in enumerate(nb.cells):
        if c.cell_type == "raw" and c.source.lstrip().startswith("---"):
            fm = yaml.safe_load(c.source.strip().strip("-")) or {}
            if fm.get("title"):
                nb.cells[i] = nbformat.v4.new_markdown_cell(f"# {fm['title']}\n\n> {fm.get('description', '')}")
                return str(fm["title"])
    return None


def render(pages: list[Path], cache: Path, out: Path) -> list[tuple[Path, str]]:
    exporter, done = HTMLExporter(), []
    for nb_path in pages:
        raw = json.loads(nb_path.read_text())
        for c in raw["cells"]:                               # drop nbdev's processing marks (not notebook schema)
            c.pop("has_sd", None); c.get("metadata", {}).pop("execution", None)
        nb = nbformat.reads(json.dumps(raw), as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        if re.search(r"^#\|\s*(export|exporti|default_exp|hide)\b", code, re.M):
            fail(f"{nb_path.name}: nbdev directives left after processing")
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
        if errors: fail(f"{nb_path.name}: saved error output ({errors[0].get('ename')})")
        title = _front_matter_to_title_block(nb)
        if not title: fail(f"{nb_path.name}: no title (a '# Title' markdown cell, which nbdev turns into front matter)")
        html, _ = exporter.from_notebook_node(nb)
        dest = out / nb_path.relative_to(cache).with_suffix(".html")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(html)
        done.append((dest, title))
    return done


def browser_check(pages: list[tuple[Path, str]]):
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe:
        if os.environ.get("ADAPTBENCH_REQUIRE_BROWSER") == "1": fail("headless Chromium is required but not installed")
        print("   (no Chromium here: browser check skipped)")
        return
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    for html, title in pages:
        udd = html.parent / f".chromium-{html.stem}"
        r = subprocess.run([exe, *flags, f"--user-data-dir={udd}", "--dump-dom", html.as_uri()],
                           capture_output=True, text=True, timeout=120)
        shutil.rmtree(udd, ignore_errors=True)
        dom = r.stdout
        if r.returncode != 0 or "<body" not in dom: fail(f"Chromium could not open {html.name}: {r.stderr[-500:]}")
        words = re.sub(r"[^\w ]", " ", title).split()
        if not all(w in dom for w in words): fail(f"Chromium's DOM of {html.name} lacks its title {title!r}")
    print(f"   Chromium opened {len(pages)} pages, each showing its title")


if __name__ == "__main__":
    lint_import_cells()
    cache = preprocess()
    pages = check_config(cache)
    out = ROOT / "_docs_check"
    shutil.rmtree(out, ignore_errors=True); out.mkdir()
    rendered = render(pages, cache, out)
    print(f"   {len(rendered)} pages processed and rendered to HTML in {out.relative_to(ROOT)}/")
    browser_check(rendered)
