"""The shipped model organism `smollm2-135m-reasoner`: it loads by its alias with its content hash checked, refuses
a missing or altered adapter naming the fix, and answers instances of its training range correctly."""
import json
import shutil

import pytest
import torch

from adaptbench.core import project_root
from adaptbench.models import (ADAPTER_ALIASES, ADAPTER_FILES, ADAPTER_MANIFEST, ModelNotAvailableError,
                               adapter_sha256, load_model)
from adaptbench.tasks import get_task

SHIPPED = project_root(required=True) / "data" / ADAPTER_ALIASES["smollm2-135m-reasoner"][1]


def test_the_shipped_adapter_is_complete_and_pinned():
    manifest = json.loads((SHIPPED / ADAPTER_MANIFEST).read_text())
    assert manifest["base"] == "smollm2-135m-instruct"
    assert adapter_sha256(SHIPPED) == manifest["sha256"]
    assert {"steps", "puzzle_n_train", "arithmetic_n_train", "rank", "first_layer"} <= set(manifest["params"])
    assert sum((SHIPPED / f).stat().st_size for f in ADAPTER_FILES) < 12e6       # small enough to ship in git (r = 16 on all 30 blocks, fp16: 9.8 MB)


def _project_with(tmp_path, monkeypatch, adapter=True):
    (tmp_path / "settings.ini").write_text("[adaptbench]\n")
    if adapter: shutil.copytree(SHIPPED, tmp_path / "data" / ADAPTER_ALIASES["smollm2-135m-reasoner"][1])
    monkeypatch.setenv("ADAPTBENCH_ROOT", str(tmp_path))
    return tmp_path / "data" / ADAPTER_ALIASES["smollm2-135m-reasoner"][1]


def test_a_missing_adapter_names_the_fix(tmp_path, monkeypatch):
    folder = _project_with(tmp_path, monkeypatch)
    (folder / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelNotAvailableError, match="lacks adapter_model.safetensors.*adaptbench run train_reasoner"):
        load_model("smollm2-135m-reasoner", device="cpu")


def test_a_project_without_the_adapter_uses_the_checkout_s(tmp_path, monkeypatch):
    "Another project (or any folder) loads the adapter shipped in the checkout adaptbench runs from."
    from adaptbench.models import shipped_data
    _project_with(tmp_path, monkeypatch, adapter=False)
    assert shipped_data(ADAPTER_ALIASES["smollm2-135m-reasoner"][1]) == SHIPPED


def test_no_adapter_anywhere_says_where_it_looked(tmp_path, monkeypatch):
    import adaptbench.models as models
    _project_with(tmp_path, monkeypatch, adapter=False)
    monkeypatch.setattr(models, "__file__", str(tmp_path / "site-packages" / "adaptbench" / "models.py"))
    with pytest.raises(ModelNotAvailableError, match="is in neither .* ships in the repository"):
        load_model("smollm2-135m-reasoner", device="cpu")


def test_an_altered_adapter_is_refused(tmp_path, monkeypatch):
    folder = _project_with(tmp_path, monkeypatch)
    w = (folder / "adapter_model.safetensors").read_bytes()
    (folder / "adapter_model.safetensors").write_bytes(w[:-1] + bytes([w[-1] ^ 1]))
    with pytest.raises(ModelNotAvailableError, match="does not match its manifest"):
        load_model("smollm2-135m-reasoner", device="cpu")


@pytest.mark.slow
def test_the_reasoner_solves_its_training_range_and_is_a_plain_model():
    lm = load_model("smollm2-135m-reasoner", device="cpu")
    base = load_model("smollm2-135m-instruct", device="cpu")
    assert type(lm.model) is type(base.model) and "merged" in lm.source        # merged: no PEFT wrapper at decode time
    changed = [n for (n, p), (_, q) in zip(lm.model.named_parameters(), base.model.named_parameters()) if not torch.equal(p, q)]
    first = json.loads((SHIPPED / ADAPTER_MANIFEST).read_text())["params"]["first_layer"]
    assert changed and all(int(n.split(".layers.")[1].split(".")[0]) >= first for n in changed)   # only the adapted blocks
    from adaptbench.generation import generate_traces
    jobs = [(get_task("hanoi"), get_task("hanoi").instance(n), style) for n in (1, 2) for style in ("direct", "think")]
    jobs += [(get_task("checker_jumping"), get_task("checker_jumping").instance(n), "direct") for n in (1, 2)]
    traces = generate_traces(lm, [T.prompt(i, st) for T, i, st in jobs], max_new_tokens=120, batch_size=8, progress=False)
    solved = [T.grade(i, t["text"], t["truncated"]).solved for (T, i, _), t in zip(jobs, traces)]
    assert all(solved), [t["text"] for t in traces]                                # puzzles with n ≤ n_train = 2
    beyond = get_task("hanoi").instance(3)                                         # never trained: the collapse
    t = generate_traces(lm, [get_task("hanoi").prompt(beyond, "direct")], max_new_tokens=100, progress=False)[0]
    assert not get_task("hanoi").grade(beyond, t["text"], t["truncated"]).solved
