#!/usr/bin/env python
"""Benchmark: tokens/s of the study's batched trace generation against plain one-at-a-time `generate`.

Same model, same puzzle prompts, greedy decoding, same budget. Three providers:
  batched   `adaptbench.generation.generate_traces(batch_size=B)`: left padding, KV cache, per-token statistics
  traced-1  `generate_traces(batch_size=1)`: the same trace recording, one prompt at a time
  plain-1   `model.generate` one prompt at a time, no logits kept (the baseline a user would write)
Generated tokens are counted up to and including EOS (padding after EOS is not counted). Also reports how many
prompts give identical greedy tokens batched and alone. Prints a table and appends tidy rows to
data/bench/generation.csv (not a test: timings depend on the machine).

Usage: python tools/bench_generation.py [--model smollm2-135m-instruct] [--prompts 16] [--budget 64]
                                        [--batch-sizes 4 8 16] [--threads 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import pandas as pd
import torch

from adaptbench.core import project_root
from adaptbench.generation import generate_traces
from adaptbench.models import load_model, stop_ids
from adaptbench.puzzles import get_puzzle


def puzzle_prompts(count: int) -> list:
    "`count` study prompts cycling over puzzles, n = 1..3 and both modes."
    names, out = ["hanoi", "checker_jumping", "river_crossing", "blocks_world"], []
    i = 0
    while len(out) < count:
        P = get_puzzle(names[i % 4])
        out.append(P.prompt(P.instance(1 + (i // 4) % 3), "think" if i % 2 else "direct"))
        i += 1
    return out


@torch.no_grad()
def plain_one_at_a_time(lm, prompts, budget: int) -> tuple[list[list[int]], float]:
    tok, eos = lm.tokenizer, stop_ids(lm)
    outs, t0 = [], time.perf_counter()
    for p in prompts:
        enc = tok([lm.chat_text(p)], return_tensors="pt", add_special_tokens=False).to(lm.device)
        seq = lm.model.generate(**enc, max_new_tokens=budget, do_sample=False, temperature=None, top_p=None,
                                top_k=None, pad_token_id=tok.pad_token_id)[0, enc["input_ids"].shape[1]:].tolist()
        stop = next((k for k, t in enumerate(seq) if t in eos), None)
        outs.append(seq if stop is None else seq[:stop + 1])
    return outs, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--budget", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[4, 8, 16])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (ignored on GPU)")
    ap.add_argument("--out", default=str(project_root() / "data" / "bench" / "generation.csv"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lm = load_model(a.model)
    prompts = puzzle_prompts(a.prompts)
    generate_traces(lm, prompts[:2], max_new_tokens=4, batch_size=2, progress=False)   # warm-up
    base = dict(model=a.model, device=str(lm.device), dtype=str(lm.dtype), threads=torch.get_num_threads(),
                prompts=len(prompts), budget=a.budget, when=dt.datetime.now().isoformat(timespec="seconds"))
    rows = []
    solo, secs = plain_one_at_a_time(lm, prompts, a.budget)
    rows.append(dict(base, provider="plain-1", batch_size=1, new_tokens=sum(map(len, solo)), seconds=secs, same_tokens=len(prompts)))
    for bs in [1] + a.batch_sizes:
        t0 = time.perf_counter()
        tr = generate_traces(lm, prompts, max_new_tokens=a.budget, batch_size=bs, progress=False)
        secs = time.perf_counter() - t0
        same = sum(t["tokens"] == s for t, s in zip(tr, solo))
        rows.append(dict(base, provider="traced-1" if bs == 1 else "batched", batch_size=bs,
                         new_tokens=sum(t["n_tokens"] for t in tr), seconds=secs, same_tokens=same))
    df = pd.DataFrame(rows)
    df["tok_per_s"] = df["new_tokens"] / df["seconds"]
    df["speedup_vs_plain"] = df["tok_per_s"] / df.loc[df["provider"] == "plain-1", "tok_per_s"].iloc[0]
    cols = ["provider", "batch_size", "prompts", "new_tokens", "seconds", "tok_per_s", "speedup_vs_plain", "same_tokens"]
    print(f"{a.model} on {lm.device} ({base['dtype']}, {base['threads']} threads), budget {a.budget}")
    print(df[cols].to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, mode="a", header=not out.exists(), index=False)
    print(f"appended {len(df)} rows to {out}")


if __name__ == "__main__":
    main()
