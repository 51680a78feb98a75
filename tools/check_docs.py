"""Docs check that needs no Quarto binary (it cannot be installed on these machines).

0. Lint: nbdev's docs processing executes, out of context, every cell that holds an import (besides exported
   cells), so such a cell must hold only imports (and definitions); mixed cells fail with their place named.
1. Run nbdev's docs pre-processing (what `nbdev-proc-nbs` does, minus the Quarto install): nbs/nbdev.yml,
   nbs/sidebar.yml and the processed notebooks in _proc/.
2. Check the site config: _quarto.yml parses, nbs/_quarto.yml is it, every sidebar page exists.
3. Render every processed notebook to HTML (nbconvert) and check each page: a title, no error outputs,
   no nbdev directives left in code. Where headless Chromium is present, open each page in it and check the
   browser sees the title (set ADAPTBENCH_REQUIRE_BROWSER=1 to fail when Chromium is missing).
4. The home page carries the README: README.md equals what `tools/readme.py` writes from nbs/index.ipynb, and the
   rendered home page shows every `## ` heading of the README.
5. Every study page shows its reference run: at least one image whose file exists (static check on the rendered
   HTML); in Chromium, the images load (naturalWidth > 0) and a screenshot of the page with its first figure moved
   to the top (saved in _docs_check/screenshots/) is not blank where the figure is drawn.
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


def check_readme():
    "README.md is generated from nbs/index.ipynb (tools/readme.py) and equal to it."
    sys.path.insert(0, str(ROOT / "tools"))
    from readme import readme_text
    if not (ROOT / "README.md").exists() or (ROOT / "README.md").read_text() != readme_text():
        fail("README.md differs from nbs/index.ipynb, its source: edit nbs/index.ipynb, then run "
             "`python tools/readme.py` to regenerate README.md")
    print("   README.md is generated from nbs/index.ipynb")


def readme_headings() -> list[str]:
    "The `## ` headings of README.md (outside code blocks)."
    out, fence = [], False
    for l in (ROOT / "README.md").read_text().splitlines():
        if l.startswith("```"): fence = not fence
        elif not fence and l.startswith("## "): out.append(l[3:].strip())
    return out


def _words(text: str) -> list[str]: return re.sub(r"[^\w ]", " ", text).split()


def check_home_and_studies(rendered: list[tuple[Path, str]], out: Path) -> list[Path]:
    "Static checks: the home page has the README's headings; each study page has an image whose file exists."
    import html as htmllib
    pages = {h.relative_to(out).as_posix(): h for h, _ in rendered}
    home = pages.get("index.html")
    if home is None: fail("the site has no home page (index.ipynb)")
    text = re.sub(r"<[^>]+>", " ", htmllib.unescape(home.read_text()))
    missing = [h for h in readme_headings() if not all(w in text for w in _words(h))]
    if missing: fail(f"the home page lacks the README's headings {missing}: the README is written from nbs/index.ipynb")
    studies = [h for k, h in pages.items() if k.startswith("studies/")]
    if not studies: fail("the sidebar lists no study pages")
    for h in studies:
        srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', h.read_text())
        ok = [s for s in srcs if s.startswith("data:image/") or (not re.match(r"[a-z]+:", s) and (h.parent / s).is_file())]
        if not ok:
            fail(f"study page {h.relative_to(out)} shows no image (found {srcs[:3] or 'none'}): give it a reference run "
                 f"with `python tools/reference_run.py {h.stem} data/runs/{h.stem}/<run_id>`")
    print(f"   home page has the README's {len(readme_headings())} headings; {len(studies)} study pages show images")
    return studies


_PROBE = """<script>window.addEventListener('load', function () {
  var imgs = Array.from(document.images), ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  var p = document.createElement('pre'); p.id = 'adaptbench-img-probe';
  if (ok.length) { document.body.insertBefore(ok[0], document.body.firstChild); window.scrollTo(0, 0); }
  var r = ok.length ? ok[0].getBoundingClientRect() : {left: 0, top: 0, width: 0, height: 0};
  p.textContent = 'images-loaded ' + ok.length + ' of ' + imgs.length + ' first-at ' + Math.round(r.left) + ' '
    + Math.round(r.top) + ' ' + Math.round(r.width) + ' ' + Math.round(r.height);
  document.body.appendChild(p);
});</script>"""


def _chromium():
    exe = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not exe and os.environ.get("ADAPTBENCH_REQUIRE_BROWSER") == "1": fail("headless Chromium is required but not installed")
    return exe


def screenshot_check(studies: list[Path], out: Path):
    "In Chromium: every study page's images load, and a screenshot at its first figure is not blank."
    exe = _chromium()
    if not exe: print("   (no Chromium here: screenshot check skipped)"); return
    from PIL import Image, ImageStat
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--virtual-time-budget=10000", "--window-size=1200,900"]
    shots = out / "screenshots"; shots.mkdir(exist_ok=True)
    for h in studies:
        probe = h.with_name(h.stem + ".probe.html")
        probe.write_text(h.read_text().replace("</body>", _PROBE + "</body>", 1))
        udd = h.parent / f".chromium-{h.stem}"
        r = subprocess.run([exe, *flags, f"--user-data-dir={udd}", "--dump-dom", probe.as_uri()],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"images-loaded (\d+) of (\d+) first-at (-?\d+) (-?\d+) (\d+) (\d+)", r.stdout)
        if not m: fail(f"Chromium could not open {h.name} (no image probe in its DOM): {r.stderr[-300:]}")
        if int(m[1]) == 0: fail(f"study page {h.relative_to(out)}: none of its {m[2]} images loads in Chromium")
        png = shots / f"{h.stem}.png"
        r = subprocess.run([exe, *flags, f"--user-data-dir={udd}", f"--screenshot={png}", probe.as_uri()],
                           capture_output=True, text=True, timeout=120)
        shutil.rmtree(udd, ignore_errors=True); probe.unlink()
        if not png.exists(): fail(f"Chromium took no screenshot of {h.name}: {r.stderr[-300:]}")
        x, y, w, hgt = map(int, m.groups()[2:])
        im = Image.open(png).convert("RGB")
        im = im.crop((max(0, x), max(0, y), min(im.width, x + w), min(im.height, y + hgt)))   # the figure as shown
        if im.width < 50 or im.height < 50: fail(f"study page {h.relative_to(out)}: its first figure shows at {w}x{hgt} px")
        spread = max(ImageStat.Stat(im).stddev)
        colours = len(im.getcolors(maxcolors=1 << 20) or [])
        if spread < 10 or colours < 16:
            fail(f"screenshot of {h.relative_to(out)}'s first figure looks blank (pixel sd {spread:.1f}, "
                 f"{colours} colours): see {png}")
    print(f"   Chromium: images load on {len(studies)} study pages; screenshots of their first figure are not blank "
          f"({shots.relative_to(ROOT)}/)")


def browser_check(pages: list[tuple[Path, str]]):
    exe = _chromium()
    if not exe:
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
    check_readme()
    lint_import_cells()
    cache = preprocess()
    pages = check_config(cache)
    out = ROOT / "_docs_check"
    shutil.rmtree(out, ignore_errors=True); out.mkdir()
    rendered = render(pages, cache, out)
    shutil.copytree(ROOT / "nbs" / "images", out / "images")   # pages refer to ../images/... as on the site
    print(f"   {len(rendered)} pages processed and rendered to HTML in {out.relative_to(ROOT)}/")
    studies = check_home_and_studies(rendered, out)
    browser_check(rendered)
    screenshot_check(studies, out)
