"""Write README.md from the home page notebook, nbs/index.ipynb (the single source of both).

    python tools/readme.py           # regenerate README.md
    python tools/readme.py --check   # exit 1 if README.md differs from what would be written

Markdown cells are copied as they are; code cells become ```python blocks (outputs are left out); cells marked
`#| hide` are skipped. Image and link paths relative to nbs/ (`images/x.png`) are rewritten relative to the project
root (`nbs/images/x.png`) so they resolve on the repository's front page. nbdev's own `nbdev-readme` needs the
Quarto binary, which these machines cannot install; this does the same job without it.
"""
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INDEX, README = ROOT / "nbs" / "index.ipynb", ROOT / "README.md"
HEADER = "<!-- Generated from nbs/index.ipynb by tools/readme.py: edit the notebook, then run `python tools/readme.py`. -->"


def _src(c) -> str: return "".join(c["source"]) if isinstance(c["source"], list) else c["source"]


def _rebase(md: str) -> str:
    "Relative image/link targets under nbs/ (`](images/…)`, `src=\"images/…\"`) made relative to the project root."
    md = re.sub(r"\]\((?!https?:|#|/|nbs/)(images/[^)\s]+)\)", r"](nbs/\1)", md)
    return re.sub(r'src="(?!https?:|/|nbs/)(images/[^"]+)"', r'src="nbs/\1"', md)


def readme_text(index: Path = INDEX) -> str:
    "The README that `index` (a notebook) produces."
    parts = []
    for c in json.loads(index.read_text())["cells"]:
        s = _src(c).strip("\n")
        if not s.strip() or re.search(r"^#\|\s*hide\b", s, re.M): continue
        if c["cell_type"] == "markdown": parts.append(_rebase(s))
        elif c["cell_type"] == "code":
            code = "\n".join(l for l in s.splitlines() if not l.startswith("#|")).strip("\n")
            if code: parts.append(f"```python\n{code}\n```")
    return HEADER + "\n\n" + "\n\n".join(parts) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"): print(__doc__); return 0
    want = readme_text()
    if "--check" in argv:
        if not README.exists() or README.read_text() != want:
            print("README.md differs from nbs/index.ipynb: edit nbs/index.ipynb, then run `python tools/readme.py` "
                  "to regenerate README.md", file=sys.stderr)
            return 1
        return 0
    README.write_text(want)
    print(f"wrote {README.relative_to(ROOT)} from {INDEX.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
