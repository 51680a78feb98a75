#!/usr/bin/env python
"""Benchmark per-token confidence statistics from hidden states and an LM head (not a test).

Providers: `triton` (the fused kernel, CUDA only), `eager` (full logits -> log-softmax -> top-2 -> entropy),
`compile` (torch.compile of eager), `reference` (the vocabulary-chunked torch reference).
On CUDA also `triton_graph` (the same call replayed from a CUDA graph, with caller-provided outputs: the kernel
without the Python launch cost) for decode-sized T <= 64.
Shapes: T in {1, 64, 4096} x d in {576, 4096} x V in {49152, 152064} (--shapes quick: four of them). Per (provider,
shape): median time and peak extra memory (beyond the inputs), plus the roofline: minimum time = max(FLOPs / peak
FLOP/s, bytes / peak bandwidth) and which bound applies. One tidy row per (provider, variant, shape) goes to
data/bench/confidence_<device>.csv (confidence_<device>_quick.csv for --shapes quick).

Variants: for prefill shapes (T > 64) the triton provider is also run with every configuration the autotuner
chooses from (tile shapes BLOCK_T x BLOCK_V x BLOCK_D, num_warps, num_stages), one row each with its time and
fraction of the roofline (column `variant`, e.g. BT128_BV256_BD64_w8_s3; the autotuned call is `autotuned`), so a
table shows what every variant achieved, not only the winner. --variants all does the same for decode shapes,
--variants none skips them.

    python tools/bench_confidence.py                 # CUDA if present (bf16), else CPU (fp32, small shapes)
    python tools/bench_confidence.py --device cpu --max-cpu-macs 5e10 --reps 3
    python tools/bench_confidence.py --require-cuda --shapes quick --providers triton,triton_graph,eager

On CPU the triton provider is skipped (the interpreter is a test tool, not a backend) and shapes with more than
--max-cpu-macs multiply-adds are skipped (said in the output and recorded as status=skipped).
Peak extra memory: CUDA = max_memory_allocated during the call minus memory allocated before it; CPU = peak RSS
(VmHWM, reset through /proc/self/clear_refs) minus RSS before the call — a lower bound, since the allocator reuses
pages it already holds (small chunked buffers then show as 0 MB).
"""
from __future__ import annotations

import argparse, gc, re, statistics, sys, time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import adaptbench.kernels.confidence as conf  # noqa: E402
from adaptbench.kernels.confidence import (CONFIDENCE_KEYS, confidence_stats_eager,  # noqa: E402
                                           confidence_stats_reference, confidence_stats_triton, triton)

TS, DS, VS = (1, 64, 4096), (576, 4096), (49152, 152064)
SHAPES = dict(full=[(T, d, V) for d in DS for V in VS for T in TS],            # (T, d, V)
              quick=[(1, 576, 49152), (1, 4096, 152064), (64, 4096, 49152), (4096, 4096, 152064)])
# dense bf16 tensor-core peak (TFLOP/s) and HBM bandwidth (GB/s) by device-name substring, first match wins
PEAKS = [("H200", 989, 4800), ("H100 PCIe", 756, 2000), ("H100 NVL", 835, 3900), ("H100", 989, 3350),
         ("A100", 312, 2039), ("L40S", 362, 864), ("A10", 125, 600), ("RTX 4090", 165, 1008)]

def device_tag(dev:torch.device) -> str:
    "File-name tag of a device: cpu, or the GPU's name lower-cased with dashes."
    if dev.type != "cuda": return "cpu"
    return re.sub(r"[^a-z0-9]+", "-", torch.cuda.get_device_name(dev).lower()).strip("-")

def peaks(dev:torch.device, tflops:float|None, gbps:float|None) -> tuple[float|None, float|None]:
    "Peak FLOP/s and bytes/s of `dev` (from PEAKS or the command line); None when unknown."
    if dev.type == "cuda" and (tflops is None or gbps is None):
        name = torch.cuda.get_device_name(dev)
        hit = next(((t, g) for key, t, g in PEAKS if key in name), (None, None))
        tflops, gbps = tflops or hit[0], gbps or hit[1]
    return (tflops * 1e12 if tflops else None), (gbps * 1e9 if gbps else None)

def roofline(T, d, V, esize, flops_peak, bw_peak) -> dict:
    "Minimum work of the fused computation: 2TVd FLOPs; read W, h once, write 6 numbers per token."
    flops = 2.0 * T * V * d
    nbytes = (V * d + T * d) * esize + T * 6 * 4
    row = dict(flops=flops, bytes_min=nbytes, intensity=flops / nbytes)
    if flops_peak and bw_peak:
        tc, tm = flops / flops_peak, nbytes / bw_peak
        row.update(roofline_ms=1e3 * max(tc, tm), bound="compute" if tc >= tm else "memory")
    return row

# ---- measuring -------------------------------------------------------------------------------------------
def _rss_kb(field:str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field): return int(line.split()[1])
    return 0

def measure(fn, dev:torch.device, reps:int, warmup:int) -> tuple[float, float]:
    "(median ms, peak extra MB) of fn() on dev."
    for _ in range(warmup): fn()
    if dev.type == "cuda":
        torch.cuda.synchronize(); times = []
        for _ in range(reps):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record(); fn(); b.record(); torch.cuda.synchronize(); times.append(a.elapsed_time(b))
        gc.collect(); torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(dev)
        before = torch.cuda.memory_allocated(dev)
        fn(); torch.cuda.synchronize()
        return statistics.median(times), (torch.cuda.max_memory_allocated(dev) - before) / 2**20
    times = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); times.append(1e3 * (time.perf_counter() - t))
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f: f.write("5")   # reset the peak-RSS counter
        before = _rss_kb("VmRSS:"); fn(); extra = (_rss_kb("VmHWM:") - before) / 1024
    except OSError: extra = float("nan")
    return statistics.median(times), extra

def variant_name(bt, bv, bd, w, st) -> str: return f"BT{bt}_BV{bv}_BD{bd}_w{w}_s{st}"

def variants(T:int, which:str) -> dict:
    "variant name -> keyword arguments of confidence_stats_triton: the autotuned call, then every fixed configuration."
    out = {"autotuned": {}}
    if which == "none" or (which == "prefill" and T <= 64): return out
    for bt, bv, bd, w, st in (conf._TUNE_LARGE if T > 64 else conf._TUNE_SMALL):
        out[variant_name(bt, bv, bd, w, st)] = dict(block_t=bt, block_v=bv, block_d=bd, num_warps=w, num_stages=st, autotune=False)
    return out

def graphed(h:torch.Tensor, W:torch.Tensor):
    "The triton call captured in a CUDA graph with caller-provided outputs; returns a replay function."
    out = {k: torch.empty(h.shape[0], dtype=torch.int64 if k == "argmax" else torch.float32, device=h.device) for k in CONFIDENCE_KEYS}
    confidence_stats_triton(h, W, out=out); torch.cuda.synchronize()          # autotune and workspace outside the capture
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g): confidence_stats_triton(h, W, out=out)
    def replay(h_, W_):
        g.replay(); return out
    return replay

def providers(dev:torch.device) -> dict:
    "name -> function(h, W) for this device (triton_graph: a factory, built per shape)."
    out = {}
    if dev.type == "cuda" and triton is not None: out["triton"], out["triton_graph"] = confidence_stats_triton, graphed
    out["eager"] = confidence_stats_eager
    out["compile"] = torch.compile(confidence_stats_eager, dynamic=False)
    out["reference"] = confidence_stats_reference
    return out

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", default=None, help="default: bfloat16 on CUDA, float32 on CPU")
    ap.add_argument("--reps", type=int, default=None, help="timed repetitions (default 20 CUDA, 3 CPU)")
    ap.add_argument("--max-cpu-macs", type=float, default=5e10, help="skip CPU shapes with more T*V*d multiply-adds")
    ap.add_argument("--peak-tflops", type=float, default=None); ap.add_argument("--peak-gbps", type=float, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--out", default=None, help="CSV path (default data/bench/confidence_<device>.csv)")
    ap.add_argument("--providers", default=None, help="comma-separated subset of providers")
    ap.add_argument("--shapes", choices=sorted(SHAPES), default="full", help="full: 12 shapes; quick: 4 (decode and prefill)")
    ap.add_argument("--variants", choices=["prefill", "all", "none"], default="prefill",
                    help="also time every fixed triton configuration (tiles, warps, stages) at prefill / all shapes")
    ap.add_argument("--require-cuda", action="store_true", help="exit with a message (status 2) when CUDA is unavailable")
    a = ap.parse_args(argv)
    import pandas as pd
    if a.require_cuda and not (torch.cuda.is_available() and a.device.startswith("cuda")):
        print(f"bench_confidence: --require-cuda, but CUDA is not available here (torch {torch.__version__}, device "
              f"{a.device!r}); run it on a GPU machine, or drop --require-cuda for the CPU providers", file=sys.stderr)
        sys.exit(2)
    dev = torch.device(a.device)
    if a.threads: torch.set_num_threads(a.threads)
    dt = getattr(torch, a.dtype) if a.dtype else (torch.bfloat16 if dev.type == "cuda" else torch.float32)
    reps = a.reps or (20 if dev.type == "cuda" else 3)
    fpk, bwk = peaks(dev, a.peak_tflops, a.peak_gbps)
    provs = providers(dev)
    if a.providers: provs = {k: v for k, v in provs.items() if k in a.providers.split(",")}
    tag = device_tag(dev)
    print(f"device {tag} ({dev}), dtype {dt}, reps {reps}, providers {list(provs)}"
          + (f", peaks {fpk/1e12:.0f} TFLOP/s, {bwk/1e9:.0f} GB/s" if fpk and bwk else ", roofline: peaks unknown"))
    if dev.type != "cuda": print("CPU: no triton provider (the interpreter is for tests); "
                                 f"shapes with T*V*d > {a.max_cpu_macs:.0e} are skipped")
    rows = []
    shapes = SHAPES[a.shapes]
    for d, V in dict.fromkeys((d, V) for _, d, V in shapes):
        g = torch.Generator(device=dev).manual_seed(0)
        W = (torch.randn(V, d, device=dev, generator=g) / d ** 0.5).to(dt)
        for T in [T for T, d_, V_ in shapes if (d_, V_) == (d, V)]:
            h = torch.randn(T, d, device=dev, generator=g).to(dt)
            torch._dynamo.reset()          # a fresh compile per shape (dynamo's recompile limit is 8)
            rl = roofline(T, d, V, h.element_size(), fpk, bwk)
            base = dict(device=tag, dtype=str(dt).replace("torch.", ""), T=T, d=d, V=V, **rl)
            skip = dev.type != "cuda" and T * V * d > a.max_cpu_macs
            ref = None if skip else confidence_stats_reference(h, W)
            runs = []                      # (provider, variant, fn)
            for name, fn in provs.items():
                if name == "triton":
                    runs += [(name, v, (lambda kw: lambda h_, W_: confidence_stats_triton(h_, W_, **kw))(kw))
                             for v, kw in variants(T, a.variants).items()]
                elif name == "triton_graph":
                    if T <= 64: runs.append((name, "autotuned", fn))
                else: runs.append((name, "", fn))
            for name, variant, fn in runs:
                row = dict(base, provider=name, variant=variant)
                if skip:
                    rows.append(dict(row, status="skipped", note=f"T*V*d={T*V*d:.1e} > {a.max_cpu_macs:.0e} on CPU"))
                    print(f"  skip  {name:9s} T={T:5d} d={d:5d} V={V:6d}  (too large for a CPU run)"); continue
                try:
                    if name == "triton_graph": fn = fn(h, W)                 # capture once, time the replays
                    out = fn(h, W)
                    err = (out["entropy"].float() - ref["entropy"]).abs().max().item()
                    ms, mb = measure(lambda: fn(h, W), dev, reps, warmup=2 if dev.type == "cuda" else 1)
                    row.update(status="ok", median_ms=ms, peak_extra_mb=mb, max_abs_err_entropy=err,
                               argmax_agree=(out["argmax"] == ref["argmax"]).float().mean().item())
                    if "roofline_ms" in rl: row["frac_of_roofline"] = rl["roofline_ms"] / ms
                except Exception as e:  # record, do not hide: e.g. torch.compile without a compiler
                    row.update(status="error", note=f"{type(e).__name__}: {str(e).splitlines()[0][:200]}")
                rows.append(row)
                print(f"  {row['status']:5s} {name:12s} {variant:22s} T={T:5d} d={d:5d} V={V:6d}  "
                      + (f"{row['median_ms']:9.3f} ms  {row['peak_extra_mb']:9.1f} MB extra  err {row['max_abs_err_entropy']:.1e}"
                         if row["status"] == "ok" else row.get("note", ""))
                      + (f"  [{rl['bound']}-bound, roofline {rl['roofline_ms']:.3f} ms]" if "bound" in rl else ""))
            del h
        del W
        if dev.type == "cuda": torch.cuda.empty_cache()
    df = pd.DataFrame(rows)
    out = Path(a.out) if a.out else ROOT / "data" / "bench" / f"confidence_{tag}{'_quick' if a.shapes == 'quick' else ''}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp"); df.to_csv(tmp, index=False); tmp.replace(out)
    ok = df[(df.status == "ok") & df.variant.isin(["", "autotuned"])]
    if len(ok):
        piv = ok.pivot_table(index=["T", "d", "V"], columns="provider", values="median_ms")
        print("\nmedian ms\n" + piv.round(3).to_string())
        if "triton" in piv and "eager" in piv: print("\nspeed-up of triton over eager\n" + (piv.eager / piv.triton).round(2).to_string())
    var = df[(df.status == "ok") & ~df.variant.isin(["", "autotuned"])]
    if len(var):
        print("\nevery fixed triton configuration: fraction of the roofline\n"
              + var.pivot_table(index="variant", columns=["T", "d", "V"], values="frac_of_roofline" if "frac_of_roofline" in var else "median_ms").round(3).to_string())
    print(f"\nwrote {len(df)} rows to {out}")
    return df

if __name__ == "__main__":
    main()
