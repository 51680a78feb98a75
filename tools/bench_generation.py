#!/usr/bin/env python
"""Benchmark (not a test): the generation engine against `model.generate`, against this CPU's compute bound measured in
the same run, and the per-step cost of the workbench's decoding loops at batch 1.

Throughput (greedy, the same prompts, the same budget; tokens counted up to and including a stop id):
  plain-1        `model.generate` one prompt at a time, no logits kept (what a user would write)
  hf-batched     `model.generate` on left-padded batches of B prompts
  hf-traced      `model.generate` on batches of B keeping every step's logits and computing per-token statistics
                 afterwards (how `generation.generate_traces` worked before the engine)
  engine         `engine.generate_batched` with B slots (continuous batching, statistics on the fly): what the studies use
The compute bound: this CPU's fp32 matmul FLOP/s (a 2048² product, best of several runs, at the start and the end)
divided by 2 × the model's parameter count (FLOPs per token, attention over short contexts left out); every row's
`frac_of_bound` is its tokens/s over that bound. `same_tokens` counts prompts whose tokens equal plain-1's.

Per-step cost at batch 1 (seconds per generated token, a 96-token budget, median of --repeats over the same prompts):
  generate                 `model.generate`
  engine                   `engine.generate_batched`, one slot
  speculative (no drafts)  `speculative.speculative_generate` with a drafter that proposes nothing: the verify loop's
                           own overhead
  probed stopping          `probes.probe_batch` with one probe at the end (no interval probes): the probing hook's
                           overhead on the engine
  early exit (never)       `early_exit.early_exit_generate` with a policy that never exits: the layer-by-layer loop
  parallel (k = 1)         `parallel.parallel_generate` with one sample

Rows go to data/bench/generation_engine.csv and data/bench/step_cost.csv (appended, with the load average): rerun on a quiet
machine before trusting absolute numbers; compare rows of one run (ratios).

    python tools/bench_generation.py --prompts 32 --budget 64 --batch-sizes 8 32 --threads 2
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from adaptbench.core import project_root
from adaptbench.engine import generate_batched
from adaptbench.models import load_model, stop_ids
from adaptbench.puzzles import get_puzzle
from adaptbench.signals import token_stats


def puzzle_prompts(count: int) -> list:
    "`count` study prompts cycling over puzzles, n = 1..3 and both modes."
    names, out = ["hanoi", "checker_jumping", "river_crossing", "blocks_world"], []
    i = 0
    while len(out) < count:
        P = get_puzzle(names[i % 4])
        out.append(P.prompt(P.instance(1 + (i // 4) % 3), "think" if i % 2 else "direct"))
        i += 1
    return out


def _cut(seq, eos):
    stop = next((k for k, t in enumerate(seq) if t in eos), None)
    return seq if stop is None else seq[:stop + 1]


def matmul_flops(repeats: int = 5, n: int = 2048) -> float:
    "Best-of-runs fp32 matmul FLOP/s with the current torch threads."
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(repeats))
    return 2 * n ** 3 / best


@torch.no_grad()
def hf_batched(lm, ids, budget, bs, traced=False):
    "`generate` on left-padded batches; with `traced`, keep every step's logits and compute their statistics."
    tok, eos, out = lm.tokenizer, stop_ids(lm), []
    for i in range(0, len(ids), bs):
        batch = ids[i:i + bs]
        L = max(map(len, batch))
        x = torch.full((len(batch), L), tok.pad_token_id, dtype=torch.long)
        m = torch.zeros_like(x)
        for r, p in enumerate(batch): x[r, L - len(p):], m[r, L - len(p):] = torch.tensor(p), 1
        g = lm.model.generate(x, attention_mask=m, max_new_tokens=budget, do_sample=False, pad_token_id=tok.pad_token_id,
                              output_logits=traced, return_dict_in_generate=True)
        if traced: token_stats(torch.stack(g.logits, dim=1))
        out += [_cut(row[L:].tolist(), eos) for row in g.sequences]
    return out


def throughput(lm, prompts, budget, batch_sizes, bound) -> pd.DataFrame:
    ids = [lm.tokenizer(lm.chat_text(p), add_special_tokens=False)["input_ids"] for p in prompts]
    eos, rows = stop_ids(lm), []
    def row(provider, bs, toks, secs, ref):
        n = sum(map(len, toks))
        rows.append(dict(provider=provider, batch_size=bs, new_tokens=n, seconds=secs, tok_per_s=n / secs,
                         frac_of_bound=n / secs / bound, same_tokens=sum(a == b for a, b in zip(toks, ref))))
    t = time.perf_counter(); solo = hf_batched(lm, ids, budget, 1); row("plain-1", 1, solo, time.perf_counter() - t, solo)
    for bs in batch_sizes:
        for name, fn in [("hf-batched", lambda: hf_batched(lm, ids, budget, bs)),
                         ("hf-traced", lambda: hf_batched(lm, ids, budget, bs, traced=True)),
                         ("engine", lambda: [s.tokens for s in generate_batched(lm, ids, budget, slots=bs)])]:
            t = time.perf_counter(); toks = fn(); row(name, bs, toks, time.perf_counter() - t, solo)
    return pd.DataFrame(rows)


class _NoDrafts:
    "A drafter that proposes nothing: speculative decoding's verify loop alone."
    name, cost = "none", 0.0
    def reset(self, batch): pass
    def draft(self, seqs, gammas, temperature=0.0, generator=None): return [[] for _ in seqs], [None] * len(seqs)


@torch.no_grad()
def step_costs(lm, prompts, budget, repeats) -> pd.DataFrame:
    "Seconds per generated token at batch 1 of each decoding loop, median over `repeats` passes over the prompts."
    from adaptbench.early_exit import early_exit_generate
    from adaptbench.exits import EarlyExit
    from adaptbench.parallel import parallel_generate
    from adaptbench.probes import probe_batch, probe_tasks
    from adaptbench.speculative import speculative_generate
    texts = [p[-1]["content"] if isinstance(p, list) else p for p in prompts]
    ids = [lm.tokenizer(lm.chat_text(p), add_special_tokens=False)["input_ids"] for p in prompts]
    tasks = probe_tasks(["addition"], (3, 3), len(prompts), seed=1, distinct=True)
    never = EarlyExit("max_prob", thresholds=[np.inf])
    loops = {
        "generate": lambda i: len(hf_batched(lm, ids[i:i + 1], budget, 1)[0]),
        "engine": lambda i: len(generate_batched(lm, ids[i:i + 1], budget, slots=1)[0].tokens),
        "speculative (no drafts)": lambda i: speculative_generate(lm, ids[i:i + 1], _NoDrafts(), budget, gamma=1, chat=False)["new_tokens"],
        "probed stopping": lambda i: len(probe_batch(lm, tasks[i:i + 1], budget, budget + 1).generated[0]),
        "early exit (never)": lambda i: len(early_exit_generate(lm, texts[i], never, max_new_tokens=budget)["tokens"]),
        "parallel (k = 1)": lambda i: parallel_generate(lm, texts[i], k=1, rule="majority", task="addition", budget=budget,
                                                        temperature=0.0).tokens,
    }
    rows = []
    for name, fn in loops.items():
        fn(0)                                                                     # warm-up
        per = []
        for _ in range(repeats):
            t, n = time.perf_counter(), 0
            for i in range(len(prompts)): n += fn(i)
            per.append((time.perf_counter() - t) / n)
        rows.append(dict(loop=name, s_per_token=statistics.median(per), spread=max(per) - min(per), repeats=repeats))
    df = pd.DataFrame(rows)
    df["vs_generate"] = df.s_per_token / df.s_per_token[df.loop == "generate"].iloc[0]
    return df


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--budget", type=int, default=64)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 32])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--step-prompts", type=int, default=4, help="prompts of the batch-1 step-cost table (0: skip it)")
    ap.add_argument("--step-budget", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(project_root() / "data" / "bench"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lm = load_model(a.model, device="cpu", dtype="float32")
    prompts = puzzle_prompts(a.prompts)
    n_params = sum(p.numel() for p in lm.model.parameters())
    flops0 = matmul_flops()
    generate_batched(lm, [lm.tokenizer(lm.chat_text(prompts[0]), add_special_tokens=False)["input_ids"]], 4)   # warm-up
    base = dict(model=a.model, threads=torch.get_num_threads(), prompts=len(prompts), budget=a.budget,
                load_start=os.getloadavg()[0], when=dt.datetime.now().isoformat(timespec="seconds"))
    bound = flops0 / (2 * n_params)
    tp = throughput(lm, prompts, a.budget, a.batch_sizes, bound)
    flops1 = matmul_flops()
    bound = max(flops0, flops1) / (2 * n_params)
    tp["frac_of_bound"] = tp.tok_per_s / bound
    tp = tp.assign(**base, bound_tok_per_s=bound, matmul_gflops=max(flops0, flops1) / 1e9, load_end=os.getloadavg()[0])
    print(f"{a.model}: {n_params / 1e6:.0f} M parameters, {2 * n_params / 1e9:.2f} GFLOP per token; fp32 matmul "
          f"{max(flops0, flops1) / 1e9:.0f} GFLOP/s on {base['threads']} threads -> compute bound {bound:.0f} tokens/s "
          f"(load {base['load_start']:.1f} -> {tp.load_end.iloc[0]:.1f})")
    cols = ["provider", "batch_size", "new_tokens", "seconds", "tok_per_s", "frac_of_bound", "same_tokens"]
    print(tp[cols].to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    tp.to_csv(out / "generation_engine.csv", mode="a", header=not (out / "generation_engine.csv").exists(), index=False)
    if a.step_prompts:
        sc = step_costs(lm, prompts[:a.step_prompts], a.step_budget, a.repeats).assign(**base, load_end=os.getloadavg()[0])
        print(f"\nbatch 1, {a.step_prompts} prompts, budget {a.step_budget}: seconds per generated token")
        print(sc[["loop", "s_per_token", "spread", "vs_generate"]].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
        sc.to_csv(out / "step_cost.csv", mode="a", header=not (out / "step_cost.csv").exists(), index=False)
    print(f"appended to {out}/generation_engine.csv" + (" and step_cost.csv" if a.step_prompts else ""))


if __name__ == "__main__":
    main()
