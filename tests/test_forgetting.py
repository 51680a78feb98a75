"""The forgetting sequence runner on tiny-random-llama: a full matrix, and a run interrupted (or killed) in task 2
resumes from the task-1 checkpoint and ends with exactly the rows and weights of an uninterrupted run."""
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

from adaptbench.forgetting import (GENERAL_PROMPTS, KNOWN_CANDIDATES, ForgettingError, GeneralProbe, TrainConfig,
                                   accuracy_matrix, forgetting_metrics, forgetting_per_task, make_tasks, run_sequence,
                                   sequence_metrics)
from adaptbench.models import load_model

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


def _final_weights(d: Path, T: int): return load_file(d / "checkpoints" / f"task_{T:03d}" / "weights.safetensors")


class Interrupt(Exception): pass


@pytest.mark.parametrize("method,lora", [("ewc", True), ("replay", True), ("task_avg", False)])
def test_interrupted_run_resumes_to_the_same_result(tmp_path, tiny, probe, method, lora):
    tasks = make_tasks(TASKS, 8, 4)
    full = run_sequence(tiny, tasks, method, _cfg(lora), tmp_path / "full", probe=probe, progress=False)
    assert full.row.tolist() == [0, 1, 2, 3] and accuracy_matrix(full).shape == (4, 3)
    assert not np.isnan(sequence_metrics(full)["bwt"])

    def stop(task, step, loss):
        if task == 2 and step == 1: raise Interrupt
    with pytest.raises(Interrupt):
        run_sequence(tiny, tasks, method, _cfg(lora), tmp_path / "cut", probe=probe, on_step=stop, progress=False)
    assert sorted(p.name for p in (tmp_path / "cut" / "rows").iterdir()) == ["row_000.json", "row_001.json"]

    seen = []
    resumed = run_sequence(tiny, tasks, method, _cfg(lora), tmp_path / "cut", probe=probe,
                           on_step=lambda t, s, l: seen.append(t), progress=False)
    assert sorted(set(seen)) == [2, 3]                     # task 1 was not trained again
    _same(full, resumed)
    wa, wb = _final_weights(tmp_path / "full", 3), _final_weights(tmp_path / "cut", 3)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    if not lora:                                           # full weights: only the latest checkpoint is kept
        assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["task_003"]


def test_killed_process_resumes(tmp_path, tiny, probe):
    "SIGKILL in the middle of task 2 (no cleanup runs at all), then a rerun in this process."
    script = textwrap.dedent(f"""
        import os, signal, torch
        torch.set_num_threads(1)
        from adaptbench.forgetting import *
        from adaptbench.models import load_model
        tiny = load_model("tiny-random-llama")
        probe = GeneralProbe.build(tiny.model, tiny, prompts=GENERAL_PROMPTS[:4], candidates=KNOWN_CANDIDATES[:2])
        def die(task, step, loss):
            if task == 2 and step == 2: os.kill(os.getpid(), signal.SIGKILL)
        run_sequence(tiny, make_tasks({TASKS!r}, 8, 4), "ewc",
                     TrainConfig(steps=3, batch_size=2, lora=True, lora_r=4, seed=3),
                     {str(tmp_path / 'killed')!r}, probe=probe, on_step=die, progress=False)
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    res = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == -9, res.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "killed" / "rows").iterdir()) == ["row_000.json", "row_001.json"]
    tasks = make_tasks(TASKS, 8, 4)
    resumed = run_sequence(tiny, tasks, "ewc", _cfg(True), tmp_path / "killed", probe=probe, progress=False)
    full = run_sequence(tiny, tasks, "ewc", _cfg(True), tmp_path / "full", probe=probe, progress=False)
    _same(full, resumed)


def test_other_settings_are_refused(tmp_path, tiny, probe):
    tasks = make_tasks("reverse,uppercase", 4, 2)
    cfg = TrainConfig(steps=1, batch_size=2, lora_r=4)
    run_sequence(tiny, tasks, "sft", cfg, tmp_path / "s", probe=probe, progress=False)
    with pytest.raises(ForgettingError, match="other settings"):
        run_sequence(tiny, tasks, "sft", TrainConfig(steps=2, batch_size=2, lora_r=4), tmp_path / "s", probe=probe,
                     progress=False)
    with pytest.raises(ForgettingError, match="other settings"):
        run_sequence(tiny, make_tasks("reverse,uppercase", 4, 2, seed=1), "sft", cfg, tmp_path / "s", probe=probe,
                     progress=False)


def test_forgetting_variants_on_a_hand_made_matrix():
    "A public bug report: the final accuracy is the task's best (0.7 after 0.6), so Chaudhry's forgetting is −0.1."
    R = np.array([[0, 0], [0.6, 0.2], [0.7, 0.9]])
    assert np.allclose(forgetting_per_task(R, "chaudhry"), [-0.1])
    assert np.allclose(forgetting_per_task(R, "mammoth"), [0.0])
    assert np.allclose(forgetting_per_task(R, "avalanche"), [-0.1])
    m = forgetting_metrics(R)
    assert np.isclose(m["acc"], 0.8) and np.isclose(m["bwt"], 0.1) and np.isclose(m["fwt"], 0.2)
    with pytest.raises(ForgettingError, match="chaudhry"): forgetting_per_task(R, "max")
