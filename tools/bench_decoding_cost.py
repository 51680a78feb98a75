#!/usr/bin/env python
"""Prefill, autoregressive decode and a cached block-diffusion step of SmolLM2-135M on this CPU (a benchmark, not a test).

Measures, with the torch thread count fixed (and printed), after one warm-up run, the median over `--repeats` runs of
  device      this CPU's roofline: fp32 matmul FLOP/s (a 2048² @ 2048² product) and memory bandwidth (a 256 MiB tensor
              copy, counted as read + write), the fastest of the runs, measured at the start and at the end; the CSV's
              cpu_peak_flops / cpu_bandwidth are the better of the two
  prefill     one forward pass over a batch of P-token prompts, logits for the last position only (as `generate` does)
  decode      G greedy decode steps (each of --gen-lens) of one token each from a KV cache holding the P prompt tokens (cache cropped back
              to P between repeats)
  block_step  one forward pass over B new positions against a KV cache of P positions with logits for all B positions:
              the cost of one denoising step of cached block diffusion (the model's causal mask inside the block
              instead of a bidirectional one changes only B²/2 attention pairs per layer)
Configurations with batch × P above --max-prefill-tokens are skipped to keep the run short (≈ 1–2 min on a quiet core).
Rows go to data/bench/decoding_cost_cpu.csv (or --out), with the 1-minute load average at each row and at the start:
the machine may be shared, so rerun on a quiet machine before trusting the absolute numbers.

    python tools/bench_decoding_cost.py --threads 1 --repeats 3
"""
from __future__ import annotations

import argparse, datetime, os, statistics, sys, time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from adaptbench.models import load_model  # noqa: E402


def timed(fn, repeats:int, reset=None):
    "Median and minimum wall seconds of `fn()` over `repeats` runs after one warm-up; `reset()` runs untimed after each."
    out = []
    for i in range(repeats + 1):
        t = time.perf_counter(); fn(); dt = time.perf_counter() - t
        if reset is not None: reset()
        if i: out.append(dt)
    return statistics.median(out), min(out)


def measure_device(repeats:int, n:int=2048, mib:int=256):
    "Best-of-runs fp32 matmul FLOP/s and copy bandwidth (bytes/s) of this CPU with the current torch threads."
    a, b = torch.randn(n, n), torch.randn(n, n)
    _, t_mm = timed(lambda: a @ b, repeats + 2)            # the fastest run: a peak is the best the machine can do
    x = torch.empty(mib * 2**20 // 4).normal_(); y = torch.empty_like(x)
    _, t_cp = timed(lambda: y.copy_(x), repeats + 2)
    return 2 * n**3 / t_mm, 2 * x.numel() * 4 / t_cp


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: robust when the cores are shared)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--prompt-lens", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--gen-lens", type=int, nargs="+", default=[4, 16], help="decode steps G per timed decode run")
    ap.add_argument("--block", type=int, default=32, help="block size B of the block-diffusion step")
    ap.add_argument("--max-prefill-tokens", type=int, default=512, help="skip batch × P above this")
    ap.add_argument("--out", default=str(ROOT / "data" / "bench" / "decoding_cost_cpu.csv"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads); torch.manual_seed(0)
    load0 = os.getloadavg()[0]
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, cpus {os.cpu_count()}, load {load0:.2f}", flush=True)
    t0 = time.time()
    peak, bw = measure_device(a.repeats)
    print(f"device: fp32 matmul {peak / 1e9:.1f} GFLOP/s, copy bandwidth {bw / 1e9:.1f} GB/s", flush=True)
    lm = load_model(a.model, device="cpu", dtype="float32")
    model, V = lm.model.eval(), lm.vocab_size
    rows = []
    with torch.inference_mode():
        for P in a.prompt_lens:
            for b in a.batches:
                if b * P > a.max_prefill_tokens: continue
                ids = torch.randint(100, V - 100, (b, P))
                fwd = lambda x, cache=None, keep=1: model(input_ids=x, cache=cache, use_cache=True,
                                                          logits_to_keep=keep)
                med, mn = timed(lambda: fwd(ids), a.repeats)
                rows.append(dict(kind="prefill", prompt_len=P, gen_len=0, batch=b, block=0, median_s=med, min_s=mn,
                                 tokens=b * P))
                cache = fwd(ids).cache
                reset = lambda: cache.crop(P - cache.get_seq_length())   # back to the P prompt positions

                def decode(G):
                    tok = ids[:, -1:]
                    for _ in range(G):
                        tok = fwd(tok, cache).logits[:, -1].argmax(-1, keepdim=True)   # (b, 1) greedy next token
                for G in a.gen_lens:
                    med, mn = timed(lambda: decode(G), a.repeats, reset=reset)
                    rows.append(dict(kind="decode", prompt_len=P, gen_len=G, batch=b, block=0, median_s=med,
                                     min_s=mn, tokens=b * G))
                blk = torch.randint(100, V - 100, (b, a.block))
                med, mn = timed(lambda: fwd(blk, cache, keep=a.block), a.repeats, reset=reset)
                rows.append(dict(kind="block_step", prompt_len=P, gen_len=a.block, batch=b, block=a.block,
                                 median_s=med, min_s=mn, tokens=b * a.block))
                r = rows[-2 - len(a.gen_lens):]
                for x in r: x["load"] = os.getloadavg()[0]                # 1-minute load average when measured
                print(f"P={P:4d} b={b:3d}  prefill {r[0]['median_s'] * 1e3:8.1f} ms  decode "
                      + " ".join(f"{x['median_s'] / x['gen_len'] * 1e3:7.1f}" for x in r[1:-1])
                      + f" ms/step (G = {a.gen_lens})  block step {r[-1]['median_s'] * 1e3:7.1f} ms", flush=True)
    peak2, bw2 = measure_device(a.repeats)                 # again at the end: the load may have changed
    print(f"device again: fp32 matmul {peak2 / 1e9:.1f} GFLOP/s, copy bandwidth {bw2 / 1e9:.1f} GB/s", flush=True)
    df = pd.DataFrame(rows).assign(model=str(lm.spec), dtype="float32", threads=a.threads, repeats=a.repeats,
                                   cpu_peak_flops=max(peak, peak2), cpu_bandwidth=max(bw, bw2),
                                   cpu_peak_flops_start=peak, cpu_peak_flops_end=peak2, cpu_bandwidth_start=bw,
                                   cpu_bandwidth_end=bw2, load_start=load0,
                                   load_end=os.getloadavg()[0], cpus=os.cpu_count(), torch=torch.__version__,
                                   date=datetime.datetime.now().isoformat(timespec="seconds"))
    df["tokens_per_s"] = df.tokens / df.median_s
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp"); df.to_csv(tmp, index=False); tmp.replace(out)
    print(df[["kind", "prompt_len", "gen_len", "batch", "median_s", "tokens_per_s"]].round(4).to_string(index=False))
    print(f"wrote {len(df)} rows to {out} in {time.time() - t0:.0f} s (load {load0:.2f} → {df.load_end.iloc[0]:.2f})")


if __name__ == "__main__":
    main()
