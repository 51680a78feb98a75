"""Run the Triton kernels under TRITON_INTERPRET=1 against their torch references; used by test_kernels.py.

Reads a JSON list of cases on stdin, prints a JSON list of results (max abs errors per output, NaN flags).
Run as a fresh process so the interpreter is switched on before Triton is first imported.

Case options beyond the shapes: `fuse` (one launch or forward + merge), `out` (caller-provided outputs), `calls`
(repeat the call: plan reuse and the arrival counters' reset), `w_layout` ("transposed": W stored column-major;
"strided": every other column of a wider matrix), `bf16` (inputs rounded to bfloat16, then run by the kernel in fp32
and compared with the reference on the bfloat16 tensors themselves), and op="host_check" (which torch functions the
wrapper calls itself: none may read a tensor value on the host, and a warm call with `out=` allocates nothing)."""
import json, os, sys, warnings
os.environ["TRITON_INTERPRET"] = "1"
warnings.filterwarnings("ignore", category=RuntimeWarning)   # 0*(-inf) inside discarded `where` branches

import time
import torch
torch.set_num_threads(1)
import adaptbench.kernels.confidence as conf
from adaptbench.kernels.confidence import confidence_stats_reference, confidence_stats_triton

def cpu_bench(fn, quantiles=None):
    "Autotuner timing on the CPU (the interpreter has no CUDA events): one timed call."
    t = time.perf_counter(); fn(); ms = 1e3 * (time.perf_counter() - t)
    return [ms] * len(quantiles) if quantiles else ms
conf._AUTOTUNE_DO_BENCH = cpu_bench
from adaptbench.kernels.token_stats import token_stats_reference, token_stats_triton

NEG = -float("inf")

def confidence_inputs(c):
    "Hidden states, LM head and bias for a case: random, integer-valued (exact ties) or duplicated head rows."
    g = torch.Generator().manual_seed(c.get("seed", 0))
    T, V, D = c["T"], c["V"], c["D"]
    if c.get("kind") == "ties":          # integer logits: exact in fp32 whatever the summation order
        h = torch.randint(-1, 2, (T, D), generator=g).float()
        W = torch.randint(-1, 2, (V, D), generator=g).float()
        b = None
    else:
        h = torch.randn(T, D, generator=g) * c.get("scale", 1.0)
        W = torch.randn(V, D, generator=g) / D ** 0.5 * 3
        b = torch.randn(V, generator=g) if c.get("bias", True) else None
    if c.get("dup"):                     # copies of one head row far apart: the first must win
        row = torch.round(W[c["dup"][0]] * 2)            # integer-valued: its logits are exact in fp32
        W[c["dup"]] = row
        h = row.expand(T, D).clone()                     # that row is then the max for every token
        if b is not None: b[c["dup"]] = 0.0
    for lo, hi in c.get("mask", []):     # -inf bias on these column ranges
        b = torch.zeros(V) if b is None else b
        b[lo:hi] = NEG
    if c.get("w_layout") == "transposed": W = W.t().contiguous().t()              # strides (1, V)
    if c.get("w_layout") == "strided": W = torch.stack([W, torch.randn_like(W)], -1).reshape(V, 2 * D)[:, ::2]   # strides (2D, 2)
    return h, W, b

BANNED = {"item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__", "nonzero", "any", "all",
          "equal", "is_nonzero", "to", "synchronize"}                      # each reads a value on (or moves it to) the host
ALLOC = {"empty", "zeros", "ones", "full", "empty_like", "zeros_like", "full_like", "new_empty", "new_zeros", "new_full",
         "empty_strided", "tensor", "clone", "contiguous", "arange", "float", "half", "bfloat16"}

class WrapperCalls(torch.overrides.TorchFunctionMode):
    "Records the torch functions that the kernel wrapper itself calls (not Triton's interpreter, not torch internals)."
    def __init__(self): super().__init__(); self.names = []
    def __torch_function__(self, func, types, args=(), kwargs=None):
        f = sys._getframe(1)
        while f is not None and ("/torch/" in f.f_code.co_filename or f.f_code.co_filename == __file__): f = f.f_back
        if f is not None and f.f_code.co_filename.endswith(os.path.join("kernels", "confidence.py")):
            self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))

def host_check(c):
    "Every launch path, cold and warm: the wrapper's own torch calls (banned ones, and allocations on a warm out= call)."
    h, W, b = confidence_inputs(c)
    res = {}
    for name, kw in [("fused", dict(fuse=True, block_v=64)), ("two_launch", dict(fuse=False, block_v=64)),
                     ("autotuned", dict(autotune=True))]:
        out = {k: torch.empty(c["T"], dtype=torch.int64 if k == "argmax" else torch.float32) for k in conf.CONFIDENCE_KEYS}
        with WrapperCalls() as cold: confidence_stats_triton(h, W, b, 4.0, **kw)
        with WrapperCalls() as warm: confidence_stats_triton(h, W, b, 4.0, out=out, **kw)
        r = confidence_stats_reference(h, W, b, 4.0)
        res[name] = dict(banned=sorted(set(cold.names + warm.names) & BANNED), warm_alloc=sorted(set(warm.names) & ALLOC),
                         cold_calls=sorted(set(cold.names)), err=max((out[k].double() - r[k].double()).abs().max().item() for k in r))
    return {"case": c, "host_check": res}

def run(c):
    if c["op"] == "host_check": return host_check(c)
    if c["op"] == "token_stats":
        g = torch.Generator().manual_seed(c.get("seed", 0))
        z = torch.randn(c["T"], c["V"], generator=g) * 4
        if c["T"] > 1: z[0, c["V"] // 2:] = NEG; z[1] = NEG            # a masked row and a fully masked row
        k, r = token_stats_triton(z, block_v=c.get("block_v", 256)), token_stats_reference(z)
    else:
        h, W, b = confidence_inputs(c)
        kw = {k: c[k] for k in ("block_t", "block_v", "block_d", "n_splits", "autotune", "fuse") if k in c}
        if c.get("bf16"):                # bf16 inputs: the kernel's fp32 math on the rounded values vs the reference on bf16
            h, W = h.bfloat16(), W.bfloat16()
            b = None if b is None else b.bfloat16()
            r = confidence_stats_reference(h, W, b, c.get("softcap"))
            h, W, b = h.float(), W.float(), None if b is None else b.float()
        else: r = confidence_stats_reference(h, W, b, c.get("softcap"))
        for _ in range(c.get("calls", 1)):
            out = {k: torch.full((c["T"],), 7, dtype=torch.int64 if k == "argmax" else torch.float32)
                   for k in conf.CONFIDENCE_KEYS} if c.get("out") else None
            k = confidence_stats_triton(h, W, b, c.get("softcap"), out=out, **kw)
            if out is not None: assert all(k[key] is out[key] for key in out)
        z = h @ W.T + (0 if b is None else b)                           # (T, V) reference logits, for near-ties
        if c.get("softcap"): z = torch.where(torch.isneginf(z), z, c["softcap"] * torch.tanh(z / c["softcap"]))
        if z.numel():   # how far below the max is the logit the kernel picked (0 when it picked a maximum)
            gap = (z.gather(1, r["argmax"][:, None]) - z.gather(1, k["argmax"][:, None])).abs()
            gap_ok = torch.isinf(z.gather(1, r["argmax"][:, None])) | (gap == 0)
            argmax_gap = torch.where(gap_ok, 0., gap).max().item()
        else: argmax_gap = 0.0
    # NaN only where the reference has NaN too (rows with no live column), and there in both
    nan = any((torch.isnan(k[key].float()) != torch.isnan(r[key].float())).any().item() for key in r)
    out = {"argmax_gap": argmax_gap if c["op"] == "confidence" else 0.0, "case": c, "nan": nan,
           "nan_rows": int(torch.isnan(r["max_prob"]).sum().item())}
    for key in r:
        kv, rv = k[key].double(), r[key].double()
        both_inf = torch.isinf(kv) & torch.isinf(rv) & (torch.sign(kv) == torch.sign(rv))
        diff = torch.where(both_inf | (torch.isnan(kv) & torch.isnan(rv)), 0., (kv - rv).abs())
        out[key] = diff.max().item() if diff.numel() else 0.0
        out[key + "_shape"] = list(k[key].shape)
    return out

if __name__ == "__main__":
    print(json.dumps([run(c) for c in json.load(sys.stdin)]))
