#!/usr/bin/env python
"""Live early-exit decoding on SmolLM2 at calibrated thresholds vs the full model (a benchmark, not a test).

For each target ε, Learn-then-Test (δ = 0.1, token level) picks the cheapest certified exit configuration on the
shipped exit records (data/lens/exit_records_<model>.parquet). Then each held-out lens prompt is decoded greedily:
  full       the same layer-by-layer decoder with threshold ∞ (every token through every layer)
  generate   transformers' `generate` (the reference for speed and for the full model's tokens)
  exit@ε     early exit with CALM's state propagation into the skipped layers (the real thing, timed)
  audit@ε    every layer run, exit tokens emitted: how often the exit token differs from the last layer's
Per (mode, prompt): new tokens, seconds, tokens/s, mean exit layer, counted relative compute, agreement with the
full model's greedy tokens (position-wise, and the length of the common prefix). Rows go to
data/bench/early_exit_cpu.csv (or --out); a summary per mode is printed.

    python tools/bench_early_exit.py --eps 0.1 0.3 --max-new-tokens 64 --threads 1
"""
from __future__ import annotations

import argparse, sys, time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from adaptbench.calibrate import calibrate  # noqa: E402
from adaptbench.early_exit import early_exit_generate  # noqa: E402
from adaptbench.exits import EarlyExit, classifier_states, exit_records_path, load_exit_records, replay_exits  # noqa: E402
from adaptbench.lens import (LENS_PROMPTS, ExitClassifier, load_exit_classifier, load_tuned_lens,  # noqa: E402
                             save_exit_classifier)
from adaptbench.models import chat_text, load_model  # noqa: E402


def agreement(tokens, ref):
    "(fraction of positions equal to the reference, common-prefix length)."
    n = min(len(tokens), len(ref))
    eq = [a == b for a, b in zip(tokens[:n], ref[:n])]
    return (float(np.mean(eq)) if n else 1.0), next((i for i, e in enumerate(eq) if not e), n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3])
    ap.add_argument("--delta", type=float, default=0.1)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=12, help="how many held-out lens prompts (the last ones)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "data" / "bench" / "early_exit_cpu.csv"))
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    lm = load_model(a.model, device="cpu", dtype="float32")
    recs = load_exit_records(exit_records_path(lm))
    lens = load_tuned_lens(lm, missing_ok=True)
    pols = [EarlyExit("max_prob", lens=ln, every=k) for ln in recs for k in (1, 4)] + \
           [EarlyExit(s, lens=ln) for ln in recs for s in ("saturation", "classifier") if s in recs[ln].signals]
    if lens is None: pols = [p for p in pols if p.lens == "logit lens"]
    clfs = {}                                   # the classifiers saved when the records were made (named in them)
    for name, ln in [("logit lens", None)] + ([("tuned lens", lens)] if lens is not None else []):
        clfs[name] = load_exit_classifier(lm, ln, missing_ok=True)
        if clfs[name] is None:
            t0 = time.time()
            clfs[name] = ExitClassifier(ln).fit(lm, classifier_states(lm)); save_exit_classifier(clfs[name], lm)
            print(f"{name}: no saved exit classifier; fitted and saved one in {time.time() - t0:.0f} s")
        if recs.get(name) is not None and recs[name].classifier and recs[name].classifier != clfs[name].name:
            print(f"warning: the {name} records were made with {recs[name].classifier}, the live decoder uses {clfs[name].name}")
    modes = {}
    for eps in a.eps:
        res = calibrate(replay_exits(pols, {k: v for k, v in recs.items() if any(p.lens == k for p in pols)}), eps, a.delta,
                        p_value="binomial")
        if not res.ok: print(f"ε = {eps}: {res.guarantee}"); continue
        print(f"ε = {eps}: chosen {res.policy.name} at threshold {res.policy.threshold:.2f} "
              f"(calibration compute {res.cost:.3f})")
        modes[eps] = res
    rows = []
    full_pol = EarlyExit("saturation", thresholds=[np.inf])
    for i, prompt in enumerate(LENS_PROMPTS[-a.prompts:]):
        f = early_exit_generate(lm, prompt, full_pol, a.max_new_tokens)
        ref = f["tokens"]
        enc = lm.tokenizer(chat_text(lm, prompt), return_tensors="pt", add_special_tokens=False)
        t = time.perf_counter()
        g = lm.model.generate(**enc, max_new_tokens=a.max_new_tokens, do_sample=False)[0, enc["input_ids"].shape[1]:].tolist()
        gs = time.perf_counter() - t
        rows.append(dict(mode="full", prompt=i, tokens=len(ref), seconds=f["seconds"], mean_exit=lm.n_layers,
                         compute=1.0, agree=1.0, prefix=len(ref), inconsistency=0.0))
        ag, pre = agreement(g, ref)
        rows.append(dict(mode="generate", prompt=i, tokens=len(g), seconds=gs, mean_exit=lm.n_layers, compute=1.0,
                         agree=ag, prefix=pre, inconsistency=np.nan))
        for eps, res in modes.items():
            pol, thr = res.policy, res.policy.threshold
            kw = dict(lens=lens if pol.lens == "tuned lens" else None, classifier=clfs[pol.lens])
            r = early_exit_generate(lm, prompt, res, a.max_new_tokens, **kw)
            ag, pre = agreement(r["tokens"], ref)
            au = early_exit_generate(lm, prompt, res, a.max_new_tokens, audit=True, **kw)
            inc = float(np.mean(np.asarray(au["tokens"][1:]) != au["full"])) if len(au["full"]) else 0.0
            rows.append(dict(mode=f"exit@{eps:g}", policy=pol.name, threshold=thr, prompt=i, tokens=len(r["tokens"]),
                             seconds=r["seconds"], mean_exit=float(r["exits"].mean()) if len(r["exits"]) else np.nan,
                             compute=r["compute"], agree=ag, prefix=pre, inconsistency=np.nan))
            rows.append(dict(mode=f"audit@{eps:g}", policy=pol.name, threshold=thr, prompt=i, tokens=len(au["tokens"]),
                             seconds=au["seconds"], mean_exit=float(au["exits"].mean()) if len(au["exits"]) else np.nan,
                             compute=au["compute"], agree=np.nan, prefix=np.nan, inconsistency=inc))
        print(f"  prompt {i + 1}/{a.prompts} done", flush=True)
    df = pd.DataFrame(rows).assign(model=str(lm.spec), threads=a.threads, max_new_tokens=a.max_new_tokens)
    df["tok_per_s"] = df.tokens / df.seconds
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp"); df.to_csv(tmp, index=False); tmp.replace(out)
    summ = df.groupby("mode", sort=False).agg(tokens=("tokens", "sum"), seconds=("seconds", "sum"),
                                              mean_exit=("mean_exit", "mean"), compute=("compute", "mean"),
                                              agree=("agree", "mean"), prefix=("prefix", "mean"),
                                              inconsistency=("inconsistency", "mean"))
    summ["tok_per_s"] = summ.tokens / summ.seconds
    print(summ.round(3).to_string())
    print(f"wrote {len(df)} rows to {out}")


if __name__ == "__main__":
    main()
