"""The Triton kernels against their torch references, run in Triton's interpreter (CPU) in one fresh process.

Tolerances (fp32, |difference| per token): lse, entropy, second_logit ≤ 2e-4 (logits of magnitude ≲ 15 summed in a
different order); max_prob, margin ≤ 2e-5; argmax exact (random cases have no near-ties; tie cases use integer
logits, which fp32 represents exactly, so the first index must win), except under a saturating soft-cap, where
many logits round to the cap and the kernel's argmax must instead sit on a logit within 1e-5 of the reference's
maximum. NaN exactly where the reference has NaN: max_prob, margin and entropy of a row with no live column (no
information, not certainty), and nowhere else.

The CPU tests at the end need no interpreter: the custom op (opcheck, torch.compile with fullgraph=True), the
wrapper's dtype handling for bf16 inputs (launches recorded, not run), and the NaN flowing through `signals`."""
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch

try: import triton
except ImportError: triton = None
needs_triton = pytest.mark.skipif(triton is None, reason="triton is not installed")
ROOT = Path(__file__).resolve().parents[1]
TOL = dict(lse=2e-4, entropy=2e-4, second_logit=2e-4, max_prob=2e-5, margin=2e-5, argmax=0)

def _blocks(V, D):  # small tiles exercise partial tiles and several splits; big ones keep the interpreter fast
    return dict(block_v=32 if V < 200 else 128 if V < 5000 else 1024, block_d=16 if D < 32 else 32)

SHAPES = [dict(op="confidence", T=T, V=V, D=D, seed=T + V + D, **_blocks(V, D))
          for T in (1, 5, 37) for V in (97, 1000, 49152) for D in (17, 64)]
SPECIAL = {
    "ties_integer_logits": dict(op="confidence", kind="ties", T=37, V=1000, D=17, block_v=64, block_d=16),
    "ties_across_splits": dict(op="confidence", T=5, V=1000, D=17, dup=[700, 3, 450], block_v=64, n_splits=4),
    "ties_single_split": dict(op="confidence", T=5, V=1000, D=17, dup=[20, 21, 999], block_v=128, n_splits=1),
    "softcap_saturating": dict(op="confidence", T=37, V=1000, D=64, softcap=2.0, scale=3.0, block_v=128, block_d=32,
                               near_ties=True),
    "softcap": dict(op="confidence", T=37, V=1000, D=64, softcap=15.0, block_v=128, block_d=32),
    "softcap_masked": dict(op="confidence", T=5, V=1000, D=64, softcap=30.0, mask=[(0, 300), (512, 640)], block_v=64),
    "masked_tile_and_split": dict(op="confidence", T=5, V=1000, D=17, mask=[(0, 250), (300, 301), (990, 1000)],
                                  block_v=64, n_splits=4),
    "all_masked": dict(op="confidence", T=5, V=97, D=17, mask=[(0, 97)], block_v=32),
    "all_masked_two_launch": dict(op="confidence", T=5, V=1000, D=17, mask=[(0, 1000)], block_v=64, n_splits=4, fuse=False),
    # the two launch paths (one launch when one program row covers T; the last split of a token block merges)
    "two_launch_masked_splits": dict(op="confidence", T=5, V=1000, D=17, mask=[(0, 250), (990, 1000)], block_v=64,
                                     n_splits=4, fuse=False),
    "two_launch_T37": dict(op="confidence", T=37, V=1000, D=64, block_t=16, block_v=128, fuse=False, softcap=15.0),
    "fused_three_token_blocks": dict(op="confidence", T=37, V=1000, D=17, block_t=16, block_v=64, n_splits=5, fuse=True,
                                     mask=[(100, 400)], calls=3),
    "fused_decode_many_splits": dict(op="confidence", T=1, V=49152, D=64, block_v=128, n_splits=48, calls=2),
    "out_provided_twice": dict(op="confidence", T=5, V=1000, D=64, block_v=64, out=True, calls=2),
    "out_provided_two_launch": dict(op="confidence", T=37, V=1000, D=17, block_v=64, out=True, calls=2, fuse=False),
    # heads the kernel strides over without a copy
    "w_column_major": dict(op="confidence", T=5, V=1000, D=64, block_v=64, w_layout="transposed"),
    "w_every_other_column": dict(op="confidence", T=37, V=1000, D=17, block_v=64, w_layout="strided", fuse=False),
    # bf16 without the interpreter's bf16: the kernel's fp32 math on bf16-rounded inputs vs the reference on bf16
    "bf16_rounded": dict(op="confidence", T=5, V=1000, D=64, block_v=64, bf16=True, softcap=20.0),
    "bf16_rounded_two_launch": dict(op="confidence", T=37, V=1000, D=64, block_v=128, bf16=True, fuse=False, mask=[(0, 5)]),
    "vocab_of_one": dict(op="confidence", T=5, V=1, D=17),
    "empty_batch": dict(op="confidence", T=0, V=97, D=17),
    "no_bias_one_split": dict(op="confidence", T=37, V=1000, D=64, bias=False, n_splits=1, block_t=16),
    "block_t_64": dict(op="confidence", T=37, V=1000, D=64, block_t=64, block_v=256),
    "autotuned_small_batch": dict(op="confidence", T=5, V=1000, D=64, autotune=True, mask=[(0, 10)], softcap=20.0),
    "autotuned_large_batch": dict(op="confidence", T=70, V=700, D=64, autotune=True),
    # the token-stats kernel's small shapes, ties and masks are in test_token_stats_kernel.py; here its full vocabulary
    "token_stats_3x49152": dict(op="token_stats", T=3, V=49152, block_v=4096),
}
CASES = {f"T{c['T']}-V{c['V']}-d{c['D']}": c for c in SHAPES} | SPECIAL

HOST_CHECK = dict(op="host_check", T=5, V=1000, D=64, mask=[(0, 10)])
NAN_ROWS = {"all_masked": 5, "all_masked_two_launch": 5}        # rows with no live column: NaN statistics

@pytest.fixture(scope="module")
def results():
    "Run every case in one interpreter process (importing torch and Triton once)."
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(ROOT/"tests"/"interpret_worker.py")],
                       input=json.dumps(list(CASES.values()) + [HOST_CHECK]), capture_output=True, text=True, env=env, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout)
    return dict(zip(CASES, out)) | {"host_check": out[-1]}

@needs_triton
@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_reference(results, name):
    r = results[name]
    assert not r["nan"], f"{name}: NaN where the reference has none, or none where it has"
    if CASES[name]["op"] == "confidence": assert r["nan_rows"] == NAN_ROWS.get(name, 0), (name, r["nan_rows"])
    assert r["argmax_gap"] <= 1e-5, f"{name}: kernel argmax is {r['argmax_gap']:.3g} below the max logit"
    for key, tol in TOL.items():
        if key == "argmax" and CASES[name].get("near_ties"): continue
        if key in r: assert r[key] <= tol, f"{name}: {key} differs by {r[key]:.3g} > {tol}"
    assert r["lse_shape"] == [CASES[name]["T"]]


@needs_triton
@pytest.mark.parametrize("path", ["fused", "two_launch", "autotuned"])
def test_wrapper_reads_no_tensor_value_and_allocates_nothing_warm(results, path):
    """The decode path's host side: on every launch path the wrapper never calls .item()/.tolist()/.cpu()/.numpy()/
    bool()/int()/float() or .to() on a tensor (its decisions depend on shapes only: no host sync, capturable in a CUDA
    graph), and a warm call with caller-provided outputs allocates nothing (the plan and its workspace are cached)."""
    r = results["host_check"]["host_check"][path]
    assert r["banned"] == [], r
    assert r["warm_alloc"] == [], r
    assert "empty" in r["cold_calls"]                              # the check can fail: the cold call does allocate
    assert r["err"] < 2e-4


# ---------------------------------------------------------------- CPU, no interpreter

import adaptbench.kernels.confidence as conf
from adaptbench.kernels.confidence import CONFIDENCE_KEYS, confidence_stats_op, confidence_stats_reference

def _inputs(T=3, V=200, d=16, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, W, b = torch.randn(T, d, generator=g), torch.randn(V, d, generator=g) / 4, torch.randn(V, generator=g)
    b[:20] = -float("inf")
    return h.to(dtype), W.to(dtype), b.to(dtype)

def test_custom_op_opcheck():
    "torch.library.opcheck: schema, fake tensor, autograd registration and AOT dispatch (static and dynamic shapes)."
    h, W, b = _inputs()
    for args in [(h, W, b, 4.0), (h, W, None, None), (h[:0], W, b, None), (h.bfloat16(), W.bfloat16(), b.bfloat16(), None)]:
        res = torch.library.opcheck(torch.ops.adaptbench.confidence_stats.default, args)
        assert set(res.values()) == {"SUCCESS"}, res

def test_custom_op_compiles_fullgraph():
    "A compiled function calling the op: one graph (fullgraph=True), the reference's values on the CPU, shape errors at trace."
    h, W, b = _inputs()
    def f(h, W, b):
        r = confidence_stats_op(h, W, b, 4.0)
        return r["entropy"] * 2 + r["max_prob"], r["argmax"]
    torch._dynamo.reset()
    cf = torch.compile(f, fullgraph=True)
    (y, a), ref = cf(h, W, b), confidence_stats_reference(h, W, b, 4.0)
    torch.testing.assert_close(y, ref["entropy"] * 2 + ref["max_prob"])
    assert torch.equal(a, ref["argmax"])
    with pytest.raises(Exception, match="hidden size mismatch"):
        torch.compile(f, fullgraph=True, backend="aot_eager")(h, W[:, :8], b)
    # a fully masked row gives NaN statistics through the op too
    y2, _ = torch.compile(f, fullgraph=True, backend="aot_eager")(h, W, torch.full_like(b, -float("inf")))
    assert torch.isnan(y2).all()

class _Recorder:
    "Stands in for a Triton kernel: records each launch (grid, args, kwargs) instead of running it."
    def __init__(self): self.calls = []
    def __getitem__(self, grid): return lambda *a, **k: self.calls.append((grid, a, k))

@needs_triton
@pytest.mark.parametrize("fuse", [True, False])
def test_bf16_dtype_handling(monkeypatch, fuse):
    """bf16 inputs reach the kernel as they are (no fp32 copy of the head: decode is bandwidth-bound), outputs and
    partials are fp32, and the kernel accumulates the dot products and the statistics in fp32."""
    fwd, merge = _Recorder(), _Recorder()
    monkeypatch.setattr(conf, "_confidence_fwd_kernel", fwd)
    monkeypatch.setattr(conf, "_confidence_merge_kernel", merge)
    monkeypatch.setattr(conf, "_PLANS", {})
    h, W, b = _inputs(T=5, dtype=torch.bfloat16)
    out = conf.confidence_stats_triton(h, W, b, 4.0, autotune=False, block_v=64, fuse=fuse)
    (grid, a, k), = fwd.calls
    assert a[0] is h and a[3] is W and a[6] is b                     # the caller's bf16 tensors, not copies
    assert (a[1], a[2], a[4], a[5]) == (h.stride(0), h.stride(1), W.stride(0), W.stride(1))
    assert a[7].dtype == torch.float32 and a[10].dtype == torch.int32      # partials: fp32 statistics, int32 argmax
    assert [out[key].dtype for key in CONFIDENCE_KEYS] == [torch.int64 if key == "argmax" else torch.float32 for key in CONFIDENCE_KEYS]
    assert k["FUSED"] is fuse and k["DOT_PRECISION"] != "ieee" and k["HAS_BIAS"] and k["HAS_SOFTCAP"]
    assert len(merge.calls) == (0 if fuse else 1) and grid == (1, a[23])
    if not fuse: assert merge.calls[0][1][0] is a[7]                  # the epilogue merges the same workspace
    # fp32: full-precision products (no TF32 rounding)
    conf.confidence_stats_triton(h.float(), W.float(), b.float(), autotune=False, block_v=64, fuse=fuse)
    assert fwd.calls[-1][2]["DOT_PRECISION"] == "ieee"
    src = open(conf.__file__).read()                                   # the kernel's accumulators are fp32
    assert "acc = tl.zeros([BLOCK_T, BLOCK_V], tl.float32)" in src and ".to(tl.float32)[None, :]" in src

@needs_triton
def test_out_is_checked():
    h, W, b = _inputs(T=4)
    good = {k: torch.empty(4, dtype=torch.int64 if k == "argmax" else torch.float32) for k in CONFIDENCE_KEYS}
    for bad in [dict(good, entropy=torch.empty(5)), dict(good, argmax=torch.empty(4)),
                dict(good, lse=torch.empty(8)[::2]), {k: v for k, v in good.items() if k != "margin"}]:
        with pytest.raises(ValueError, match="out"): conf.confidence_stats_triton(h, W, b, out=bad, autotune=False)

def test_no_live_column_is_nan_through_signals():
    """Replayed report: `token_stats(torch.full((1, 3), -inf))` gave entropy 0.0 and max_prob 0.0, which an entropy-based
    stopping rule reads as full confidence. Through `signals` (reference on the CPU) every statistic of such a row is
    NaN — lse −inf, argmax 0 — in both the logits and the hidden-state paths, and other rows are untouched."""
    from adaptbench.signals import token_stats, confidence_stats
    r = token_stats(torch.full((1, 3), float("-inf")))
    assert torch.isnan(r["entropy"]).all() and torch.isnan(r["max_prob"]).all()
    assert r["lse"].item() == float("-inf") and r["argmax"].item() == 0
    z = torch.randn(2, 4, 50); z[1, 2] = float("-inf")                 # (batch, positions, V), one dead position
    r = token_stats(z)
    assert torch.isnan(r["entropy"]).sum() == 1 and torch.isnan(r["entropy"][1, 2])
    h, W, b = _inputs(T=6)
    r = confidence_stats(h.reshape(2, 3, -1), W, torch.full_like(b, -float("inf")))
    for k in ("max_prob", "margin", "entropy"): assert torch.isnan(r[k]).all(), k
    assert torch.isinf(r["lse"]).all() and (r["argmax"] == 0).all() and r["entropy"].shape == (2, 3)
    assert not (r["entropy"] < 0.1).any() and not (r["max_prob"] >= 0.9).any()   # a threshold rule never fires on it


# ---------------------------------------------------------------- the benchmark script, dry-run on the CPU

def _bench_module():
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_confidence", ROOT / "tools" / "bench_confidence.py")
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod

@needs_triton
def test_bench_variants_reach_the_launch(monkeypatch):
    """Every prefill configuration the bench records is launched with its own tiles, warps and stages (launches
    recorded, not run), and the autotuned call is kept as its own variant."""
    bench = _bench_module()
    v = bench.variants(4096, "prefill")
    assert list(v)[0] == "autotuned" and len(v) == 1 + len(conf._TUNE_LARGE)
    assert bench.variants(1, "prefill") == {"autotuned": {}} and len(bench.variants(1, "all")) == 1 + len(conf._TUNE_SMALL)
    fwd, merge = _Recorder(), _Recorder()
    monkeypatch.setattr(conf, "_confidence_fwd_kernel", fwd)
    monkeypatch.setattr(conf, "_confidence_merge_kernel", merge)
    monkeypatch.setattr(conf, "_PLANS", {})
    h, W, b = _inputs(T=200, V=1000, d=64)
    for name, kw in list(v.items())[1:]:
        conf.confidence_stats_triton(h, W, **kw)
        grid, a, k = fwd.calls[-1]
        assert bench.variant_name(k["BLOCK_T"], k["BLOCK_V"], k["BLOCK_D"], k["num_warps"], k["num_stages"]) == name
        assert grid[0] == -(-200 // k["BLOCK_T"]) and k["FUSED"] is False

def test_bench_cpu_dry_run(tmp_path):
    "On a CPU: --require-cuda stops with status 2 and a message; the quick CPU run writes a table with a variant column."
    cmd = [sys.executable, str(ROOT / "tools" / "bench_confidence.py")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), CUDA_VISIBLE_DEVICES="")
    p = subprocess.run(cmd + ["--require-cuda", "--device", "cpu"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 2 and "CUDA is not available" in p.stderr
    out = tmp_path / "bench.csv"
    p = subprocess.run(cmd + ["--shapes", "quick", "--max-cpu-macs", "3e7", "--reps", "1", "--providers", "eager,reference",
                              "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    import pandas as pd
    df = pd.read_csv(out)
    assert len(df) == 8 and set(df.provider) == {"eager", "reference"} and "variant" in df
    ok = df[df.status == "ok"]
    assert len(ok) == 2 and (ok["T"] == 1).all() and (ok.max_abs_err_entropy < 1e-4).all()

@needs_triton
def test_workspace_is_shared_per_power_of_two(monkeypatch):
    """Plans are cached per shape, but their partial buffers are views of one workspace per (device, T rounded up to a
    power of 2): many sequence lengths do not each keep their own buffers alive."""
    fwd, merge = _Recorder(), _Recorder()
    monkeypatch.setattr(conf, "_confidence_fwd_kernel", fwd)
    monkeypatch.setattr(conf, "_confidence_merge_kernel", merge)
    monkeypatch.setattr(conf, "_PLANS", {})
    monkeypatch.setattr(conf, "_WORKSPACE", {})
    W = torch.randn(1000, 16)
    for T in range(33, 65):
        conf.confidence_stats_triton(torch.randn(T, 16), W, autotune=False, block_v=64, fuse=False)
    assert len(conf._PLANS) == 32 and len(conf._WORKSPACE) == 1
    ptrs = {p.part.untyped_storage().data_ptr() for p in conf._PLANS.values()}
    assert len(ptrs) <= 2                                             # one buffer (grown at most once here)
    for (grid, a, k), T in zip(fwd.calls, range(33, 65)):
        part = a[7]
        assert part.shape[2] == T and part.stride(2) == 1 and a[8] == part.stride(0) and a[9] == part.stride(1)
        assert a[12].dtype == torch.int32 and a[12].numel() >= grid[0]   # a counter per token block
