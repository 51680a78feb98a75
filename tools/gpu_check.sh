#!/usr/bin/env bash
# GPU check of the fused confidence kernel, sized for one GPU in <= 6 minutes (each stage has its own timeout):
#   1. correctness (<= 130 s): kernels.confidence and kernels.token_stats against their torch references over odd
#      shapes, fp32 / fp16 / bf16, bias, soft-cap, masked and fully masked rows, both launch paths (one launch, and
#      forward + merge), autotuned and fixed tiles, caller-provided outputs, a column-major head;
#   2. CUDA graphs (<= 80 s): decode (T = 1) and a small batch captured with caller-provided outputs, replayed
#      with new inputs, compared with the reference; a call under torch.compile(fullgraph=True) through the custom op;
#   3. the benchmark (<= 140 s): tools/bench_confidence.py --shapes quick with every prefill variant, written to
#      data/bench/confidence_<device>_quick.csv (the full table: python tools/bench_confidence.py, ~10 min or more).
# Usage: tools/gpu_check.sh            (from anywhere; uses the python on PATH, with this checkout on PYTHONPATH)
# On a machine without CUDA it exits with status 2 and says so. It never claims a speed: read the table.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset TRITON_INTERPRET

python - <<'EOF' || exit $?
import sys, torch
if not torch.cuda.is_available():
    print(f"gpu_check: no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False). Run it on a GPU "
          "machine; on a CPU, the interpreter tests are: python -m pytest tests/test_kernels.py tests/test_token_stats_kernel.py",
          file=sys.stderr)
    sys.exit(2)
try: import triton  # noqa: F401
except ImportError: sys.exit("gpu_check: triton is not installed (pip install triton, matching the CUDA torch build)")
print(f"gpu_check on {torch.cuda.get_device_name()} (torch {torch.__version__}, triton {triton.__version__})")
EOF

echo "== 1. correctness"
timeout 130 python - <<'EOF'
import time, torch
from adaptbench.kernels.confidence import CONFIDENCE_KEYS, confidence_stats_reference, confidence_stats_triton
from adaptbench.kernels.token_stats import token_stats_reference, token_stats_triton
t0, dev, fails, n = time.time(), "cuda", [], 0
# tolerance per dtype: the reference computes in fp32 from the same (rounded) inputs; products of 16-bit inputs are
# exact in fp32, so only the summation order differs (fp32 inputs: full-precision "ieee" dot products)
TOL = {torch.float32: 2e-4, torch.float16: 2e-3, torch.bfloat16: 2e-3}

def check(name, k, r, tol, z=None):
    global n
    n += 1
    for key in r:
        kv, rv = k[key].double(), r[key].double()
        if not torch.equal(torch.isnan(kv), torch.isnan(rv)): fails.append(f"{name}: NaN pattern of {key}"); continue
        same = (kv == rv) | (torch.isnan(kv) & torch.isnan(rv))
        err = torch.where(same, 0., (kv - rv).abs()).max().item() if kv.numel() else 0.0
        if key == "argmax":
            if z is None and err > 0: fails.append(f"{name}: argmax differs")
            if z is not None and kv.numel():       # a near-tie may pick another maximum: the picked logit must be one
                gap = (z.gather(1, r["argmax"][:, None]) - z.gather(1, k["argmax"][:, None])).abs()
                gap = torch.where(torch.isinf(z.gather(1, r["argmax"][:, None])), 0., gap)
                if gap.max().item() > 10 * tol: fails.append(f"{name}: argmax off by {gap.max().item():.3g} in logit")
        elif err > tol * (1 if key in ("max_prob", "margin") else 10): fails.append(f"{name}: {key} differs by {err:.3g}")

g = torch.Generator(device=dev).manual_seed(0)
for dt in (torch.float32, torch.float16, torch.bfloat16):
    # fixed tiles (block_v=128, block_d=64) unless auto: each autotuned shape compiles 5-6 configurations, so only
    # two shapes autotune, in bf16 (the production dtype)
    for T, V, D, opts in [(1, 97, 17, {}), (1, 49157, 576, dict(auto=True)), (3, 1000, 64, dict(softcap=15.0)),
                          (37, 1000, 17, dict(mask=True)), (37, 49157, 576, dict(fuse=False)),
                          (130, 4099, 64, dict(softcap=30.0, mask=True, auto=True)), (5, 97, 17, dict(dead=True)),
                          (5, 1000, 64, dict(block_v=64, block_d=32, fuse=True)), (70, 1000, 64, dict(block_t=32, fuse=False)),
                          (16, 2048, 128, dict(w_t=True)), (0, 97, 17, {})]:
        if opts.get("auto") and dt != torch.bfloat16: continue
        h = torch.randn(T, D, device=dev, generator=g).to(dt)
        W = (torch.randn(V, D, device=dev, generator=g) / D ** 0.5 * 3).to(dt)
        b = torch.randn(V, device=dev, generator=g).to(dt)
        if opts.get("mask"): b[V // 3: V // 2] = -float("inf")
        if opts.get("dead"): b[:] = -float("inf")
        if opts.get("w_t"): W = W.t().contiguous().t()
        kw = {} if opts.get("auto") else dict(block_v=128, block_d=64) | {k: opts[k] for k in ("fuse", "block_t", "block_v", "block_d") if k in opts}
        name = f"{str(dt)[6:]} T={T} V={V} d={D} {opts}"
        try:
            r = confidence_stats_reference(h, W, b, opts.get("softcap"))
            z = h.float() @ W.float().T + b.float()
            if opts.get("softcap"): z = torch.where(torch.isneginf(z), z, opts["softcap"] * torch.tanh(z / opts["softcap"]))
            for rep in range(2):                       # the second call runs the cached plan (and reset counters)
                check(f"{name} call {rep}", confidence_stats_triton(h, W, b, opts.get("softcap"), **kw), r, TOL[dt], z)
            out = {k: torch.empty(T, dtype=torch.int64 if k == "argmax" else torch.float32, device=dev) for k in CONFIDENCE_KEYS}
            res = confidence_stats_triton(h, W, b, opts.get("softcap"), out=out, **kw)
            if T and any(res[k] is not out[k] for k in out): fails.append(f"{name}: out= not used")
            check(f"{name} out=", out, r, TOL[dt], z)
        except Exception as e: fails.append(f"{name}: {type(e).__name__}: {e}"[:300])
    zl = (torch.randn(37, 4099, device=dev, generator=g) * 4).to(dt); zl[3] = -float("inf"); zl[4, 100:] = -float("inf")
    check(f"token_stats {str(dt)[6:]}", token_stats_triton(zl), token_stats_reference(zl), TOL[dt])
print(f"{n} comparisons in {time.time() - t0:.0f} s, {len(fails)} failures")
for f in fails: print("  FAIL", f)
raise SystemExit(1 if fails else 0)
EOF

echo "== 2. CUDA graphs and torch.compile"
timeout 80 python - <<'EOF'
import torch
from adaptbench.kernels.confidence import CONFIDENCE_KEYS, confidence_stats_op, confidence_stats_reference, confidence_stats_triton
fails = []
for T, d, V in [(1, 576, 49152), (8, 576, 49152), (1, 4096, 152064)]:
    h = torch.randn(T, d, device="cuda", dtype=torch.bfloat16); W = (torch.randn(V, d, device="cuda") / d ** 0.5).bfloat16()
    out = {k: torch.empty(T, dtype=torch.int64 if k == "argmax" else torch.float32, device="cuda") for k in CONFIDENCE_KEYS}
    confidence_stats_triton(h, W, out=out); torch.cuda.synchronize()           # autotune + workspace before capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph): confidence_stats_triton(h, W, out=out)
    for _ in range(3):
        h.copy_(torch.randn_like(h)); graph.replay(); torch.cuda.synchronize()
        r = confidence_stats_reference(h, W)
        for k in ("lse", "max_prob", "margin", "entropy"):
            err = (out[k] - r[k]).abs().max().item()
            if err > 2e-3: fails.append(f"graph T={T} d={d} V={V}: {k} differs by {err:.3g}")
    print(f"graph T={T} d={d} V={V}: replayed 3x")
h = torch.randn(4, 576, device="cuda", dtype=torch.bfloat16); W = (torch.randn(49152, 576, device="cuda") / 24).bfloat16()
f = torch.compile(lambda h, W: confidence_stats_op(h, W)["entropy"] + 1, fullgraph=True)
err = (f(h, W) - (confidence_stats_reference(h, W)["entropy"] + 1)).abs().max().item()
if err > 2e-3: fails.append(f"torch.compile through the custom op: entropy differs by {err:.3g}")
print("torch.compile(fullgraph=True) through adaptbench::confidence_stats: ok" if err <= 2e-3 else "compile: FAIL")
for x in fails: print("  FAIL", x)
raise SystemExit(1 if fails else 0)
EOF

echo "== 3. benchmark (quick shapes, every prefill variant)"
timeout 140 python tools/bench_confidence.py --require-cuda --shapes quick --providers triton,triton_graph,eager --reps 10
echo "gpu_check: all stages passed; the table is under data/bench/ (commit it with the device name in the file name)"
