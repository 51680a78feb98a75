"""The plasticity study's core claim, tested: planted clones stay identical and planted frozen units stay frozen under
plain SGD and Adam, and a perturbation of just the trapped units breaks the symmetry and restores capacity.
Deterministic: float64, one thread, fixed seeds."""
import pytest
import torch

from adaptbench.plasticity.train import planted_trap_experiment, run_config
from adaptbench.plasticity.streams import make_stream


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("optimizer,lr", [("adam", 1e-2), ("sgd", 0.05)])
def test_planted_traps_hold_and_targeted_perturbation_escapes(optimizer, lr):
    df, s = planted_trap_experiment(optimizer, lr=lr, steps=400, seed=0)
    # clones stay identical to the last bit (Adam is elementwise: identical gradients -> identical updates)
    assert s["clone_spread_after_training"] == 0.0
    # dead units get exactly zero gradient: incoming weights never move, all 16 still frozen
    assert s["dead_incoming_moved"] == 0.0 and s["frozen_after_training"] == s["n_dead_planted"] == 16
    # the trapped network behaves like a 4-unit one
    assert s["erank_trapped"] < 4.5
    # the perturbation touched only flagged units (4 groups x 11 non-first clones + 16 dead = 60)
    assert s["perturbation_touched_only_flagged"] and s["n_units_changed_by_perturbation"] == 60
    # and it restores capacity: lower loss, far higher feature rank, against the same steps of trapped training
    assert s["loss_perturbed"] < 0.8 * s["loss_trapped"]
    assert s["erank_perturbed"] > 4 * s["erank_trapped"]
    # during continued trapped training the clones are still identical
    trapped = df[df.phase == "continued, trapped"]
    assert (trapped.clone_spread == 0).all() and (trapped.frozen == 16).all()


def test_planted_trap_experiment_is_deterministic():
    a = planted_trap_experiment("adam", steps=100, seed=3)[0]
    b = planted_trap_experiment("adam", steps=100, seed=3)[0]
    assert a.equals(b)


def test_saturated_tanh_units_stay_frozen():
    _, s = planted_trap_experiment("adam", lr=1e-2, steps=300, act="tanh", seed=1)
    assert s["frozen_after_training"] == 16 and s["clone_spread_after_training"] == 0.0


def test_training_with_mitigations_is_deterministic():
    kw = dict(n_tasks=2, steps_per_task=40, batch_size=16, seed=0, n_per_task=64)
    runs = [run_config(make_stream("random-labels-digits", **kw), mitigations="cbp:0.02:5+trap:10+snp:0.999:0.001",
                       width=32, seed=5, diag_every=20, progress=False) for _ in range(2)]
    assert runs[0].tasks.drop(columns=["seconds"]).equals(runs[1].tasks.drop(columns=["seconds"]))
    cols = ["step", "layer", "metric", "value"]
    assert runs[0].diag[cols].equals(runs[1].diag[cols])


def test_divergence_is_recorded_not_raised():
    "SGD at lr 1e6 (a public bug report): the run stops at the non-finite step and says so; diagnostics stay NaN, not a LinAlgError."
    s = make_stream("random-labels-digits", n_tasks=2, steps_per_task=30, batch_size=32, seed=0)
    r = run_config(s, optimizer="sgd", lr=1e6, width=32, seed=0, diag_every=1, progress=False)
    assert r.diverged == dict(step=2, task=0, reason="non-finite loss")
    assert r.tasks.diverged.tolist() == [True] and r.tasks.step.tolist() == [2]
    assert r.diag.query("layer == 'model' and metric == 'loss' and step == 2").value.isna().all()


def test_nan_weights_are_diagnosed_per_layer():
    from torch import nn
    from adaptbench.plasticity.diagnostics import diagnose
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad(): net[2].weight.fill_(float("nan"))
    d = diagnose(net, torch.randn(32, 5))
    assert d.layers.nonfinite.tolist() == [0.0, 1.0] and len(d.nonfinite_layers) == 1
    assert d.layers.erank.isna().tolist() == [False, True]


@pytest.mark.parametrize("width", [4, 10, 64, 1000])
@pytest.mark.parametrize("norm", ["mean", "sum"])
def test_a_uniform_layer_has_no_dormant_unit(width, norm):
    from adaptbench.plasticity.diagnostics import dormant_scores, dormant_units
    assert not dormant_units(torch.ones(4, width), 0.1, norm).any()
    feat = torch.ones(4, width); feat[:, 0] = 0.05                 # one unit at 5 % of the layer's average activity
    assert dormant_units(feat, 0.1, norm).nonzero().flatten().tolist() == [0]
    if norm == "sum": assert torch.allclose(dormant_scores(torch.ones(4, width), "sum"), torch.full((width,), 1 / width))


# --- the study's parameters: presets resolve before the run id, bad mitigation specs fail at --dry-run -------------
def test_a_bad_mitigation_spec_fails_at_dry_run_naming_the_valid_range(runs_dir, capsys):
    from adaptbench.cli import main
    assert main(["run", "plasticity_traps", "-p", "mitigations", "none,cbp:abc,snp:2", "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and not runs_dir.exists()
    assert "'cbp:abc'" in err and "option 'rho' must be a replacement rate per step in [0, 1)" in err
    assert "'snp:2'" in err and "shrink must be a number in (0, 1]" in err


def test_a_preset_is_stored_as_the_sizes_that_run(runs_dir, capsys, monkeypatch):
    from adaptbench.catalogue import resolve_params, study_presets
    from adaptbench.cli import main
    from adaptbench.runs import run_id
    monkeypatch.delenv("IN_TEST", raising=False)
    study = study_presets("plasticity_traps")["scale"]["study"]
    p = resolve_params("plasticity_traps", {"scale": "study"})
    assert {k: p[k] for k in study} == study                          # every size of the preset, concrete
    assert p["n_seeds"] >= 5 and p["ablation_seeds"] >= 5 and {"cbp:1e-4", "cbp:1e-5", "cbp:1e-6"} <= set(p["mitigations"])
    assert resolve_params("plasticity_traps", {"scale": "study", "n_seeds": "2"})["n_seeds"] == 2   # set explicitly: wins
    auto = resolve_params("plasticity_traps", {})                     # auto outside nbdev-test: the default preset
    assert auto["scale"] == "default" and run_id("plasticity_traps", auto) == run_id("plasticity_traps", resolve_params("plasticity_traps", {"scale": "default"}))
    assert main(["run", "plasticity_traps", "-p", "scale", "tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "n_tasks              3" in out and "'redo:0.1:40'" in out   # --dry-run prints what would run


def test_ablation_resets_only_the_picked_units_and_equal_sizes(monkeypatch):
    "The causal ablation on a tiny stream: equal-size arms, the 'none' arm is the uninterrupted run, flags per layer."
    from adaptbench.plasticity.train import ablation_effects, causal_ablation
    s = make_stream("random-labels-digits", n_tasks=3, steps_per_task=30, batch_size=16, seed=0, n_per_task=64)
    ab, fl = causal_ablation(s, at_task=2, n_after=1, seed=0, width=16, lr=1e-2, optimizer="adamgnt")
    n = ab.groupby("arm").n_reset.first()
    assert n["flagged"] == n["random"] == fl.equal_size.sum() and n["flagged_all"] == fl.flagged.sum() and n["none"] == 0
    assert (fl.equal_size == [min(f, u - f) for f, u in zip(fl.flagged, fl.n_units)]).all()
    whole = run_config(s, width=16, seed=0, lr=1e-2, optimizer="adamgnt", diag_every=0, progress=False).tasks
    assert ab[ab.arm.isin(["before", "none"])].online_acc.tolist() == pytest.approx(whole.online_acc.tolist(), abs=1e-9)
    e = ablation_effects(ab)
    assert len(e) == 1 and {"flagged_beyond_random", "flagged_all_closed"} <= set(e.columns)
