"""The one path from a calibration to a live run (`Calibration.runnable`), driver by driver: a calibration recorded with
one model runs on that model, and is refused on another model — or on other weights under the same name (a retrained
adapter) — unless forced; every `Replay` producer records the model it was made with."""
import copy
import math

import numpy as np
import pytest
import torch

from adaptbench.calibrate import CalibrationError, calibrate
from adaptbench.models import load_model


@pytest.fixture(scope="module")
def models():
    a = load_model("tiny-random-llama", device="cpu")
    retrained = copy.deepcopy(a)                                   # same name, other weights
    with torch.no_grad(): retrained.model.lm_head.weight.mul_(1.01)
    renamed = copy.deepcopy(a); renamed.spec = "another-model"      # same weights, another name: the weights decide
    stranger = load_model("tiny-random-llama", device="cpu"); stranger.spec = "another-model"
    with torch.no_grad(): stranger.model.lm_head.weight.add_(0.01)  # other name, other weights
    return a, retrained, renamed, stranger


def _probes(a):
    from adaptbench.policies import SyntheticTraces, UpperThreshold, replay
    from adaptbench.probes import generate_with_policy, probe_tasks
    tr = SyntheticTraces(n_probes=2, interval=4, p_solvable=1.0, discovery_rate=0.95).sample(400, seed=1)
    tr.model, tr.weights = a.spec, a.fingerprint
    cal = calibrate(replay(UpperThreshold("confidence", np.linspace(1, 0.5, 6)), tr), dict(wrong=0.5), 0.1)
    tasks = probe_tasks(["addition"], (1, 1), 1)
    return cal, lambda lm, force=False: generate_with_policy(lm, tasks, cal, batch_size=1, progress=False, force=force)


def _early_exit(a):
    from adaptbench.early_exit import early_exit_generate
    from adaptbench.exits import EarlyExit, record_exits
    from adaptbench.lens import layer_states
    recs = record_exits(a, layer_states(a, ["the cat sat on the mat. " * 8] * 3), progress=False,
                        signals=["max_prob", "saturation"])
    cal = calibrate(EarlyExit("max_prob", thresholds=[np.inf, 0.99]).replay(recs), 0.5, 0.5)
    return cal, lambda lm, force=False: early_exit_generate(lm, "hi", cal, max_new_tokens=3, force=force)


def _parallel(a):
    from adaptbench.parallel import SampleRecords, calibrate_early_finish, parallel_generate
    recs = SampleRecords([["1"] * 4] * 3, [[True] * 4] * 3, [[5, 6, 7, 8]] * 3, [[False] * 4] * 3,
                         meta=dict(model=a.spec, weights=a.fingerprint, budget=4, temperature=1.0, style="direct"))
    cal = calibrate_early_finish(recs, eps=0.5, delta=0.5)
    return cal, lambda lm, force=False: parallel_generate(lm, "hi", rule=cal, task="addition", force=force)


def _switch(a):
    from adaptbench.speculative import calibrate_switch_threshold, entropy_switch_generate
    prompts = [[97 + i, 98 + i, 99 + i] for i in range(25)]
    small = copy.deepcopy(a)
    cal = calibrate_switch_threshold(small, a, prompts, [-math.inf, math.inf], eps=0.1, max_new_tokens=3, chat=False,
                                     progress=False)
    return cal, lambda lm, force=False: entropy_switch_generate(small, lm, prompts[:1], cal, chat=False, force=force)


DRIVERS = dict(probes=_probes, early_exit=_early_exit, parallel=_parallel, switch=_switch)


@pytest.mark.parametrize("driver", DRIVERS)
def test_every_live_driver_checks_the_model_it_was_calibrated_on(driver, models):
    a, retrained, renamed, stranger = models
    cal, run = DRIVERS[driver](a)
    assert cal.ok, cal.guarantee
    assert cal.replay.meta.get("weights") == a.fingerprint and cal.replay.meta.get("model") == a.spec
    run(a)                                                            # the recorded model runs
    run(renamed)                                                      # the same weights under another name run too
    with pytest.raises(CalibrationError, match="the same name, other weights"): run(retrained)
    with pytest.raises(CalibrationError, match="'another-model'"): run(stranger)
    run(retrained, force=True)                                        # unless forced
    run(stranger, force=True)


def test_a_calibration_without_a_valid_configuration_runs_nothing(models):
    a = models[0]
    from adaptbench.policies import SyntheticTraces, UpperThreshold, replay
    tr = SyntheticTraces(n_probes=2, interval=4).sample(5, seed=1)
    cal = calibrate(replay(UpperThreshold("confidence", [0.9]), tr), dict(wrong=0.01), 0.1)
    assert not cal.ok
    with pytest.raises(CalibrationError, match="certified no configuration"): cal.runnable(a)


def test_paths_are_compared_by_what_they_name(models, tmp_path, monkeypatch):
    "A local folder given as ./m, m/ or an absolute path is one model (recorded without a fingerprint: compared by spec)."
    from adaptbench.policies import SyntheticTraces, UpperThreshold, replay
    a = models[0]
    (tmp_path / "m").mkdir()
    monkeypatch.chdir(tmp_path)
    tr = SyntheticTraces(n_probes=2, interval=4, p_solvable=1.0, discovery_rate=0.95).sample(400, seed=1)
    tr.model = "./m"
    cal = calibrate(replay(UpperThreshold("confidence", np.linspace(1, 0.5, 6)), tr), dict(wrong=0.5), 0.1)
    for spec in ("m/", str(tmp_path / "m"), "./m"):
        live = copy.copy(a); live.spec = spec
        cal.runnable(live)
    live = copy.copy(a); live.spec = "n"
    with pytest.raises(CalibrationError, match="model: './m' recorded, 'n' now"): cal.runnable(live)
