"""Run the Triton kernels under TRITON_INTERPRET=1 against their torch references; used by test_kernels.py.

Reads a JSON list of cases on stdin, prints a JSON list of results (max abs errors per output, NaN flags).
Run as a fresh process so the interpreter is switched on before Triton is first imported."""
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
    return h, W, b

def run(c):
    if c["op"] == "token_stats":
        g = torch.Generator().manual_seed(c.get("seed", 0))
        z = torch.randn(c["T"], c["V"], generator=g) * 4
        if c["T"] > 1: z[0, c["V"] // 2:] = NEG; z[1] = NEG            # a masked row and a fully masked row
        k, r = token_stats_triton(z, block_v=c.get("block_v", 256)), token_stats_reference(z)
    else:
        h, W, b = confidence_inputs(c)
        kw = {k: c[k] for k in ("block_t", "block_v", "block_d", "n_splits", "autotune") if k in c}
        k = confidence_stats_triton(h, W, b, c.get("softcap"), **kw)
        r = confidence_stats_reference(h, W, b, c.get("softcap"))
        z = h @ W.T + (0 if b is None else b)                           # (T, V) reference logits, for near-ties
        if c.get("softcap"): z = torch.where(torch.isneginf(z), z, c["softcap"] * torch.tanh(z / c["softcap"]))
        if z.numel():   # how far below the max is the logit the kernel picked (0 when it picked a maximum)
            gap = (z.gather(1, r["argmax"][:, None]) - z.gather(1, k["argmax"][:, None])).abs()
            gap_ok = torch.isinf(z.gather(1, r["argmax"][:, None])) | (gap == 0)
            argmax_gap = torch.where(gap_ok, 0., gap).max().item()
        else: argmax_gap = 0.0
    out = {"argmax_gap": argmax_gap if c["op"] == "confidence" else 0.0, "case": c, "nan": any(torch.isnan(v.float()).any().item() for v in k.values())}
    for key in r:
        kv, rv = k[key].double(), r[key].double()
        both_inf = torch.isinf(kv) & torch.isinf(rv) & (torch.sign(kv) == torch.sign(rv))
        diff = torch.where(both_inf, 0., (kv - rv).abs())
        out[key] = diff.max().item() if diff.numel() else 0.0
        out[key + "_shape"] = list(k[key].shape)
    return out

if __name__ == "__main__":
    print(json.dumps([run(c) for c in json.load(sys.stdin)]))
