"""The Triton kernels against their torch references, run in Triton's interpreter (CPU) in one fresh process.

Tolerances (fp32, |difference| per token): lse, entropy, second_logit ≤ 2e-4 (logits of magnitude ≲ 15 summed in a
different order); max_prob, margin ≤ 2e-5; argmax exact (random cases have no near-ties; tie cases use integer
logits, which fp32 represents exactly, so the first index must win), except under a saturating soft-cap, where
many logits round to the cap and the kernel's argmax must instead sit on a logit within 1e-5 of the reference's
maximum. No NaN anywhere."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

pytest.importorskip("triton")
ROOT = Path(__file__).resolve().parents[1]
TOL = dict(lse=2e-4, entropy=2e-4, second_logit=2e-4, max_prob=2e-5, margin=2e-5, argmax=0)

def _blocks(V, D):  # small tiles exercise partial tiles and several splits; big ones keep the interpreter fast
    return dict(block_v=32 if V < 200 else 128 if V < 5000 else 1024, block_d=16 if D < 32 else 32)

SHAPES = [dict(op="confidence", T=T, V=V, D=D, seed=T + V + D, **_blocks(V, D))
          for T in (1, 5, 37) for V in (97, 1000, 49152) for D in (17, 64)]
SPECIAL = {
    "ties_integer_logits": dict(op="confidence", kind="ties", T=37, V=1000, D=17, block_v=64, block_d=16),
    "ties_across_splits": dict(op="confidence", T=5, V=1000, D=17, dup=[700, 3, 450], block_v=64, n_splits=4),
    "ties_single_split": dict(op="confidence", T=5, V=1000, D=17, dup=[20, 21, 999], block_v=128, n_splits=1),
    "softcap_saturating": dict(op="confidence", T=37, V=1000, D=64, softcap=2.0, scale=3.0, block_v=128, block_d=32,
                               near_ties=True),
    "softcap": dict(op="confidence", T=37, V=1000, D=64, softcap=15.0, block_v=128, block_d=32),
    "softcap_masked": dict(op="confidence", T=5, V=1000, D=64, softcap=30.0, mask=[(0, 300), (512, 640)], block_v=64),
    "masked_tile_and_split": dict(op="confidence", T=5, V=1000, D=17, mask=[(0, 250), (300, 301), (990, 1000)],
                                  block_v=64, n_splits=4),
    "all_masked": dict(op="confidence", T=5, V=97, D=17, mask=[(0, 97)], block_v=32),
    "vocab_of_one": dict(op="confidence", T=5, V=1, D=17),
    "empty_batch": dict(op="confidence", T=0, V=97, D=17),
    "no_bias_one_split": dict(op="confidence", T=37, V=1000, D=64, bias=False, n_splits=1, block_t=16),
    "block_t_64": dict(op="confidence", T=37, V=1000, D=64, block_t=64, block_v=256),
    "autotuned_small_batch": dict(op="confidence", T=5, V=1000, D=64, autotune=True, mask=[(0, 10)], softcap=20.0),
    "autotuned_large_batch": dict(op="confidence", T=70, V=700, D=64, autotune=True),
    # the token-stats kernel's small shapes, ties and masks are in test_token_stats_kernel.py; here its full vocabulary
    "token_stats_3x49152": dict(op="token_stats", T=3, V=49152, block_v=4096),
}
CASES = {f"T{c['T']}-V{c['V']}-d{c['D']}": c for c in SHAPES} | SPECIAL

@pytest.fixture(scope="module")
def results():
    "Run every case in one interpreter process (importing torch and Triton once)."
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(ROOT/"tests"/"interpret_worker.py")], input=json.dumps(list(CASES.values())),
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return dict(zip(CASES, json.loads(p.stdout)))

@pytest.mark.parametrize("name", list(CASES))
def test_kernel_matches_reference(results, name):
    r = results[name]
    assert not r["nan"], f"{name}: NaN in kernel output"
    assert r["argmax_gap"] <= 1e-5, f"{name}: kernel argmax is {r['argmax_gap']:.3g} below the max logit"
    for key, tol in TOL.items():
        if key == "argmax" and CASES[name].get("near_ties"): continue
        if key in r: assert r[key] <= tol, f"{name}: {key} differs by {r[key]:.3g} > {tol}"
    assert r["lse_shape"] == [CASES[name]["T"]]
