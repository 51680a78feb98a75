"""Contract of every registered training hook (`adaptbench.hooks`), one test per hook and no per-hook code: its
penalty is zero at its declared anchor (the starting weights, or the origin for plain L2), a tiny two-task run keeps
the weights and the penalty finite, its spec round-trips through the registry, and its state survives a save/load
through safetensors + JSON into a fresh hook set up the same way."""
import random

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

import adaptbench.forgetting  # noqa: F401  (registers forgetting's hooks, if it defines any of its own)
import adaptbench.plasticity.mitigations  # noqa: F401  (registers the unit-level mitigations)
from adaptbench.hooks import HOOKS, Hooks, StepContext, load_state, parse_hooks, save_state
from adaptbench.plasticity.nets import find_units, make_mlp

torch.set_num_threads(1)
STEPS, BATCH = 50, 8          # 2 tasks × 50 steps: schedules of every 100 steps (ReDo, trap) fire once


class World:
    "A tiny MLP, two classification tasks, a proxy set, and everything a StepContext can carry."
    def __init__(self, seed=0):
        torch.manual_seed(seed)
        self.net = make_mlp(6, [16], 3)
        self.units = find_units(self.net)
        g = torch.Generator().manual_seed(seed)
        self.tasks = [[(torch.randn(6, generator=g), torch.randint(0, 3, (), generator=g)) for _ in range(24)]
                      for _ in range(2)]
        self.proxy = torch.randn(12, 6, generator=g)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-2)
        self.gen, self.rng = torch.Generator().manual_seed(seed), random.Random(seed)
        self.feats = {}
        for ul in self.units:
            ul.outgoing.register_forward_pre_hook(lambda m, i, n=ul.name: self.feats.__setitem__(n, i[0].detach()))

    def loss(self, examples):
        return F.cross_entropy(self.net(torch.stack([x for x, _ in examples])), torch.stack([y for _, y in examples]))

    def features(self, grad):
        with torch.set_grad_enabled(grad): return self.net[:2](self.proxy)          # (12, 16) hidden features

    def ctx(self, **kw):
        return StepContext(self.net, units=self.units, opt=self.opt, gen=self.gen, rng=self.rng, loss_fn=self.loss,
                           features=self.features, **kw)

    def train(self, hook):
        "Every hook point in the documented order, over both tasks."
        step = 0
        for t, data in enumerate(self.tasks):
            probe = (torch.stack([x for x, _ in data]), torch.stack([y for _, y in data]))
            hook.on_task(self.ctx(step=step, task=t, probe=probe, data=self.tasks[t - 1] if t else None))
            pool = [e for d in self.tasks[:t] for e in d]
            for s in range(STEPS):
                ctx = self.ctx(step=step, task=t, task_step=s, probe=probe)
                n_rep = hook.extra_batch(ctx, BATCH) if pool else 0
                assert 0 <= n_rep <= BATCH
                loss = self.loss(self.rng.choices(data, k=BATCH - n_rep) + self.rng.choices(pool, k=n_rep))
                ctx.feats = dict(self.feats)
                total = loss + hook.penalty(ctx)
                self.opt.zero_grad(); total.backward(); self.opt.step()
                hook.after_step(ctx)
                step += 1
        hook.on_task(self.ctx(step=step, task=len(self.tasks), data=self.tasks[-1]))


def _same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, torch.Tensor): assert torch.equal(x, y), k
        elif isinstance(x, dict):
            assert x.keys() == y.keys(), k
            for n in x: assert (torch.equal(x[n], y[n]) if isinstance(x[n], torch.Tensor) else x[n] == y[n]), (k, n)
        else: assert x == y, k


@pytest.mark.parametrize("key", sorted(HOOKS))
def test_zero_penalty_at_the_anchor(key):
    w = World()
    hook = HOOKS[key]()
    hook.setup(w.ctx())
    if hook.anchor == "origin":
        with torch.no_grad():
            for p in w.net.parameters(): p.zero_()
    assert float(hook.penalty(w.ctx())) == 0.0


@pytest.mark.parametrize("key", sorted(HOOKS))
def test_tiny_run_is_finite_and_state_survives_save_load(key, tmp_path):
    w = World()
    hook = HOOKS[key]()
    hook.setup(w.ctx())
    w.train(hook)
    assert all(torch.isfinite(p).all() for p in w.net.parameters())
    pen = hook.penalty(w.ctx())
    assert torch.isfinite(torch.as_tensor(pen)).all()

    save_state(hook, tmp_path / "state.safetensors")
    with safe_open(str(tmp_path / "state.safetensors"), "pt") as f: assert f.metadata()["hook"] == hook.name
    fresh_world = World()
    again = HOOKS[key]()
    again.setup(fresh_world.ctx())
    load_state(again, tmp_path / "state.safetensors")
    _same_state(hook.state_dict(), again.state_dict())
    assert float(again.penalty(w.ctx())) == float(pen)        # the same penalty on the trained network


@pytest.mark.parametrize("key", sorted(HOOKS))
def test_spec_round_trips(key):
    hook = HOOKS[key]()
    back = parse_hooks(hook.name)
    assert [type(h) for h in back] == ([] if key == "none" else [type(hook)])
    assert all(h.name == hook.name for h in back)


def test_every_hook_composes(tmp_path):
    "All registered hooks at once: one composition, one run, one state file."
    w = World()
    every = Hooks([HOOKS[k]() for k in sorted(HOOKS)])
    every.setup(w.ctx())
    assert float(Hooks([h for h in every if h.anchor == "start"]).penalty(w.ctx())) == 0.0
    w.train(every)
    assert all(torch.isfinite(p).all() for p in w.net.parameters())
    save_state(every, tmp_path / "all.safetensors")
    again = Hooks([HOOKS[k]() for k in sorted(HOOKS)])
    again.setup(World().ctx())
    load_state(again, tmp_path / "all.safetensors")
    _same_state(every.state_dict(), again.state_dict())
    assert parse_hooks(every.name) and Hooks(parse_hooks(every.name)).name == every.name
