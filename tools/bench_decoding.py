#!/usr/bin/env python
"""Lossless decoding speed-ups on CPU: speculative decoding (three drafters, fixed and adaptive γ, batch 1 and 4)
against greedy `generate`, transformers' own assisted decoders, and entropy-driven model switching.

Same prompts for every method: general chat prompts (the held-out lens prompts) and puzzle prompts
(`adaptbench.puzzles`, direct style). For each (model, prompt set, batch):
  generate          greedy `model.generate` (batch 1: one prompt at a time; batch 4: left-padded batches): the
                    speed reference (speedup = tokens/s ÷ this row's tokens/s)
  spec:<drafter>    `speculative_generate` with drafter lookup | layer<k> (tuned lens, k chosen by the measured
                    acceptance table) | model:<draft> (Qwen pair), γ fixed (--gammas) or adaptive (heuristic,
                    expected); `identical` = token-for-token equal to per-prompt greedy generate
  hf:prompt_lookup  generate(prompt_lookup_num_tokens=10)               (batch 1; transformers supports no more)
  hf:early_exit     generate(assistant_early_exit=k), SmolLM2           (batch 1)
  hf:assistant      generate(assistant_model=Qwen 0.5B), Qwen 1.5B      (batch 1; -half: the float16 0.5B)
  *-half            with --qwen-draft-half, the 0.5B packed with `half_gemv` (float16 one-row products): its drafters,
                    transformers' assistant, and the 0.5B's own `generate` (model qwen2.5-coder-0.5b, kernels
                    onednn-half; speedup and identical against its float32 row)
  ead@τ             entropy switching Qwen 0.5B → 1.5B at threshold τ nats: frac_large, agreement with 1.5B greedy
Each model runs with the default CPU matrix multiply (kernels = mkl) and with its linear layers prepacked for oneDNN
(kernels = onednn, `decoding.pack_linear_weights`), where verifying γ + 1 tokens costs about what one token does.
`speedup` is over `generate` with the same kernels; `speedup_vs_mkl` over `generate` with the default kernels.
Timings on 2 shared cores are noisy: with --repeats 1, differences of 15-20 % between rows are within run-to-run noise
(compare `drafted`/`acceptance`, which do not depend on timing); keep the machine otherwise idle.
Rows go to data/bench/decoding_cpu.csv (or --out); the drafting-layer table to *_layers.csv; a summary is printed.

    python tools/bench_decoding.py --quick                      # a reduced run (minutes, to the temp folder): validates the script
    python tools/bench_decoding.py --repeats 1 --prompts 6 --qwen --ead-thresholds 1.0 2.0
                                                                # the shipped decoding_cpu.csv (47 min on 2 cores; it
                                                                # predates --qwen-stop-below, whose rows are in ↓)
    python tools/bench_decoding.py --no-smollm2 --qwen --qwen-drafters --qwen-stop-below 0.4 --qwen-gammas 8 heuristic \
        --batches 1 --no-hf --ead-thresholds --repeats 1 --out data/bench/decoding_cpu_qwen_lookahead.csv
                                                                # the 0.5B drafting with dynamic lookahead (8 min)
    python tools/bench_decoding.py --no-smollm2 --qwen --qwen-draft-half --qwen-drafters --qwen-stop-below 0.6 adaptive \
        --qwen-gammas heuristic --qwen-hf hf:assistant --batches 1 --ead-thresholds --repeats 2 \
        --out data/bench/decoding_cpu_qwen_half.csv             # + the 0.5B with float16 one-row products (30 min)
    python tools/bench_decoding.py --no-smollm2 --qwen --qwen-draft-half --qwen-drafters --qwen-stop-below 0.6 \
        --qwen-gammas heuristic --qwen-hf hf:assistant --qwen-prompts 8 --batches 1 --ead-thresholds --repeats 2 \
        --out data/bench/decoding_cpu_qwen_lean.csv             # 8 prompts, the lean draft step (40 min; also *_run2.csv)
    python tools/bench_decoding.py --qwen                       # + the Qwen pair (`adaptbench models get ...` first)
    python tools/bench_decoding.py --reasoner --no-smollm2 --kernels mkl --out data/bench/decoding_cpu_reasoner.csv
                                                                # the trained reasoner's think replies (lookup drafter)
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from adaptbench.model_store import registered_path  # noqa: E402
from adaptbench.decoding import pack_linear_weights  # noqa: E402
from adaptbench.models import load_model, stop_ids  # noqa: E402
from adaptbench.puzzles import get_puzzle  # noqa: E402
from adaptbench.lens import LENS_PROMPTS  # noqa: E402
from adaptbench.speculative import (ExpectedGamma, HeuristicGamma, LayerDrafter, LookupDrafter,  # noqa: E402
                                    ModelDrafter, choose_draft_layer, encode_prompts, entropy_switch_generate,
                                    layer_acceptance, speculative_generate, token_agreement, tuned_lens_for)


def prompt_sets(n:int) -> dict[str, list]:
    "n chat prompts (held-out lens prompts) and n puzzle prompts (chat messages, direct style, small N)."
    chat = LENS_PROMPTS[-12:][:n]
    specs = [("hanoi", 3), ("checker_jumping", 2), ("blocks_world", 3), ("river_crossing", 2),
             ("hanoi", 4), ("checker_jumping", 3), ("blocks_world", 4), ("hanoi", 2)]
    puzzles = [get_puzzle(p).prompt(get_puzzle(p).instance(k, seed=i)) for i, (p, k) in enumerate(specs[:n])]
    return dict(chat=chat, puzzle=puzzles)


def reasoner_prompts(n:int) -> list:
    "n think-style prompts for the trained reasoner: puzzles it solves (n ≤ 2), one it does not (n = 3), additions."
    from adaptbench.tasks import get_task
    specs = [("hanoi", 2), ("checker_jumping", 2), ("addition", 3), ("hanoi", 3), ("addition", 4), ("checker_jumping", 3),
             ("hanoi", 1), ("addition", 2)]
    return [get_task(t).prompt(get_task(t).instance(k, seed=i), "think") for i, (t, k) in enumerate(specs[:n])]


def stop_below_arg(v:str):
    "--qwen-stop-below: a probability in [0, 1) or 'adaptive' (checked before any model loads)."
    if v.lower() == "adaptive": return "adaptive"
    try: x = float(v)
    except ValueError: x = float("nan")
    if not 0 <= x < 1: raise argparse.ArgumentTypeError(f"{v!r}: give a probability in [0, 1) or 'adaptive'")
    return x


def chunks(xs, b): return [xs[i:i + b] for i in range(0, len(xs), b)]


@torch.no_grad()
def generate_rows(lm, ids:list[list[int]], batch:int, max_new:int, **kw) -> tuple[list[list[int]], float]:
    "Greedy generate (optionally with transformers' assisted-decoding kwargs) in batches: (new tokens, seconds)."
    eos, pad, out, secs = stop_ids(lm), lm.tokenizer.pad_token_id, [], 0.0
    for grp in chunks(ids, batch):
        m = max(map(len, grp))
        x = torch.tensor([[pad] * (m - len(p)) + p for p in grp])
        att = torch.tensor([[0] * (m - len(p)) + [1] * len(p) for p in grp])
        t = time.perf_counter()
        y = lm.model.generate(input_ids=x, attention_mask=att, max_new_tokens=max_new, do_sample=False,
                              eos_token_id=sorted(eos), pad_token_id=pad, **kw)[:, m:].tolist()
        secs += time.perf_counter() - t
        for row in y:
            cut = next((j + 1 for j, tk in enumerate(row) if tk in eos), len(row))
            out.append(row[:cut])
    return out, secs


def best_of(fn, repeats:int):
    "Run `fn()` → (tokens, seconds, ...) `repeats` times and keep the fastest run (timings on a shared CPU are noisy)."
    runs = [fn() for _ in range(max(1, repeats))]
    return min(runs, key=lambda r: r[1])


def row(model, pset, batch, method, gamma, tokens, secs, ref, ref_tps, **extra):
    n = sum(map(len, tokens))
    tps = n / secs if secs > 0 else float("nan")
    return dict(model=model, prompts=pset, batch=batch, method=method, gamma=gamma, new_tokens=n, seconds=round(secs, 3),
                tokens_per_s=round(tps, 2), speedup=round(tps / ref_tps, 3) if ref_tps else 1.0,
                identical=all(a == b for a, b in zip(tokens, ref)) and len(tokens) == len(ref), **extra)


def run_spec(lm, ids, batch, drafter, gamma, max_new):
    toks, secs, drafted, accepted = [], 0.0, 0, 0
    for grp in chunks(ids, batch):
        r = speculative_generate(lm, grp, drafter, max_new_tokens=max_new, gamma=gamma)
        toks += r["tokens"]; secs += r["seconds"]; drafted += r["drafted"]; accepted += r["accepted"]
    return toks, secs, dict(acceptance=round(accepted / drafted, 3) if drafted else float("nan"), drafted=drafted)


def gamma_rules(a, names=None):
    "(name, rule) for the fixed γs and adaptive rules of the run, or for `names` (e.g. ['3', 'heuristic'])."
    names = names or [str(g) for g in a.gammas] + list(a.adaptive)
    make = dict(heuristic=lambda: HeuristicGamma(start=a.gammas[0], max_gamma=a.max_gamma),
                expected=lambda: ExpectedGamma(max_gamma=a.max_gamma))
    return [(n, make[n]() if n in make else int(n)) for n in names]


def bench_model(name, lm, drafters, sets, a, hf_kw, log, kernels="mkl", refs=None):
    "Rows for one model and kernel choice; `drafters` are (name, drafter, γ rule names or None for the run's)."
    rows, refs = [], {} if refs is None else refs     # refs: (set, batch) → timed generate, filled here, reused if given
    def krow(*args, **kw): return dict(kernels=kernels, **row(*args, **kw))
    for pset, prompts in sets.items():
        ids = encode_prompts(lm, prompts)
        for batch in a.batches:
            if (pset, batch) not in refs:        # per-sequence greedy (batch 1) is the truth every row is checked against
                refs[pset, batch] = best_of(lambda: generate_rows(lm, ids, batch, a.max_new_tokens), a.repeats)
                rows.append(krow(name, pset, batch, "generate", "", *refs[pset, batch], refs[pset, 1][0],
                                 sum(map(len, refs[pset, batch][0])) / refs[pset, batch][1]))
                log(rows[-1])
            ref, (gen, gsecs) = refs[pset, 1][0], refs[pset, batch]
            ref_tps = sum(map(len, gen)) / gsecs
            for dname, drafter, rules in drafters:
                for gname, g in gamma_rules(a, rules):
                    toks, secs, ex = best_of(lambda: run_spec(lm, ids, batch, drafter, g, a.max_new_tokens), a.repeats)
                    rows.append(krow(name, pset, batch, f"spec:{dname}", gname, toks, secs, ref, ref_tps, **ex)); log(rows[-1])
            if batch == 1:
                for hname, kw in hf_kw.items():
                    try:
                        toks, secs = best_of(lambda: generate_rows(lm, ids, 1, a.max_new_tokens, **kw), a.repeats)
                        rows.append(krow(name, pset, 1, hname, "", toks, secs, ref, ref_tps))
                    except Exception as e:                                        # an API change must not lose the run
                        rows.append(dict(kernels=kernels, model=name, prompts=pset, batch=1, method=hname,
                                         error=f"{type(e).__name__}: {e}"[:200]))
                    log(rows[-1])
    return rows


@torch.no_grad()
def linear_check(shapes=((576, 1536), (1536, 576), (576, 49152)), rows=(1, 2, 4, 8), layers:int=30) -> pd.DataFrame:
    "µs per x @ Wᵀ for SmolLM2's projection shapes, default kernels vs oneDNN-prepacked (weights ≫ cache: `layers` copies)."
    from adaptbench.decoding import PackedLinear
    out = []
    for k, n in shapes:
        lins = [torch.nn.Linear(k, n, bias=False) for _ in range(layers if n < 10_000 else 1)]
        packed = [PackedLinear(l) for l in lins]
        for m in rows:
            x = torch.randn(m, k)
            for name, mods in (("mkl", lins), ("onednn", packed)):
                for _ in range(2): [f(x) for f in mods]
                ts = []
                for _ in range(15):
                    t = time.perf_counter(); [f(x) for f in mods]; ts.append(time.perf_counter() - t)
                out.append(dict(in_features=k, out_features=n, rows=m, kernels=name, us=round(np.median(ts) / len(mods) * 1e6, 1)))
    return pd.DataFrame(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="reduced (overrides --prompts, --max-new-tokens, --gammas, --adaptive, --repeats and the Qwen "
                         "sizes: 4 prompts, 32 tokens, γ 4 + heuristic, 1 run); writes to the temp folder unless --out")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per set (chat, puzzle)")
    ap.add_argument("--max-new-tokens", type=int, default=96)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--gammas", type=int, nargs="+", default=[3, 6], help="fixed draft lengths")
    ap.add_argument("--adaptive", nargs="*", default=["heuristic", "expected"], help="adaptive γ rules")
    ap.add_argument("--max-gamma", type=int, default=12)
    ap.add_argument("--drafters", nargs="+", default=["lookup", "layer"], help="lookup | layer (SmolLM2)")
    ap.add_argument("--sets", nargs="+", default=["chat", "puzzle"])
    ap.add_argument("--no-hf", action="store_true", help="skip transformers' assisted decoders")
    ap.add_argument("--qwen", action="store_true", help="also the Qwen2.5-Coder 0.5B → 1.5B pair (if fetched)")
    ap.add_argument("--ead-thresholds", type=float, nargs="*", default=[0.5, 1.0, 2.0], help="nats (Qwen pair)")
    ap.add_argument("--reasoner", action="store_true", help="also the trained reasoner on its think prompts (lookup drafter)")
    ap.add_argument("--reasoner-tokens", type=int, default=128, help="new tokens per reasoner prompt (its think replies are long)")
    ap.add_argument("--no-smollm2", action="store_true", help="skip the base SmolLM2 rows (e.g. with --reasoner, --out elsewhere)")
    ap.add_argument("--layer-gammas", nargs="+", default=["3", "heuristic"], help="γ rules of the early-layer drafter")
    ap.add_argument("--kernels", nargs="+", default=["mkl", "onednn"], choices=["mkl", "onednn"],
                    help="default matrix multiply, and/or linear layers prepacked for oneDNN (decoding.pack_linear_weights)")
    ap.add_argument("--onednn-drafters", nargs="*", default=["lookup"], help="drafters also run with prepacked weights")
    ap.add_argument("--onednn-hf", nargs="*", default=["hf:prompt_lookup"], help="transformers modes also run prepacked")
    ap.add_argument("--qwen-kernels", nargs="+", default=["onednn"], choices=["mkl", "onednn"],
                    help="the Qwen pair's kernels (the default MKL path ran the 1.5B at about two thirds of the speed)")
    ap.add_argument("--qwen-sets", nargs="+", default=["chat"])
    ap.add_argument("--qwen-prompts", type=int, default=4)
    ap.add_argument("--qwen-tokens", type=int, default=64)
    ap.add_argument("--qwen-gammas", nargs="+", default=["3", "heuristic"], help="γ rules of the Qwen draft model")
    ap.add_argument("--qwen-drafters", nargs="*", default=["model", "lookup"], help="model (0.5B drafts) | lookup")
    ap.add_argument("--qwen-stop-below", type=stop_below_arg, nargs="*", default=[0.4],
                    help="also the 0.5B with dynamic lookahead: a draft ends after a token below this probability, "
                         "in [0, 1) ('adaptive': re-fitted after every verify, as transformers does; default 0.4)")
    ap.add_argument("--qwen-hf", nargs="*", default=["hf:prompt_lookup", "hf:assistant"],
                    choices=["hf:prompt_lookup", "hf:assistant"],
                    help="transformers' modes run on the Qwen pair (with --qwen-draft-half, hf:assistant also runs "
                         "with the float16 0.5B as hf:assistant-half)")
    ap.add_argument("--qwen-draft-half", action="store_true",
                    help="also the 0.5B drafters with float16 one-row products (pack_linear_weights(half_gemv=True)), "
                         "after the float32 ones; entropy switching then uses the float16 0.5B too")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per method; the fastest is kept")
    ap.add_argument("--out", default=None, help="CSV path (default data/bench/decoding_cpu.csv; with --quick, in the temp folder)")
    a = ap.parse_args(argv)
    if a.quick:
        a.prompts, a.max_new_tokens, a.gammas, a.adaptive, a.repeats = 4, 32, [4], ["heuristic"], 1
        a.layer_gammas, a.qwen_prompts, a.qwen_tokens, a.qwen_gammas = ["heuristic"], 2, 16, ["heuristic"]
    if a.qwen_draft_half and "onednn" not in a.qwen_kernels:
        ap.error("--qwen-draft-half needs onednn in --qwen-kernels (float16 one-row products are a packed-layer mode)")
    if a.out is None:                            # a --quick check must not overwrite the shipped figures
        import tempfile
        a.out = str(Path(tempfile.gettempdir()) / "decoding_cpu_quick.csv") if a.quick else str(ROOT / "data" / "bench" / "decoding_cpu.csv")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = Path(a.out)
    log = lambda r: print("  " + "  ".join(f"{k}={v}" for k, v in r.items() if k not in ("model",)), flush=True)
    sets = {k: v for k, v in prompt_sets(a.prompts).items() if k in a.sets}
    rows = []
    if not a.no_smollm2:                         # the kernels' cost per row count, at SmolLM2's shapes
        lc = linear_check()
        lc.to_csv(out.with_name(out.stem + "_linear.csv"), index=False)
        print("µs per linear layer, rows = tokens in one forward pass:")
        print(lc.pivot_table(index=["in_features", "out_features", "rows"], columns="kernels", values="us").to_string())

    def save():                                  # after every model: a run that dies keeps what it measured
        if rows: write(rows, a, out)

    if a.reasoner:
        rl = load_model("smollm2-135m-reasoner", device="cpu", dtype="float32")
        generate_rows(rl, encode_prompts(rl, ["Hello"]), 1, 4)                       # warm-up
        ra = argparse.Namespace(**{**vars(a), "max_new_tokens": a.reasoner_tokens})
        for k in a.kernels:
            if k == "onednn": pack_linear_weights(rl)
            rows += bench_model("smollm2-135m-reasoner", rl, [("lookup", LookupDrafter(), None)],
                                {"reasoner-think": reasoner_prompts(a.prompts)}, ra,
                                {} if a.no_hf else {"hf:prompt_lookup": dict(prompt_lookup_num_tokens=10)}, log, k)
        del rl; save()
    if not a.no_smollm2:
        lm = load_model("smollm2-135m-instruct", device="cpu", dtype="float32")
        generate_rows(lm, encode_prompts(lm, ["Hello"]), 1, 4)                       # warm-up
        drafters, layer = [], None
        if "layer" in a.drafters:
            t = time.time(); lens = tuned_lens_for(lm)
            table = layer_acceptance(lm, lens=lens)
            table.to_csv(out.with_name(out.stem + "_layers.csv"), index=False)
            layer = choose_draft_layer(table)
            print(f"tuned lens + acceptance table in {time.time() - t:.0f} s; drafting layer {layer}:")
            print(table.sort_values("expected_speedup", ascending=False).head(6).to_string(index=False))
            drafters.append((f"layer{layer}", LayerDrafter(lm, layer, lens), a.layer_gammas))
        if "lookup" in a.drafters: drafters.insert(0, ("lookup", LookupDrafter(), None))
        hf = {} if a.no_hf else {"hf:prompt_lookup": dict(prompt_lookup_num_tokens=10),
                                 "hf:early_exit": dict(assistant_early_exit=layer or 20)}
        for k in a.kernels:
            if k == "onednn":                    # prepacked: the drafters and modes whose verify cost it changes
                pack_linear_weights(lm)
                drafters = [d for d in drafters if d[0] in a.onednn_drafters or d[0].rstrip("0123456789") in a.onednn_drafters]
                hf = {h: kw for h, kw in hf.items() if h in a.onednn_hf}
            rows += bench_model("smollm2-135m", lm, drafters, sets, a, hf, log, k); save()
        del lm

    if a.qwen:
        if registered_path("qwen2.5-coder-0.5b") is None or registered_path("qwen2.5-coder-1.5b") is None:
            print("Qwen pair not fetched: run `adaptbench models get qwen2.5-coder-0.5b` and `... qwen2.5-coder-1.5b`")
        else:
            small, large = load_model("qwen2.5-coder-0.5b", device="cpu"), load_model("qwen2.5-coder-1.5b", device="cpu")
            qsets = {k: v for k, v in prompt_sets(a.qwen_prompts).items() if k in a.qwen_sets}
            qa = argparse.Namespace(**{**vars(a), "max_new_tokens": a.qwen_tokens})
            def model_drafters(tag=""):
                return [(f"model:qwen-0.5b{tag}", ModelDrafter(small, large), a.qwen_gammas)] * ("model" in a.qwen_drafters) + \
                       [(f"model:qwen-0.5b{tag}@{p}", ModelDrafter(small, large, stop_below=p), a.qwen_gammas) for p in a.qwen_stop_below]
            qd = model_drafters() + ([("lookup", LookupDrafter(), ["heuristic"])] if "lookup" in a.qwen_drafters else [])
            hfq = {} if a.no_hf else {"hf:prompt_lookup": dict(prompt_lookup_num_tokens=10),
                                      "hf:assistant": dict(assistant_model=small.model)}
            hfq = {h: kw for h, kw in hfq.items() if h in a.qwen_hf}
            if "mkl" not in a.qwen_kernels:      # still time plain generate once, for speedup_vs_mkl
                for pset, prompts in qsets.items():
                    ids = encode_prompts(large, prompts)
                    ref, secs = generate_rows(large, ids, 1, qa.max_new_tokens)
                    rows.append(dict(kernels="mkl", **row("qwen2.5-coder-1.5b", pset, 1, "generate", "", ref, secs, ref,
                                                          sum(map(len, ref)) / secs)))
                    log(rows[-1])
            for k in a.qwen_kernels:
                if k == "onednn": pack_linear_weights(small); pack_linear_weights(large)
                refs = {}
                rows += bench_model("qwen2.5-coder-1.5b", large, qd, qsets, qa, hfq, log, k, refs); save()
                if a.qwen_draft_half and k == "onednn":    # the same drafters, the 0.5B's one-row products in float16
                    def draft_generate(kern, ref=None):    # the 0.5B on its own: what float16 one-row products save
                        out = {}                                # speedup and identical: against the float32 row
                        for pset, prompts in qsets.items():
                            ids = encode_prompts(small, prompts)
                            toks, secs = best_of(lambda: generate_rows(small, ids, 1, qa.max_new_tokens), a.repeats)
                            rt, rtps = (ref or {}).get(pset, (toks, sum(map(len, toks)) / secs))
                            rows.append(dict(kernels=kern, **row("qwen2.5-coder-0.5b", pset, 1, "generate", "", toks, secs,
                                                                  rt, rtps)))
                            log(rows[-1]); out[pset] = (toks, sum(map(len, toks)) / secs)
                        return out
                    small_ref = draft_generate("onednn")
                    pack_linear_weights(small, half_gemv=True)   # switches the packed layers' mode
                    draft_generate("onednn-half", small_ref)
                    qh = model_drafters("-half")
                    rows += bench_model("qwen2.5-coder-1.5b", large, qh, qsets, qa,
                                        {f"{h}-half": kw for h, kw in hfq.items() if h == "hf:assistant"}, log, k, refs)
                    save()
                for pset, prompts in qsets.items():
                    ids = encode_prompts(large, prompts)
                    ref, gsecs = refs[pset, 1]        # the generate timed above (not timed again)
                    ref_tps = sum(map(len, ref)) / gsecs
                    for tau in a.ead_thresholds:
                        r = entropy_switch_generate(small, large, ids, tau, max_new_tokens=qa.max_new_tokens)
                        ag = [token_agreement(t, g) for t, g in zip(r["tokens"], ref)]
                        kern = f"{k}-half" if a.qwen_draft_half and k == "onednn" else k   # the 0.5B is float16 by now
                        rows.append(dict(kernels=kern, **row("qwen 0.5b→1.5b", pset, 1, f"ead@{tau}", "", r["tokens"], r["seconds"],
                                                          ref, ref_tps, frac_large=round(r["frac_large"], 3),
                                                          match_rate=round(float(np.mean([x["match_rate"] for x in ag])), 3),
                                                          prefix=round(float(np.mean([x["prefix"] for x in ag])), 1))))
                        log(rows[-1])
                    save()
    df = write(rows, a, out)
    cols = [c for c in ["kernels", "model", "prompts", "batch", "method", "gamma", "tokens_per_s", "speedup", "speedup_vs_mkl",
                        "acceptance", "identical", "frac_large", "match_rate", "error"] if c in df]
    with pd.option_context("display.width", 220, "display.max_rows", 300):
        print(df[cols].to_string(index=False))
    print(f"wrote {out}")


def write(rows, a, out) -> pd.DataFrame:
    "The rows as a table, written atomically to `out`."
    df = pd.DataFrame(rows)
    if "speedup" in df:                          # over generate with the default kernels, same model, prompts, batch
        tps = df.new_tokens / df.seconds                                      # unrounded tokens/s
        ref = df[(df.method == "generate") & (df.kernels == "mkl")]
        gen = pd.Series(tps[ref.index].values, index=pd.MultiIndex.from_frame(ref[["model", "prompts", "batch"]]))
        key = list(zip(df.model.str.replace("qwen 0.5b→1.5b", "qwen2.5-coder-1.5b"), df.prompts, df.batch))
        df["speedup_vs_mkl"] = [round(t / gen[k], 3) if k in gen.index else float("nan") for t, k in zip(tps, key)]
    df.insert(0, "setting", "quick" if a.quick else "full")
    df.insert(1, "threads", a.threads)
    df.insert(2, "repeats", a.repeats)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    df.to_csv(tmp, index=False); tmp.replace(out)
    return df


if __name__ == "__main__":
    main()
