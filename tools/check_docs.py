"""Docs check that needs no Quarto binary (it cannot be installed on these machines).

0. Lint: nbdev's docs processing executes, out of context, every cell that holds an import (besides exported
   cells), so such a cell must hold only imports (and definitions); mixed cells fail with their place named.
1. Run nbdev's docs pre-processing (what `nbdev-proc-nbs` does, minus the Quarto install): nbs/nbdev.yml,
   nbs/sidebar.yml and the processed notebooks in _proc/.
2. Check the site config: _quarto.yml parses, nbs/_quarto.yml is it, every sidebar page exists.
3. Render every processed notebook to HTML (nbconvert) as Quarto would show it, and check each page: a title, no
   error outputs, no nbdev directives left in code. Quarto's cell options are applied, not printed (`#| echo: false`
   hides the source, `#| output: false` the outputs, `#| include: false` the cell, `#| output: asis` renders a
   markdown or stream output as markdown: nbdev's show_doc cells; other `#|` lines are dropped from shown code);
   Pandoc attributes after links, spans and headings (`{target="_blank" ...}`, `{.class}`) are dropped from markdown;
   math (`$…$`, `$$…$$`) is rendered to MathML on the server (latex2mathml; nothing loads from a CDN: the template's
   RequireJS, MathJax and Mermaid scripts are left out). A page FAILS when its visible text still shows a raw `#|`
   directive, attribute text or unrendered math, or when it loads anything from the network; the message names the
   page and the snippet. Where headless Chromium is present, open each page in it and check the browser sees the
   title (set ADAPTBENCH_REQUIRE_BROWSER=1 to fail when Chromium is missing).
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


_FENCE = re.compile(r"^(```|~~~)")
_ATTR_BODY = r"""\s*(?:[.#][A-Za-z][\w-]*|[A-Za-z][\w-]*=(?:"[^"\n]*"|'[^'\n]*'|[^\s}]+))(?:\s+(?:[.#][A-Za-z][\w-]*|[A-Za-z][\w-]*=(?:"[^"\n]*"|'[^'\n]*'|[^\s}]+)))*\s*"""
_LINK_ATTR = re.compile(r"(\]\([^)\n]*\))\{" + _ATTR_BODY + r"\}")          # [text](url){...}, ![](img){...}
_SPAN_ATTR = re.compile(r"(?<![\]!])\[([^\[\]\n]*)\]\{" + _ATTR_BODY + r"\}")     # [text]{.class}: a span, shown as its text
_HEAD_ATTR = re.compile(r"^(#{1,6} .*?)\s*\{" + _ATTR_BODY + r"\}\s*$", re.M)
_DIV = re.compile(r"^:::+\s*(\{[^}\n]*\}|[\w-]+)?\s*$", re.M)           # Pandoc fenced divs (callouts): fences dropped
_DMATH = re.compile(r"\$\$(.+?)\$\$", re.S)
_IMATH = re.compile(r"(?<![\\$\w])\$(?=[^\s$])((?:\\\$|[^$\n])+?)(?<=[^\s\\])\$(?!\d)")   # Pandoc's tex_math_dollars
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.S)
_PH = "ABMATHPH{}QZ"


class _Math:
    "Math found in a page's markdown, replaced by placeholders and put back as MathML after the markdown is rendered."
    def __init__(self): self.items = []
    def hold(self, tex: str, display: bool) -> str:
        from latex2mathml.converter import convert
        try: html = convert(tex.strip(), display="block" if display else "inline")
        except Exception: html = None                       # unrenderable: left as TeX, and the page check names it
        if html is None: return ("$$" if display else "$") + tex + ("$$" if display else "$")
        self.items.append(html)
        return _PH.format(len(self.items) - 1)
    def restore(self, html: str) -> str:
        return re.sub(r"ABMATHPH(\d+)QZ", lambda m: self.items[int(m[1])], html)


def _prose(md: str, math: _Math) -> str:
    "Markdown outside code: math to placeholders, Pandoc attributes and fenced-div fences dropped."
    md = _DMATH.sub(lambda m: "\n\n" + math.hold(m[1], True) + "\n\n" if m[0].count("\n") else math.hold(m[1], True), md)
    md = _IMATH.sub(lambda m: math.hold(m[1], False), md)
    md = _LINK_ATTR.sub(r"\1", md)
    md = _SPAN_ATTR.sub(r"\1", md)
    md = _HEAD_ATTR.sub(r"\1", md)
    return _DIV.sub("", md)


def quarto_markdown(md: str, math: _Math) -> str:
    "Markdown as Quarto shows it: code fences and code spans kept as they are; elsewhere see `_prose`."
    out, buf, fence = [], [], None
    def flush():
        text, pos, parts = "\n".join(buf), 0, []
        for m in _CODE_SPAN.finditer(text):                  # code spans are left alone
            parts += [_prose(text[pos:m.start()], math), m[0]]; pos = m.end()
        out.append("".join(parts) + _prose(text[pos:], math)); buf.clear()
    for line in md.split("\n"):
        m = _FENCE.match(line.lstrip())
        if fence is None and m: flush(); fence = m[1]; out.append(line)
        elif fence is not None:
            out.append(line)
            if line.lstrip().startswith(fence): fence = None
        else: buf.append(line)
    if buf: flush()
    return "\n".join(out)


def cell_options(source: str) -> tuple[dict, str]:
    "Quarto's cell options (`#| key: value` lines; a bare `#| flag` is true) and the code with every `#|` line removed."
    opts, code = {}, []
    for line in source.split("\n"):
        m = re.match(r"^\s*#\|\s?(.*)$", line)
        if not m: code.append(line); continue
        key, sep, val = m[1].partition(":")
        try: opts[key.strip()] = yaml.safe_load(val) if sep else True
        except yaml.YAMLError: opts[key.strip()] = val.strip()
    return opts, "\n".join(code).strip("\n")


def _text(x) -> str: return "".join(x) if isinstance(x, list) else (x or "")


def quarto_view(nb) -> tuple[object, _Math]:
    "The notebook as Quarto would show it (cell options applied, markdown cleaned) and the page's math."
    math, cells = _Math(), []
    for c in nb.cells:
        if c.cell_type == "markdown":
            c.source = quarto_markdown(c.source, math); cells.append(c); continue
        if c.cell_type != "code": cells.append(c); continue
        opts, c.source = cell_options(c.source)
        if opts.get("include") is False: continue
        outputs = [] if opts.get("output") is False else list(c.get("outputs", []))
        asis = []
        if opts.get("output") != "asis":                    # markdown outputs: attributes dropped, math rendered
            for o in outputs:
                if "text/markdown" in o.get("data", {}): o["data"]["text/markdown"] = quarto_markdown(_text(o["data"]["text/markdown"]), math)
        else:                                                # markdown (and printed text) become the page's markdown
            keep = []
            for o in outputs:
                if o.get("output_type") == "stream": asis.append(_text(o.get("text")))
                elif "text/markdown" in o.get("data", {}): asis.append(_text(o["data"]["text/markdown"]))
                else: keep.append(o)
            outputs = keep
        c.outputs = outputs
        if opts.get("echo") is False or not c.source.strip():
            c.metadata.setdefault("tags", []).append("quarto-hide-input")
        if c.outputs or "quarto-hide-input" not in c.metadata.get("tags", []): cells.append(c)
        cells += [nbformat.v4.new_markdown_cell(quarto_markdown(a, math)) for a in asis if a.strip()]
    nb.cells = cells
    return nb, math


_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def to_html(nb) -> str:
    "HTML of a notebook as Quarto would show it: no prompts, math as MathML, nothing loaded from the network."
    from nbconvert.preprocessors import TagRemovePreprocessor
    nb, math = quarto_view(nb)
    exporter = HTMLExporter(raw_template=_TEMPLATE, exclude_input_prompt=True, exclude_output_prompt=True)
    exporter.register_preprocessor(TagRemovePreprocessor(remove_input_tags={"quarto-hide-input"}, enabled=True), enabled=True)
    html, _ = exporter.from_notebook_node(nb)
    return math.restore(html)


_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_BLOCK = {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "td", "th", "table", "blockquote",
          "pre", "br", "hr", "section", "main", "body", "dd", "dt"}


def visible_text(html: str) -> tuple[str, str]:
    "(prose, code-cell sources) of a page as a reader sees it: prose leaves out <pre>, <code>, <math>, scripts and styles."
    from html.parser import HTMLParser
    class P(HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True); self.stack, self.prose, self.code = [], [], []
        def handle_starttag(self, tag, attrs):
            if tag in _BLOCK: self.prose.append("\n")
            if tag not in _VOID: self.stack.append((tag, dict(attrs).get("class") or ""))
        def handle_endtag(self, tag):
            if tag in _BLOCK: self.prose.append("\n")
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i][0] == tag: del self.stack[i:]; break
        def handle_data(self, data):
            tags = {t for t, _ in self.stack}
            if tags & {"script", "style", "head", "title", "math", "svg"}: return
            if any("jp-InputArea-editor" in c or "sourceCode" in c or "cell-code" in c for _, c in self.stack):
                self.code.append(data)
            elif not tags & {"pre", "code"}: self.prose.append(data)
    p = P(); p.feed(html); p.close()
    return "".join(p.prose), "".join(p.code)


_ATTR_TEXT = re.compile(r"\{\s*(?:[.#][A-Za-z][\w-]*|[A-Za-z][\w-]*=)")
_REMOTE = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\s(?:src|href)=\"(?:https?:)?//[^\"]+\"", re.I)


def page_problems(html: str) -> list[str]:
    "What a reader of the page would see that Quarto hides or renders: each as 'what: snippet'."
    prose, code = visible_text(html)
    found = []
    def snip(text, m): return " ".join(text[max(0, m.start() - 30):m.end() + 40].split())
    for m in re.finditer(r"^[ \t]*#\|.*$", code, re.M): found.append(f"raw cell directive in shown code: {m[0].strip()[:70]!r}")
    for m in re.finditer(r"#\|\s*[\w-]+", prose): found.append(f"raw cell directive in the text: {snip(prose, m)!r}")
    for m in _ATTR_TEXT.finditer(prose): found.append(f"Pandoc/Quarto attribute text: {snip(prose, m)!r}")
    for m in re.finditer(r"\$\$", prose): found.append(f"unrendered display math: {snip(prose, m)!r}")
    for m in _IMATH.finditer(prose): found.append(f"unrendered inline math: {snip(prose, m)!r}")
    for m in _REMOTE.finditer(html): found.append(f"loads from the network: {m[0][:90]!r}")
    return found


def render(pages: list[Path], cache: Path, out: Path) -> list[tuple[Path, str]]:
    done, problems = [], []
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
        html = to_html(nb)
        dest = out / nb_path.relative_to(cache).with_suffix(".html")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(html)
        problems += [f"{dest.relative_to(out)}: {p}" for p in page_problems(html)]
        done.append((dest, title))
    if problems:
        fail(f"{len(problems)} thing(s) on the rendered pages that Quarto would hide or render (fix the notebook, or "
             "the preview in tools/check_docs.py):\n  " + "\n  ".join(problems[:40]))
    print("   pages show what Quarto shows: no raw directives, attribute text or unrendered math; nothing from the network")
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
    os.chdir(ROOT)
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
