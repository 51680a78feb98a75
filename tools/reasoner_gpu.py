"""Train the reasoner and record its probed traces in one process: the recipe of the shipped
`smollm2-135m-reasoner` adapter and of `data/traces/smollm2-reasoner`, for a GPU machine without papermill.

It calls the same library functions as the `train_reasoner` study (`training_examples`, `lora_model`,
`prefix_states`, `train_lora`, `save_adapter`) and as `probes.record_probed_traces`, then loads the saved adapter
through the alias (fp16 adapter merged into the dequantised base, exactly as `load_model` does anywhere) before it
checks the model and records traces. Training replaces the alias's folder `data/reasoner/smollm2-135m-reasoner`
(`git checkout -- data/reasoner` restores the shipped one). Each stage writes its output before the next starts.

    python tools/reasoner_gpu.py --out OUT [--device cuda] [--train-seconds 100] [--max-steps 3000]

The defaults are the shipped adapter's recipe (on an H200 the 100-s budget gave 356 steps of 64; pass `--steps 356`
to repeat it exactly). The shipped traces `data/traces/smollm2-reasoner` were recorded on a CPU with the same call as
the traces stage here (400 additions of 1–4 digits, seed 1, budget 128, a probe every 8), because the GPU lease ran
out first; `--skip-train --skip-check` records them alone (on a GPU and in other batch sizes greedy outputs can
differ slightly from the CPU-recorded files, so they are comparable, not byte-identical).

Writes OUT/adapter/ (PEFT adapter + adapter.json), OUT/losses.csv, OUT/check.csv, OUT/traces/{probes,instances}.parquet
OUT/traces_puzzles/ (the same for the puzzles) and OUT/log.json (timings, parameters, accuracy). `--steps` fixes the number of optimiser steps; otherwise it is
chosen from the measured time per step so that training takes about `--train-seconds`.
"""
from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from adaptbench.core import project_root, seed_everything  # noqa: E402
from adaptbench.generation import generate_traces  # noqa: E402
from adaptbench.models import ADAPTER_ALIASES, load_model  # noqa: E402
from adaptbench.probes import probe_tasks, record_probed_traces  # noqa: E402
from adaptbench.reasoner import (lora_loss, lora_model, prefix_states, save_adapter, train_lora,  # noqa: E402
                                 training_examples)
from adaptbench.tasks import get_task  # noqa: E402

ALIAS = "smollm2-135m-reasoner"


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--out", required=True, type=Path)
    a("--device", default="cuda")
    a("--base", default="smollm2-135m-instruct")
    a("--tasks", default="hanoi,checker_jumping,addition")
    a("--task-weights", default="hanoi:0.1,checker_jumping:0.1,addition:0.8")
    a("--puzzle-n-train", type=int, default=2)
    a("--arithmetic-n-train", type=int, default=4)
    a("--instances-per-n", type=int, default=2000)
    a("--anytime", type=int, default=1, help="answer-when-cut examples per think example (training_examples)")
    a("--rank", type=int, default=16)
    a("--alpha", type=float, default=32.0)
    a("--first-layer", type=int, default=0)
    a("--batch-size", type=int, default=64)
    a("--lr", type=float, default=5e-4)
    a("--warmup", type=int, default=50)
    a("--steps", type=int, default=0, help="0: chosen from --train-seconds")
    a("--train-seconds", type=float, default=100)
    a("--max-steps", type=int, default=3000)
    a("--min-steps", type=int, default=200)
    a("--seed", type=int, default=0)
    a("--check-instances", type=int, default=16, help="greedy check: instances per (task, n, style)")
    a("--check-n-max", type=int, default=5, help="greedy check: additions up to this many digits")
    a("--trace-instances", type=int, default=400, help="probed think-style additions")
    a("--trace-n", default="1,4", help="digit range of the traced additions")
    a("--trace-puzzles", default="hanoi,checker_jumping", help="puzzles traced at n = 1..puzzle_n_train+1 (apart)")
    a("--puzzle-budget", type=int, default=256, help="reasoning budget of the puzzle traces")
    a("--trace-seed", type=int, default=1)
    a("--budget", type=int, default=128)
    a("--probe-interval", type=int, default=8)
    a("--batch", type=int, default=128, help="rows per generate call (check and traces)")
    a("--skip-train", action="store_true", help="use the installed adapter (the alias) as it is: check and traces only")
    a("--skip-check", action="store_true", help="no greedy check")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    out = args.out; out.mkdir(parents=True, exist_ok=True)
    log = dict(argv=sys.argv[1:], torch=torch.__version__, device=args.device, t={})
    if torch.cuda.is_available(): log["gpu"] = torch.cuda.get_device_name(0)
    import transformers, peft
    log.update(transformers=transformers.__version__, peft=peft.__version__)

    def save_log():
        (out/"log.json").write_text(json.dumps(log, indent=1, default=str))

    def stage(name, t0):
        log["t"][name] = round(time.time() - t0, 1); save_log()
        print(f"[{time.strftime('%H:%M:%S')}] {name}: {log['t'][name]} s", flush=True)

    seed_everything(args.seed)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    weights = {k: float(v) for k, v in (kv.split(":") for kv in args.task_weights.split(","))} if args.task_weights else None
    n_train = {t: args.arithmetic_n_train if get_task(t).kind == "arithmetic" else args.puzzle_n_train for t in tasks}

    if not args.skip_train: train(args, out, log, tasks, weights, n_train, stage)
    torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False
    lm = load_model(ALIAS, device=args.device, dtype="float32")     # fp16 adapter merged into the base, as shipped
    if not args.skip_check: check(args, out, log, lm, tasks, n_train, stage)
    traces(args, out, log, lm, stage)


def train(args, out, log, tasks, weights, n_train, stage):
    # ---- training (TF32 matmuls: training only)
    t0 = time.time()
    torch.backends.cuda.matmul.allow_tf32 = True; torch.backends.cudnn.allow_tf32 = True
    lm = load_model(args.base, device=args.device, dtype="float32")
    examples = training_examples(lm.tokenizer, tasks, n_train, ("direct", "think"), args.instances_per_n, args.seed,
                                 anytime=args.anytime)
    log["examples"] = (pd.DataFrame([dict(task=e.task, n=e.n, style=e.style) for e in examples]).value_counts()
                       .rename("k").reset_index().to_dict("records"))
    log["n_examples"] = len(examples)
    torch.manual_seed(args.seed)
    lm.model = lora_model(lm, args.rank, args.alpha, args.first_layer)
    states = prefix_states(lm, examples, args.first_layer)
    stage("examples_and_states", t0)

    steps = args.steps
    if not steps:                                   # time a few forward/backward passes (no optimiser step)
        r = random.Random(12345)
        def one():
            loss = lora_loss(lm, states, examples, [r.randrange(len(examples)) for _ in range(args.batch_size)], args.first_layer)
            loss.backward(); lm.model.zero_grad(set_to_none=True)
        lm.model.train()
        for _ in range(3): one()
        if args.device.startswith("cuda"): torch.cuda.synchronize()
        t1 = time.time()
        for _ in range(8): one()
        if args.device.startswith("cuda"): torch.cuda.synchronize()
        per = (time.time() - t1) / 8 * 1.15          # + optimiser step
        steps = max(args.min_steps, min(args.max_steps, int(args.train_seconds / per)))
        log["seconds_per_step_est"] = per
    log["steps"] = steps
    t0 = time.time()
    history = train_lora(lm, examples, steps, args.batch_size, args.lr, args.warmup, args.first_layer, args.seed,
                         checkpoint=out/"checkpoint.pt", save_every=max(100, steps // 5), progress=False, states=states,
                         task_weights=weights)
    history.to_csv(out/"losses.csv", index=False)
    log["loss_first10"] = float(history["loss"].head(10).mean()); log["loss_last10"] = float(history["loss"].tail(10).mean())
    stage("train", t0)
    params = dict(alpha=args.alpha, arithmetic_n_train=args.arithmetic_n_train, base=args.base, batch_size=args.batch_size,
                  first_layer=args.first_layer, instances_per_n=args.instances_per_n, anytime=args.anytime, lr=args.lr,
                  puzzle_n_train=args.puzzle_n_train, rank=args.rank, seed=args.seed, steps=steps,
                  styles=["direct", "think"], tasks=tasks, task_weights=weights, warmup=args.warmup,
                  device=log.get("gpu", args.device), recipe="tools/reasoner_gpu.py")
    adapter = save_adapter(lm, out/"adapter", args.base, params, history)
    (out/"checkpoint.pt").unlink(missing_ok=True)

    dest = project_root(required=True)/"data"/ADAPTER_ALIASES[ALIAS][1]   # the alias's folder: what load_model(ALIAS) loads
    shutil.rmtree(dest, ignore_errors=True); shutil.copytree(adapter, dest)


def check(args, out, log, lm, tasks, n_train, stage):
    # ---- greedy check on unseen seeds
    t0 = time.time()
    jobs = []
    for t in tasks:
        T = get_task(t)
        hi = args.check_n_max if T.kind == "arithmetic" else n_train[t] + 1
        for n in range(T.n_range[0], hi + 1):
            for k in range(args.check_instances if T.kind == "arithmetic" else 1):
                inst = T.instance(n, seed=10_000 + k)
                for style in ("direct", "think"): jobs.append((T, inst, style))
    budget = max(len(lm.tokenizer(T.worked_solution(i, s))["input_ids"]) for T, i, s in jobs) + 16
    traces = generate_traces(lm, [T.prompt(i, s) for T, i, s in jobs], max_new_tokens=budget, batch_size=args.batch)
    rows = []
    for (T, inst, style), tr in zip(jobs, traces):
        v = T.grade(inst, tr["text"], tr["truncated"])
        rows.append(dict(task=T.name, n=inst.n, style=style, trained=inst.n <= n_train[T.name], outcome=v.outcome,
                         solved=v.solved, tokens=tr["n_tokens"]))
    check = pd.DataFrame(rows)
    check.to_csv(out/"check.csv", index=False)
    acc = check.groupby(["task", "n", "style"])["solved"].mean().unstack("style")
    log["check"] = acc.round(3).reset_index().to_dict("records")
    print(acc.to_string(), flush=True)
    stage("check", t0)


def traces(args, out, log, lm, stage):
    # ---- probed think-style traces
    t0 = time.time()
    lo, hi = (int(x) for x in args.trace_n.split(","))
    ptasks = probe_tasks(["addition"], (lo, hi), args.trace_instances, seed=args.trace_seed)
    record(lm, ptasks, args.budget, args, out/"traces", log, "traces")
    stage("traces", t0)
    puzzles = [p.strip() for p in args.trace_puzzles.split(",") if p.strip()]
    if puzzles:                 # deterministic: one instance per n, so kept apart (nothing to calibrate over)
        t0 = time.time()
        ptasks = probe_tasks(puzzles, (1, args.puzzle_n_train + 1), len(puzzles) * (args.puzzle_n_train + 1), seed=args.trace_seed)
        record(lm, ptasks, args.puzzle_budget, args, out/"traces_puzzles", log, "traces_puzzles")
        stage("traces_puzzles", t0)


def record(lm, ptasks, budget, args, dest, log, key):
    probes, instances = record_probed_traces(lm, ptasks, budget=budget, probe_interval=args.probe_interval,
                                             batch_size=args.batch, progress=False)
    dest.mkdir(exist_ok=True)
    probes.to_parquet(dest/"probes.parquet", index=False)
    instances.to_parquet(dest/"instances.parquet", index=False)
    log[key] = instances.groupby(["family", "n"]).agg(k=("final_correct", "size"), acc=("final_correct", "mean"),
                                                    tokens=("final_tokens", "mean")).round(3).reset_index().to_dict("records")
    print(key, json.dumps(log[key]), flush=True)


if __name__ == "__main__":
    main()
