"""Show a committed reference run on a study's docs page.

    python tools/reference_run.py STUDY RUN_DIR [--table NAME] [--rows 6] [--max-kb 200]

RUN_DIR is a complete run folder (`data/runs/<study>/<run_id>/`, as `adaptbench run` writes it: params.json,
status.json with state "complete", figures/*.png, tables/*.parquet, optionally summary.txt). The tool

1. copies the run's figures to `nbs/images/studies/<study>/` (replacing the ones of an earlier reference run),
   shrinking any PNG larger than --max-kb KB (palette quantisation, then downscaling);
2. writes ONE markdown cell near the top of `nbs/studies/<study>.ipynb` (right after the title cell; replaced in
   place on later calls, found by its `<!-- reference-run -->` marker): the run id, date, wall time and package
   version, the parameters that differ from the notebook's defaults as an `adaptbench run` command, the run's
   summary.txt, the first --rows rows of its headline table (--table, default `results`, else the first table) as a
   markdown table, and every figure, referenced by relative path (`../images/studies/<study>/<name>.png`) so both
   nbdev's processing and Quarto render them.

Then run `nbdev-clean` and commit the notebook together with `nbs/images/studies/<study>/`. `tools/check_docs.py`
fails if a study page shows no image that loads.
"""
import argparse
import datetime as dt
import json
import math
import shutil
import sys
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- reference-run: written by tools/reference_run.py; rerun it to update -->"


def die(msg: str):
    print(f"reference_run: {msg}", file=sys.stderr)
    sys.exit(2)


def shrink_png(src: Path, dest: Path, max_kb: int) -> tuple[int, int]:
    "Copy PNG `src` to `dest`, at most `max_kb` KB if it can be: 256-colour palette first, then halving sizes. Returns (bytes before, after)."
    before = src.stat().st_size
    if before <= max_kb * 1024:
        shutil.copyfile(src, dest)
        return before, before
    from PIL import Image
    im = Image.open(src).convert("RGB")
    data = b""
    for _ in range(6):
        buf = BytesIO()
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(buf, format="PNG", optimize=True)
        data = buf.getvalue()
        if len(data) <= max_kb * 1024: break
        f = max(0.5, math.sqrt(max_kb * 1024 / len(data)) * 0.95)
        im = im.resize((max(1, int(im.width * f)), max(1, int(im.height * f))), Image.Resampling.LANCZOS)
    dest.write_bytes(data)
    return before, len(data)


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}"
    s = str(v).replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= 40 else s[:37] + "…"


def md_table(df, rows: int, max_cols: int = 9) -> str:
    "The first `rows` rows and `max_cols` columns of `df` as a GitHub/Quarto markdown table."
    df = df.drop(columns="run_id", errors="ignore")
    cols = list(df.columns[:max_cols])
    out = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in df[cols].head(rows).itertuples(index=False)]
    more = []
    if len(df) > rows: more.append(f"first {rows} of {len(df)} rows")
    if df.shape[1] > max_cols: more.append(f"{max_cols} of {df.shape[1]} columns")
    return "\n".join(out) + (f"\n\n*({', '.join(more)})*" if more else "")


def _cli_value(v) -> str:
    if isinstance(v, (list, tuple)): v = ",".join(map(str, v)) + ("," if len(v) == 1 else "")
    s = str(v).lower() if isinstance(v, bool) else str(v)
    return s if s and all(ch.isalnum() or ch in "._-,:/+" for ch in s) else repr(s)


def reference_cell(study: str, run_dir: Path, figures: list[str], table: str | None, rows: int) -> str:
    "The markdown of the reference-run cell."
    import pandas as pd
    from adaptbench.catalogue import study_parameters
    meta = json.loads((run_dir / "params.json").read_text())
    status = json.loads((run_dir / "status.json").read_text())
    params = meta.get("params", {})
    try: defaults = {k: v["default"] for k, v in study_parameters(study).items()}
    except Exception: defaults = {}
    changed = {k: v for k, v in params.items() if k not in defaults or defaults[k] != v}
    cmd = f"adaptbench run {study}" + "".join(f" -p {k} {_cli_value(v)}" for k, v in changed.items())
    try:                                                  # a declared preset that gives this very run id reads better
        from adaptbench.catalogue import preset_choices, preset_params, resolve_params
        from adaptbench.core import AdaptbenchError
        from adaptbench.runs import run_id
        for name in preset_choices(study)[1]:
            if run_id(study, resolve_params(study, preset_params(study, name))) == run_dir.name:
                cmd = f"adaptbench run {study} --preset {name}"; break
    except AdaptbenchError: pass                          # presets that do not resolve here: the -p form stays
    when = status.get("updated") or status.get("started") or ""
    secs = status.get("seconds")
    lines = [f"## Reference run", "", MARK, "",
             f"A complete run of this notebook, committed with the docs: run `{run_dir.name}`, finished {when}"
             + (f" in {secs:.0f} s" if isinstance(secs, (int, float)) else "")
             + f", adaptbench {meta.get('version', '?')}. Reproduce it with", "", "```sh", cmd, "```", ""]
    if params.get("scale") == "tiny":
        lines += ["**Scale `tiny`**: a seconds-long run at test size; its numbers show what the study reports, not "
                  "findings. Replace it by a full run (`python tools/reference_run.py "
                  f"{study} RUN_DIR`) when one is at hand.", ""]
    lines.append("Parameters: " + ", ".join(f"`{k}={v!r}`" for k, v in params.items()) + ".")
    summ = run_dir / "summary.txt"
    if summ.exists() and summ.read_text().strip(): lines += ["", summ.read_text().strip()]
    tables = sorted(p.stem for p in (run_dir / "tables").glob("*.parquet"))
    head = table or ("results" if "results" in tables else tables[0] if tables else None)
    if head:
        if head not in tables: die(f"run {run_dir} has no table {head!r}; it has {tables}")
        df = pd.read_parquet(run_dir / "tables" / f"{head}.parquet")
        lines += ["", f"Headline table (`{head}`; all tables: {', '.join(f'`{t}`' for t in tables)}):", "",
                  md_table(df, rows)]
    lines.append("")
    for f in figures:
        lines += [f"![{study}: {Path(f).stem.replace('_', ' ')}](../images/studies/{study}/{f})", ""]
    return "\n".join(lines).rstrip() + "\n"


def update_notebook(nb_path: Path, cell_md: str) -> str:
    "Replace the notebook's reference-run cell, or insert one after its title cell. Returns 'replaced' or 'inserted'."
    nb = json.loads(nb_path.read_text())
    cells = nb["cells"]
    src = lambda c: "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
    new = dict(cell_type="markdown", metadata={}, source=cell_md.splitlines(keepends=True))
    hits = [i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and MARK in src(c)]
    if len(hits) > 1: die(f"{nb_path} has {len(hits)} reference-run cells; delete all but one")
    if hits:
        new["id"] = cells[hits[0]].get("id")
        if new["id"] is None: new.pop("id")
        cells[hits[0]] = new; how = "replaced"
    else:
        at = next((i + 1 for i, c in enumerate(cells) if c["cell_type"] == "markdown" and src(c).lstrip().startswith("# ")), 0)
        if nb.get("nbformat", 4) >= 4 and nb.get("nbformat_minor", 0) >= 5:
            import uuid; new["id"] = uuid.uuid4().hex[:8]
        cells.insert(at, new); how = "inserted"
    nb_path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return how


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/reference_run.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", help="study name (a notebook nbs/studies/STUDY.ipynb)")
    ap.add_argument("run_dir", help="a complete run folder of that study")
    ap.add_argument("--table", help="the headline table (default: results, else the run's first table)")
    ap.add_argument("--rows", type=int, default=6, help="rows of the headline table shown (default 6)")
    ap.add_argument("--max-kb", type=int, default=200, help="shrink figures above this size (default 200 KB)")
    ap.add_argument("--figures", help="comma-separated figure names (stems) to show, in order (default: all)")
    a = ap.parse_args(argv)
    nb_path = ROOT / "nbs" / "studies" / f"{a.study}.ipynb"
    if not nb_path.exists():
        die(f"no study notebook {nb_path.relative_to(ROOT)}; studies: "
            + ", ".join(sorted(p.stem for p in nb_path.parent.glob("*.ipynb"))))
    run_dir = Path(a.run_dir).expanduser().resolve()
    if not (run_dir / "params.json").exists(): die(f"{run_dir} is not a run folder (no params.json)")
    meta = json.loads((run_dir / "params.json").read_text())
    if meta.get("study") != a.study: die(f"{run_dir} is a run of {meta.get('study')!r}, not of {a.study!r}")
    state = json.loads((run_dir / "status.json").read_text()).get("state") if (run_dir / "status.json").exists() else "new"
    if state != "complete": die(f"{run_dir} is not complete (state {state!r}); rerun it with `adaptbench run {a.study} ...`")
    figs = sorted((run_dir / "figures").glob("*.png"))
    if a.figures:
        want = [s.strip() for s in a.figures.split(",") if s.strip()]
        by = {f.stem: f for f in figs}
        missing = [w for w in want if w not in by]
        if missing: die(f"no figure(s) {missing} in {run_dir}/figures; it has {sorted(by)}")
        figs = [by[w] for w in want]
    if not figs: die(f"{run_dir}/figures holds no PNG figure: a study page needs at least one")
    dest = ROOT / "nbs" / "images" / "studies" / a.study
    if dest.exists(): shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in figs:
        before, after = shrink_png(f, dest / f.name, a.max_kb)
        print(f"  {f.name}: {before / 1024:.0f} KB" + (f" -> {after / 1024:.0f} KB" if after != before else ""))
    cell = reference_cell(a.study, run_dir, [f.name for f in figs], a.table, a.rows)
    how = update_notebook(nb_path, cell)
    print(f"{how} the reference-run cell of {nb_path.relative_to(ROOT)}; {len(figs)} figures in "
          f"{dest.relative_to(ROOT)}/\nnow run `nbdev-clean` and commit both")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
