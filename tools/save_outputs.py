"""Execute module notebooks and keep their (small) outputs, so their docs pages show what the demos produce.

    python tools/save_outputs.py nbs/04a_hanoi.ipynb nbs/01_viz.ipynb ...   # then: nbdev-clean

Each notebook runs as `nbdev-test` runs it (cells flagged `#| slow` or `#| cuda` are skipped, IN_TEST=1, from the
notebook's folder); on success its outputs are written back, trimmed: a text output is cut to --max-lines lines, an
image above 40 KB is re-encoded with a 256-colour palette, one still larger than --max-kb KB is dropped (with a line saying so), and an HTML table keeps its first rows only
where pandas wrote a text version as well (the HTML is dropped then). A failing notebook is left untouched.
The outputs are part of the committed notebook: `nbdev-clean` keeps them; rerun this after changing a demo.
"""
import argparse
import base64
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _palette(b64: str) -> str:
    "A base64 PNG re-encoded with a 256-colour palette, if that is smaller."
    from io import BytesIO
    from PIL import Image
    raw = base64.b64decode(b64)
    buf = BytesIO()
    Image.open(BytesIO(raw)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode() if len(buf.getvalue()) < len(raw) else b64


def trim(nb_path: Path, max_lines: int, max_kb: int) -> tuple[int, int]:
    "Trim the saved outputs of `nb_path` in place; return (outputs kept, bytes of outputs)."
    nb = json.loads(nb_path.read_text())
    kept = size = 0
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        outs = []
        for o in c.get("outputs", []):
            if o.get("output_type") == "stream":
                lines = "".join(o["text"]).splitlines(keepends=True)
                if len(lines) > max_lines: lines = lines[:max_lines] + [f"… ({len(lines) - max_lines} more lines)\n"]
                o["text"] = lines
            elif "data" in o:
                d = o["data"]
                png = d.get("image/png")
                if png and len(base64.b64decode("".join(png))) > 40 * 1024:   # plots: a 256-colour palette is ~2x smaller
                    png = d["image/png"] = _palette("".join(png))
                if png and len(base64.b64decode("".join(png))) > max_kb * 1024:
                    o = dict(output_type="stream", name="stdout",
                             text=[f"(figure of {len(base64.b64decode(''.join(png))) // 1024} KB not kept in the docs)\n"])
                else:
                    if "text/html" in d and "text/plain" in d and len("".join(d["text/html"])) > 20000: d.pop("text/html")
                    if "text/plain" in d:
                        lines = "".join(d["text/plain"]).splitlines(keepends=True)
                        if len(lines) > max_lines: d["text/plain"] = lines[:max_lines] + [f"… ({len(lines) - max_lines} more lines)"]
            outs.append(o)
        c["outputs"] = outs
        kept += len(outs); size += len(json.dumps(outs))
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return kept, size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/save_outputs.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("notebooks", nargs="+")
    ap.add_argument("--max-lines", type=int, default=30, help="lines kept per text output (default 30)")
    ap.add_argument("--max-kb", type=int, default=150, help="largest image kept, KB (default 150)")
    a = ap.parse_args(argv)
    from nbdev.test import test_nb
    bad = 0
    for f in a.notebooks:
        p = Path(f).resolve()
        ok, secs = test_nb(p, skip_flags=["slow", "cuda"], save=True)
        if not ok: print(f"{f}: FAILED, not saved"); bad += 1; continue
        kept, size = trim(p, a.max_lines, a.max_kb)
        print(f"{f}: ran in {secs:.1f} s; {kept} outputs kept, {size / 1024:.0f} KB")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
