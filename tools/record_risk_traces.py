#!/usr/bin/env python
"""Record the risk study's held-out probed traces of the reasoner: additions of 2–6 digits, none of them a training
pair of the organism, in the think style, greedy up to a budget, probed every `--interval` tokens.

Two sets, disjoint from each other and from the training instances (`reasoner.training_instances`):
  the calibration pool   data/traces/smollm2-reasoner-held-out        (--pool per digit count, seed 11)
  fresh draws            data/traces/smollm2-reasoner-held-out-fresh  (--fresh per digit count, seed 12)
One-digit additions are left out on purpose: all 100 one-digit pairs were training examples.

Resumable: each set records into a run (data/runs/record_risk_traces/...) chunk by chunk; a rerun reads the finished
chunks. Writes probes.parquet and instances.parquet of each set (atomically) and prints the time it took.

    python tools/record_risk_traces.py                  # 120 + 40 instances per digit count
    python tools/record_risk_traces.py --pool 4 --fresh 2 --out /tmp/traces   # a quick check
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from adaptbench.core import atomic_path  # noqa: E402
from adaptbench.models import ADAPTER_ALIASES, load_model, shipped_data  # noqa: E402
from adaptbench.probes import probe_tasks, record_probed_traces  # noqa: E402
from adaptbench.reasoner import training_instances  # noqa: E402
from adaptbench.runs import Run  # noqa: E402
from adaptbench.tasks import instance_key  # noqa: E402


README = """# {name} — probed traces of the reasoner on held-out additions

Written by `tools/record_risk_traces.py` ({cmd}) on {date}. {role}

- **Model:** `{model}` (weights fingerprint `{weights}`; adapter sha256 `{adapter}`).
- **Instances:** {n} additions of two numbers of {lo}–{hi} digits ({per} per digit count), drawn distinct by
  `probes.probe_tasks(["addition"], ({lo}, {hi}), {n}, seed={seed}, exclude=...)`, excluding every training instance of the
  organism (`reasoner.training_instances()`: all one-digit pairs and ~22 % of two-digit ones were trained on, so
  one-digit additions are left out){extra}. Each row's `key` column is its `tasks.instance_key`.
- **Recording:** think-style prompt, greedy, up to {budget} reasoning tokens, a probe every {interval} tokens (the
  task's answer cue, the answer decoded greedily from a fork of the trace's cache), on the generation engine
  ({batch} rows at once), CPU float32, {threads} threads: {secs:.0f} s for this invocation (chunks finished by an
  earlier, interrupted invocation are reused, not timed).
- **What they hold:** final accuracy at the full budget by digit count: {acc}; unsolvable at the full budget overall:
  {unsolved:.2f}. Mean reasoning tokens at the full budget: {tokens}.
"""


def record(lm, tasks, out: Path, run_dir: Path, budget: int, interval: int, batch: int) -> tuple[float, object]:
    run = Run.create("record_risk_traces", dict(out=out.name, n=len(tasks), budget=budget, interval=interval,
                                                model=lm.spec, weights=lm.fingerprint), run_dir)
    t0 = time.time()
    probes, instances = record_probed_traces(lm, tasks, budget=budget, probe_interval=interval, batch_size=batch,
                                             run=run, chunk_batches=2)
    out.mkdir(parents=True, exist_ok=True)
    for name, df in (("probes", probes), ("instances", instances)):
        with atomic_path(out / f"{name}.parquet") as tmp: df.to_parquet(tmp, index=False)
    return time.time() - t0, instances


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-reasoner")
    ap.add_argument("--digits", type=int, nargs=2, default=(2, 6), metavar=("LO", "HI"))
    ap.add_argument("--pool", type=int, default=120, help="calibration-pool instances per digit count")
    ap.add_argument("--fresh", type=int, default=40, help="fresh-draw instances per digit count")
    ap.add_argument("--budget", type=int, default=192, help="reasoning budget (tokens)")
    ap.add_argument("--interval", type=int, default=16, help="reasoning tokens between probes")
    ap.add_argument("--batch", type=int, default=16, help="rows decoded at once")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "data" / "traces"), help="folder of the two trace folders")
    a = ap.parse_args(argv)
    if a.digits[0] < 2: ap.error("--digits must start at 2: every one-digit pair was a training example")
    torch.set_num_threads(a.threads)
    lm = load_model(a.model, device="cpu", dtype="float32")
    train = {instance_key(i) for i in training_instances()}
    k = a.digits[1] - a.digits[0] + 1
    pool = probe_tasks(["addition"], tuple(a.digits), a.pool * k, seed=11, exclude=train)
    fresh = probe_tasks(["addition"], tuple(a.digits), a.fresh * k, seed=12,
                        exclude=train | {instance_key(t.inst) for t in pool})
    out, runs = Path(a.out), ROOT / "data" / "runs"
    adapter = json.loads((shipped_data(ADAPTER_ALIASES["smollm2-135m-reasoner"][1]) / "adapter.json").read_text())["sha256"]
    sets = [("smollm2-reasoner-held-out", pool, 11, a.pool, "The calibration pool of the `risk_controlled_budgets` study.", ""),
            ("smollm2-reasoner-held-out-fresh", fresh, 12, a.fresh, "Fresh draws of the same generator, for validating the "
             "guarantee on instances no calibration saw.", ", and every instance of `smollm2-reasoner-held-out`")]
    for name, tasks, seed, per, role, extra in sets:
        secs, inst = record(lm, tasks, out / name, runs, a.budget, a.interval, a.batch)
        by = inst.groupby("n")
        (out / name / "README.md").write_text(README.format(
            name=name, cmd="`python tools/record_risk_traces.py " + " ".join(sys.argv[1:] if argv is None else argv) + "`",
            date=datetime.date.today().isoformat(), role=role, model=lm.spec, weights=lm.fingerprint, adapter=adapter,
            n=len(tasks), lo=a.digits[0], hi=a.digits[1], per=per, seed=seed, extra=extra, budget=a.budget,
            interval=a.interval, batch=a.batch, threads=a.threads, secs=secs,
            acc=", ".join(f"{n} digits {v:.2f}" for n, v in by.final_correct.mean().items()),
            unsolved=1 - inst.final_correct.mean(),
            tokens=", ".join(f"{n} digits {v:.0f}" for n, v in by.final_tokens.mean().items())))
        print(f"{name}: {len(tasks)} instances in {secs:.0f} s -> {out / name}", flush=True)


if __name__ == "__main__":
    main()
