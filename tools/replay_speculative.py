#!/usr/bin/env python
"""Price speculative-decoding policies of a draft/target pair on step costs measured in the same run.

The replay itself is the library's (`adaptbench.speculative`): `record_drafts` records the draft's greedy token and
probability along the target's greedy replies once, and `replay_drafts` runs any `stop_below` (dynamic lookahead,
`ModelDrafter`) × γ rule (fixed, or transformers' heuristic: `HeuristicGamma`, as `tools/bench_decoding.py` runs it)
with the live loop's own draft-length step, giving per step the drafts and the kept drafts. This tool keeps only the
timing: a cost model measured here (the fastest of several rounds each: a one- and a two-token draft step, target
passes over 1–13 tokens, prefills, `generate`'s time per token) prices the steps as `speculative_generate` runs them:
the first verify is the target's prefill, and after a fully kept draft the next draft step feeds two tokens.

Prints the best policies, the bench's policy, and how its speed-up grows as the draft step gets cheaper; writes
data/bench/spec_policy_replay.csv (or --out).

    python tools/replay_speculative.py                 # the Qwen pair, 8 chat prompts, 64 tokens (about 10 min)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "tools"))
from adaptbench.core import atomic_path  # noqa: E402
from adaptbench.decoding import (RaggedKV, full_logits_fn, lean_logits_fn, pack_linear_weights,  # noqa: E402
                                 stepping_unsupported)
from adaptbench.models import load_model  # noqa: E402
from adaptbench.speculative import (DraftRecords, FixedGamma, HeuristicGamma, check_same_tokenizer,  # noqa: E402
                                    encode_prompts, record_drafts, replay_drafts)
from bench_decoding import prompt_sets  # noqa: E402


def fastest(fn, rounds:int=7, calls:int=3) -> float:
    "Seconds per call of `fn()`: the fastest of `rounds` rounds of `calls` calls (after one warm-up call)."
    fn(); best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(calls): fn()
        best = min(best, (time.perf_counter() - t) / calls)
    return best


@torch.no_grad()
def measure_costs(small, large, ids:list[int], max_t:int=13) -> dict:
    "Seconds of: draft steps of 1 and 2 tokens (d1, d2), target passes over 1..max_t tokens (V), prefills, generate/token."
    dfn = lean_logits_fn(small.model) if stepping_unsupported(small.model, lean=True) is None else full_logits_fn(small.model)
    dkv, tkv = RaggedKV(dfn, 1, small.device), RaggedKV(full_logits_fn(large.model), 1, large.device)
    a, b = list(range(11, 11 + max_t)), list(range(41, 41 + max_t))      # alternate: nothing is reused
    flip = [False]
    def alt(kv, T, n):
        flip[0] = not flip[0]
        kv([ids + (a if flip[0] else b)[:T]], [n])
    c = dict(draft_prefill=fastest(lambda: RaggedKV(dfn, 1, small.device)([ids], [1]), 3, 1),
             target_prefill=fastest(lambda: RaggedKV(full_logits_fn(large.model), 1, large.device)([ids], [1]), 3, 1))
    dkv([ids], [1]); tkv([ids], [1])
    c["d1"], c["d2"] = fastest(lambda: alt(dkv, 1, 1)), fastest(lambda: alt(dkv, 2, 1))
    for T in range(1, max_t + 1):
        c[f"V{T}"] = fastest(lambda: alt(tkv, T - 1, T))        # the last accepted token + T − 1 drafts
    x = torch.tensor([ids])
    gen = lambda n: large.model.generate(x, max_new_tokens=n, min_new_tokens=n, do_sample=False)
    c["gen_token"] = (fastest(lambda: gen(17), 2, 1) - fastest(lambda: gen(1), 2, 1)) / 16
    return c


def price(recs:DraftRecords, steps:pd.DataFrame, c:dict, draft_scale:float=1.0) -> dict:
    "Modelled seconds of `generate` and of speculative decoding for the replayed steps (`replay_drafts`), and their counts."
    def V(T):
        if f"V{T}" not in c: raise ValueError(f"no measured cost of a {T}-token verify pass: measure_costs(max_t ≥ {T})")
        return c[f"V{T}"]
    gen = sum(c["target_prefill"] + (len(r) - 1) * c["gen_token"] for r in recs.replies)
    spec = 0.0
    for _, g in steps.groupby("prompt", sort=False):
        spec += c["target_prefill"] - V(1)                      # the first verify pass is the prefill
        spec += (c["draft_prefill"] - c["d1"]) * draft_scale    # and the first draft step the draft's
        feed = 1
        for k, a in zip(g.drafted, g.kept):
            spec += sum(c["d1"] if j or feed == 1 else c["d2"] for j in range(k)) * draft_scale
            spec += V(k + 1)
            feed = 2 if k and a == k else 1                     # after a fully kept draft the next step feeds two tokens
    drafted, kept = int(steps.drafted.sum()), int(steps.kept.sum())
    return dict(speedup=gen / spec, acceptance=kept / drafted if drafted else float("nan"),
                tokens_per_step=sum(map(len, recs.replies)) / len(steps), drafted_per_step=drafted / len(steps))


def replay(recs:DraftRecords, c:dict, stop_below:float, rule, draft_scale:float=1.0) -> dict:
    "A policy's modelled speed-up: the library's replay (`speculative.replay_drafts`), priced with the measured costs."
    return price(recs, replay_drafts(recs, stop_below, rule), c, draft_scale)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--draft", default="qwen2.5-coder-0.5b", help="draft model: alias, local folder or HF id")
    ap.add_argument("--target", default="qwen2.5-coder-1.5b", help="target model (the same tokenizer as the draft)")
    ap.add_argument("--prompts", type=int, default=8, help="chat prompts, 1-12 (the bench's held-out lens prompts)")
    ap.add_argument("--tokens", type=int, default=64, help="new tokens per reply (≥ 1)")
    ap.add_argument("--no-half", action="store_true", help="keep the draft's one-row products in float32")
    ap.add_argument("--out", default=str(ROOT / "data" / "bench" / "spec_policy_replay.csv"), help="CSV to write")
    a = ap.parse_args(argv)
    if not 1 <= a.prompts <= 12: ap.error("--prompts must be 1-12 (there are 12 held-out chat prompts)")
    if a.tokens < 1: ap.error("--tokens must be ≥ 1")
    torch.set_num_threads(2)
    small, large = load_model(a.draft, device="cpu"), load_model(a.target, device="cpu")
    check_same_tokenizer(large, small)                      # raises, naming the fix, for a draft with another tokenizer
    pack_linear_weights(small, half_gemv=not a.no_half); pack_linear_weights(large)
    prompts = prompt_sets(a.prompts)["chat"]
    ids = encode_prompts(large, prompts)
    print(f"greedy replies of {a.target} to {len(prompts)} chat prompts, and the draft along them ...", flush=True)
    recs = record_drafts(large, small, prompts, a.tokens)
    print("measuring step costs ...", flush=True)
    c = measure_costs(small, large, ids[0])
    print("  " + ", ".join(f"{k} {v * 1e3:.0f} ms" for k, v in c.items()), flush=True)
    rows = []
    for sb in [0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]:
        for gname, make in [*((str(g), (lambda g=g: FixedGamma(g))) for g in (1, 2, 3, 4, 6, 8)),
                            ("heuristic", lambda: HeuristicGamma(start=3, max_gamma=12))]:
            for scale in (1.0, 0.8, 0.6):
                rows.append(dict(stop_below=sb, gamma=gname, draft_cost_scale=scale, **replay(recs, c, sb, make(), scale)))
    df = pd.DataFrame(rows).round(3)
    df.insert(0, "draft", a.draft); df.insert(1, "target", a.target)
    df.insert(2, "prompts", len(prompts)); df.insert(3, "tokens", a.tokens)
    for k, v in c.items(): df[f"cost_{k}_ms"] = round(v * 1e3, 1)
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp: df.to_csv(tmp, index=False)
    now = df[df.draft_cost_scale == 1.0].sort_values("speedup", ascending=False)
    print(f"\nmeasured draft cost: the best policies of {len(now)} (modelled speed-up over generate)")
    print(now.head(8)[["stop_below", "gamma", "speedup", "acceptance", "tokens_per_step", "drafted_per_step"]].to_string(index=False))
    bench = df[(df.stop_below == 0.6) & (df.gamma == "heuristic")]
    print("\nthe bench's policy (stop_below 0.6, heuristic γ) as the draft step gets cheaper:")
    print(bench[["draft_cost_scale", "speedup", "acceptance"]].to_string(index=False))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
