"""Draw the home page's decoding speed-up figure from the committed benchmark tables.

    python tools/plot_decoding_speedups.py [--out nbs/images/decoding_speedups.png]

Reads `data/bench/decoding_cpu*.csv` (written by `tools/bench_decoding.py`) through
`adaptbench.speculative.bench_speedups` and draws them with `plot_speedups`, the figure the speculative module's page
shows: each lossless method's speed-up over greedy `generate` per setting, its spread over γ rules, drafter variants
and repeated runs, and the ±20 % band of one timed run's noise. Rerun it after a new benchmark and commit the PNG.
"""
import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/plot_decoding_speedups.py", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "nbs" / "images" / "decoding_speedups.png"), help="the PNG to write")
    a = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import matplotlib
    matplotlib.use("Agg")
    from adaptbench.speculative import bench_speedups, plot_speedups
    d = bench_speedups(ROOT / "data" / "bench")
    fig = plot_speedups(d)
    fig.savefig(a.out, dpi=100, bbox_inches="tight", metadata={"Software": None})
    print(f"wrote {a.out}: {len(d)} lossless rows, {d.setting.nunique()} settings, from {d.table.nunique()} tables")
    return 0


if __name__ == "__main__":
    sys.exit(main())
