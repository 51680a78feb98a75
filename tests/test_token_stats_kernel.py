"""The token-stats Triton kernel, run by Triton's interpreter on the CPU, against its torch reference.

TRITON_INTERPRET must be set before Triton is imported, so the comparison runs in a fresh process.
Tolerance: 1e-5 absolute/relative in fp32 (the kernel accumulates blockwise, the reference in one reduction); NaN
exactly on rows with every logit masked (no information), in both.
"""
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

CHECK = r"""
import torch
from adaptbench.kernels.token_stats import token_stats_reference, token_stats_triton
torch.manual_seed(0)
cases = []
for T, V, block in [(1, 1, 16), (1, 97, 32), (5, 97, 16), (37, 1000, 256), (3, 4099, 1024)]:
    cases.append(torch.randn(T, V) * 4)
z = torch.randn(4, 300); z[:, 7] = 50.0; z[:, 201] = 50.0; cases.append(z)        # ties: first index wins
z = torch.randn(4, 300); z[0, 100:] = -float("inf"); z[1] = -float("inf"); z[2, :250] = -float("inf")
cases.append(z)                                                                     # masked columns and a dead row
cases.append(torch.randn(0, 50))                                                    # empty batch
for z in cases:
    for block in (16, 128):
        k, r = token_stats_triton(z, block_v=block), token_stats_reference(z)
        for key in r:
            assert torch.equal(torch.isnan(k[key].float()), torch.isnan(r[key].float())), key   # NaN only on dead rows
            torch.testing.assert_close(k[key], r[key], rtol=1e-5, atol=1e-5, equal_nan=True,
                                       msg=lambda m: f"{key} {tuple(z.shape)}: {m}")
z = torch.full((2, 3), float("-inf")); z[1, 1] = 0.0                               # the replayed report: every logit masked
k = token_stats_triton(z, block_v=16)
assert torch.isnan(k["entropy"][0]) and torch.isnan(k["max_prob"][0]) and k["lse"][0] == float("-inf")
assert k["entropy"][1] == 0.0 and k["max_prob"][1] == 1.0                          # one live logit: truly certain
print("ok", len(cases))
"""


def test_kernel_matches_reference_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    r = subprocess.run([sys.executable, "-c", CHECK], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok 8")
