"""The forgetting sequence runner on tiny-random-llama: a full matrix, and a run interrupted (or killed) in task 2
resumes from the task-1 checkpoint and ends with exactly the rows and weights of an uninterrupted run, all written
through the run store (`runs.Run`); and the accuracy it reports is the task grader's on the model's greedy replies."""
import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from adaptbench.forgetting import (GENERAL_PROMPTS, KNOWN_CANDIDATES, ForgettingError, GeneralProbe, TaskSplit,
                                   TrainConfig, accuracy_matrix, encode_pairs, exact_match, forgetting_metrics,
                                   forgetting_per_task, greedy_replies, make_task, make_tasks, read_sequence,
                                   run_sequence, sequence_metrics, sft_loss, solved)
from adaptbench.models import load_model
from adaptbench.runs import Run

torch.set_num_threads(1)
TASKS = "reverse,uppercase,add"


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random-llama")


@pytest.fixture(scope="module")
def probe(tiny):
    return GeneralProbe.build(tiny.model, tiny, prompts=GENERAL_PROMPTS[:4], candidates=KNOWN_CANDIDATES[:2])


def _cfg(lora): return TrainConfig(steps=3, batch_size=2, lora=lora, lora_r=4, seed=3)


def _same(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"), check_exact=True)


def _run(root: Path, case: str) -> Run: return Run.create("forgetting_test", dict(case=case), root)


def _final_weights(run: Run, T: int):
    return load_file(run.dir / "sequences" / "sequence" / f"task_{T:03d}" / "weights.safetensors")


def _row_chunks(run: Run): return sorted(p.name[:5] for p in (run.dir / "tables" / "sequence_chunks").glob("*.parquet"))


class Interrupt(Exception): pass


@pytest.mark.parametrize("method,lora", [("ewc", True), ("replay", True), ("task_avg", False)])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, tiny, probe, method, lora):
    tasks = make_tasks(TASKS, 8, 4)
    full_run, cut_run = _run(tmp_path, "full"), _run(tmp_path, "cut")
    full = run_sequence(tiny, tasks, method, _cfg(lora), full_run, probe=probe, progress=False)
    assert full.row.tolist() == [0, 1, 2, 3] and accuracy_matrix(full).shape == (4, 3)
    assert not np.isnan(sequence_metrics(full)["bwt"])

    def stop(task, step, loss):
        if task == 2 and step == 1: raise Interrupt
    with pytest.raises(Interrupt):
        run_sequence(tiny, tasks, method, _cfg(lora), cut_run, probe=probe, on_step=stop, progress=False)
    assert _row_chunks(cut_run) == ["00000", "00001"] and read_sequence(cut_run).row.tolist() == [0, 1]
    assert cut_run.tables() == []                          # row chunks are not result tables of the run

    seen = []
    resumed = run_sequence(tiny, tasks, method, _cfg(lora), Run.from_dir(cut_run.dir), probe=probe,
                           on_step=lambda t, s, l: seen.append(t), progress=False)
    assert sorted(set(seen)) == [2, 3]                     # task 1 was not trained again
    _same(full, resumed)
    wa, wb = _final_weights(full_run, 3), _final_weights(cut_run, 3)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    if not lora:                                           # full weights: only the latest checkpoint is kept
        assert sorted(p.name for p in (cut_run.dir / "sequences" / "sequence").iterdir()) == ["sequence.json", "task_003"]


def test_killed_process_resumes(tmp_path, tiny, probe):
    "SIGKILL in the middle of task 2 (no cleanup runs at all), then a rerun in this process."
    script = textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads(1)
        from adaptbench.forgetting import *
        from adaptbench.models import load_model
        tiny = load_model("tiny-random-llama")
        probe = GeneralProbe.build(tiny.model, tiny, prompts=GENERAL_PROMPTS[:4], candidates=KNOWN_CANDIDATES[:2])
        from adaptbench.runs import Run
        def die(task, step, loss):
            if task == 2 and step == 2: os.kill(os.getpid(), signal.SIGKILL)
        run_sequence(tiny, make_tasks({TASKS!r}, 8, 4), "ewc",
                     TrainConfig(steps=3, batch_size=2, lora=True, lora_r=4, seed=3),
                     Run.create("forgetting_test", dict(case="killed"), {str(tmp_path)!r}), probe=probe, on_step=die,
                     progress=False)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == -9, res.stderr[-2000:]
    killed = _run(tmp_path, "killed")
    assert _row_chunks(killed) == ["00000", "00001"]
    tasks = make_tasks(TASKS, 8, 4)
    resumed = run_sequence(tiny, tasks, "ewc", _cfg(True), killed, probe=probe, progress=False)
    full = run_sequence(tiny, tasks, "ewc", _cfg(True), _run(tmp_path, "full"), probe=probe, progress=False)
    _same(full, resumed)


def test_other_settings_are_refused(tmp_path, tiny, probe):
    tasks = make_tasks("reverse,uppercase", 4, 2)
    cfg = TrainConfig(steps=1, batch_size=2, lora_r=4)
    run = _run(tmp_path, "s")
    run_sequence(tiny, tasks, "sft", cfg, run, probe=probe, progress=False)
    with pytest.raises(ForgettingError, match="other settings"):
        run_sequence(tiny, tasks, "sft", TrainConfig(steps=2, batch_size=2, lora_r=4), run, probe=probe, progress=False)
    with pytest.raises(ForgettingError, match="other settings"):
        run_sequence(tiny, make_tasks("reverse,uppercase", 4, 2, seed=1), "sft", cfg, run, probe=probe, progress=False)
    other = run_sequence(tiny, tasks, "sft", TrainConfig(steps=2, batch_size=2, lora_r=4), run, "other", probe=probe,
                         progress=False)                   # another sequence of the same run: its own name
    assert other.row.tolist() == [0, 1, 2]
    with pytest.raises(ForgettingError, match="run store"):
        run_sequence(tiny, tasks, "sft", cfg, tmp_path / "a-folder", probe=probe, progress=False)


def test_forgetting_variants_on_a_hand_made_matrix():
    "A public bug report: the final accuracy is the task's best (0.7 after 0.6), so Chaudhry's forgetting is −0.1."
    R = np.array([[0, 0], [0.6, 0.2], [0.7, 0.9]])
    assert np.allclose(forgetting_per_task(R, "chaudhry"), [-0.1])
    assert np.allclose(forgetting_per_task(R, "mammoth"), [0.0])
    assert np.allclose(forgetting_per_task(R, "avalanche"), [-0.1])
    m = forgetting_metrics(R)
    assert np.isclose(m["acc"], 0.8) and np.isclose(m["bwt"], 0.1) and np.isclose(m["fwt"], 0.2)
    with pytest.raises(ForgettingError, match="chaudhry"): forgetting_per_task(R, "max")


def _graded(split, traces):
    "The task's own verdict on each generated reply: the slow path the reported accuracy must agree with."
    return [split.task.grade(i, t["text"], t["truncated"]).solved for i, t in zip(split.test, traces)]


def test_accuracy_is_the_task_graders_on_generated_replies(tiny):
    "Replies of the random tiny model, and of a copy trained until it reproduces two references exactly (hits)."
    rv = make_task("reverse", 6, 6, seed=2)
    assert solved(tiny.model, tiny, rv).tolist() == _graded(rv, greedy_replies(tiny, rv))

    lm = copy.deepcopy(tiny)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(lm.model.parameters(), lr=1e-3)
    learn = rv.test_pairs[:2]                              # two held-out replies learnt by heart
    for _ in range(200):
        loss = sft_loss(lm.model, encode_pairs(lm, learn)); opt.zero_grad(); loss.backward(); opt.step()
    hits = exact_match(lm.model, lm, rv.test_pairs)
    assert hits[:2].all() and not hits[2:].all()
    traces = greedy_replies(lm, rv)
    graded = _graded(rv, traces)
    assert [t["text"] for t in traces[:2]] == [a for _, a in learn]    # a hit is what greedy decoding writes
    assert solved(lm.model, lm, rv).tolist() == graded and all(graded[:2])
    assert all(g for h, g in zip(hits, graded) if h)        # exact match never claims more than the grader


def test_hand_written_replies_are_graded_by_the_task():
    "A right reply, a right one in another form, a wrong one and a badly formatted one: exact match vs the grader."
    rv = make_task("reverse", 2, 1, seed=4)
    inst, (_, ref) = rv.test[0], rv.test_pairs[0]
    replies = dict(right=ref, other_form=ref.replace(" ", ""), answer_line=f"answer = {ref}",
                   wrong=ref[::-1] if ref[::-1] != ref else ref + " x", bad_format=f"Sure! Reversed:\n{ref}\nDone.")
    verdicts = {k: rv.task.grade(inst, r).outcome for k, r in replies.items()}
    assert verdicts == dict(right="solved", other_form="solved", answer_line="solved", wrong="wrong",
                            bad_format="no_answer")
    exact = {k: r == ref for k, r in replies.items()}      # the teacher-forced check's verdict on these replies
    assert all(verdicts[k] == "solved" for k in exact if exact[k])

    caps = TaskSplit.from_pairs("capitals", [("Capital of France?", "Paris"), ("Capital of Peru?", "Lima")], n_test=1)
    inst, (_, ref) = caps.test[0], caps.test_pairs[0]
    got = [caps.task.grade(inst, r).outcome for r in [ref, f" {ref}\n", ref.lower(), f"{ref}.", f"It is {ref}"]]
    assert got == ["solved", "solved", "wrong", "wrong", "wrong"]    # a user dataset: exact match, named grader
