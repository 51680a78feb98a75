"""The decoding cost model (adaptbench.costmodel) on hand-countable cases, its scaling laws, and its errors.

The notebook nbs/09a_costmodel.ipynb holds the worked toy and the figures; these tests add properties that must hold
for any shape (batch and step linearity, scheme equivalences) and check the committed benchmark tables parse."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from adaptbench.core import AdaptbenchError
from adaptbench.costmodel import (H200, SCHEMES, CostModelError, Device, ModelShape, bench_vs_model, decoding_cost,
                                  head_cost, kernel_table_vs_model, roofline_time)

ROOT = Path(__file__).resolve().parents[1]
SMOL = ModelShape(n_layers=30, hidden_size=576, n_heads=9, n_kv_heads=3, intermediate_size=1536, vocab_size=49152,
                  name="smollm2-135m")
LLAMA8 = ModelShape(n_layers=32, hidden_size=4096, n_heads=32, n_kv_heads=8, intermediate_size=14336,
                    vocab_size=128256, tie_embeddings=False, name="llama-3-8b")
TOY = ModelShape(n_layers=1, hidden_size=4, n_heads=2, n_kv_heads=1, intermediate_size=8, vocab_size=10)


def test_parameter_counts_by_hand():
    assert SMOL.n_params == 134_515_008                                  # sum of SmolLM2-135M's tensors
    assert LLAMA8.n_params == 8_030_261_248                              # Meta-Llama-3-8B's published count
    assert LLAMA8.params_read == LLAMA8.n_params - 128256 * 4096         # untied embedding table only gathered
    assert (TOY.layer_matmul_params, TOY.params_read) == (144, 196)


def test_one_layer_toy_decode_step_by_hand():
    # P = 3, one generated token (context 4), batch 1, bf16; see the notebook's "A hand-counted toy"
    r = decoding_cost(TOY, "ar_decode", 3, 1, device=Device("toy", 100.0, 100.0)).iloc[0]
    assert (r.flops, r.attn_flops) == (2 * 144 + 2 * 40 + 4 * 4 * 4, 4 * 4 * 4)
    assert (r.bytes_weights, r.bytes_kv, r.bytes_act, r.bytes_logits) == (392, 32, 184, 20)
    assert r.time_s == pytest.approx(max(3.68, 5.80) + max(0.64, 0.48))


def test_ar_decode_intensity_is_one_flop_per_byte_in_bf16():
    for shape in (SMOL, LLAMA8):
        r = decoding_cost(shape, "ar_decode", 1, 1).iloc[0]
        assert r.flops / (2 * shape.params_read) == pytest.approx(1, abs=0.01)   # 2 FLOPs per parameter read
        assert r.bytes_weights == 2 * shape.params_read                          # 2 bytes per parameter
        assert r.intensity == pytest.approx(1, abs=0.05)
        assert decoding_cost(shape, "ar_decode", 1, 1, dtype_bytes=4).intensity.iloc[0] == pytest.approx(0.5, abs=0.03)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_batch_multiplies_everything_but_the_weights(scheme):
    kw = dict(block=8) if scheme.startswith("block") else {}
    d = decoding_cost(SMOL, scheme, 64, 32, [1, 3], **kw)
    assert d.flops[1] == pytest.approx(3 * d.flops[0])
    assert d.bytes_weights[1] == d.bytes_weights[0]
    assert (d.bytes - d.bytes_weights)[1] == pytest.approx(3 * (d.bytes - d.bytes_weights)[0])


def test_monotone_in_batch_and_context():
    ar = decoding_cost(LLAMA8, "ar_decode", 512, 64, 2 ** np.arange(9))
    assert np.all(np.diff(ar.intensity) > 0)
    ctx = [64, 256, 1024, 4096]
    step = decoding_cost(SMOL, "diffusion", ctx, 64, steps=1)                   # one denoising step
    assert np.all(np.diff(step.flops) > 0) and np.all(np.diff(step.bytes) > 0)
    t = decoding_cost(LLAMA8, "diffusion", ctx, 64, steps=1, device=H200).time_s
    assert np.all(np.diff(t) > 0)


def test_diffusion_is_linear_in_steps_and_schemes_agree_on_edge_cases():
    one, four = (decoding_cost(SMOL, "diffusion", 100, 20, steps=s).iloc[0] for s in (1, 4))
    assert four.flops == pytest.approx(4 * one.flops) and four.bytes == pytest.approx(4 * one.bytes)
    # one block covering the whole generation, no cache, equals full-sequence diffusion but for the prompt's pairs:
    # causal (100·101/2) instead of attending to all 120 positions
    blk = decoding_cost(SMOL, "block_diffusion", 100, 20, block=20, steps=4).iloc[0]
    assert blk.flops - four.flops == pytest.approx(-4 * 4 * SMOL.n_layers * SMOL.q_dim * (100 * 120 - 100 * 101 / 2))
    assert blk.bytes == pytest.approx(four.bytes)
    # a cached block of one position with one step per block is AR decode with logits for that position
    cached = decoding_cost(SMOL, "block_diffusion_cached", 100, 20, block=1, steps=1).iloc[0]
    ar = decoding_cost(SMOL, "ar_decode", 100, 20).iloc[0]
    assert cached.flops == pytest.approx(ar.flops) and cached.bytes == pytest.approx(ar.bytes)
    # include_prefill adds exactly the prefill
    pre = decoding_cost(SMOL, "prefill", 100).iloc[0]
    both = decoding_cost(SMOL, "ar_decode", 100, 20, include_prefill=True).iloc[0]
    assert both.flops == pytest.approx(ar.flops + pre.flops) and both.forwards == 21


def test_roofline_and_head_cost():
    f, b = head_cost(1, 576, 49152)
    assert f == 2 * 576 * 49152 and b == 2 * (576 * 49152 + 576)
    assert roofline_time(f, b, H200) == pytest.approx(b / 4.8e12)            # memory-bound at one token
    f, b = head_cost(4096, 4096, 152064)
    assert roofline_time(f, b, H200) == pytest.approx(f / 989e12)            # compute-bound at 4096


def test_committed_cpu_benchmark_parses():
    csv = ROOT / "data" / "bench" / "decoding_cost_cpu.csv"
    df = bench_vs_model(csv, SMOL)
    assert set(df.kind) == {"prefill", "decode", "block_step"} and np.all(np.isfinite(df.ratio)) and np.all(df.ratio > 0)
    assert {"threads", "load", "load_start"} <= set(df.columns)


def test_kernel_table_on_the_roofline():
    table = pd.DataFrame(dict(T=[1, 4096], d=[576, 4096], V=[49152, 152064], median_ms=[0.25, 12.4],
                              status=["ok", "ok"]))
    out = kernel_table_vs_model(table)
    assert out.predicted_ms.iloc[0] == pytest.approx(2 * (576 * 49152 + 576) / 4.8e12 * 1e3)
    assert out.ratio.iloc[1] == pytest.approx(12.4 / (2 * 4096 * 4096 * 152064 / 989e12 * 1e3))


@pytest.mark.parametrize("make, field", [
    (lambda: ModelShape.from_hf({"hidden_size": 64, "num_attention_heads": 4, "intermediate_size": 128,
                                 "vocab_size": 100}), "num_hidden_layers"),
    (lambda: ModelShape(2, -64, 4, 2, 128, 100), "hidden_size"),
    (lambda: ModelShape(2, 64, 4, 2, 128, 1.5), "vocab_size"),
    (lambda: decoding_cost(TOY, "ar_decode", 4, 0), "gen_len"),
    (lambda: decoding_cost(TOY, "block_diffusion", 4, 8, block=9), "block=9 is larger"),
    (lambda: decoding_cost(TOY, "prefill", 4, n_logits=5), "n_logits"),
    (lambda: decoding_cost(TOY, "ar_decode", 4, 4, steps=2), "steps/block"),
    (lambda: Device("bare", None, None), "peak_flops"),
    (lambda: Device("no-bw", 1e12, float("nan")), "bandwidth"),
    (lambda: bench_vs_model(pd.DataFrame(dict(kind=["decode"])), TOY), "lacks columns"),
])
def test_bad_input_names_the_field(make, field):
    with pytest.raises(CostModelError, match=field) as e: make()
    assert isinstance(e.value, AdaptbenchError) and isinstance(e.value, ValueError)
