#!/usr/bin/env bash
# Every test: notebooks export without drift and are clean, notebook tests (nbdev-test), the docs build
# check, and pytest. Set-up (venv, CPU torch, package, SmolLM2) happens on first use.
source "$(dirname "$0")/setup.sh"

echo "== notebooks are the source: export and clean reproduce the committed tree"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
git ls-files -co --exclude-standard -z | xargs -0 -I{} cp -P --parents {} "$tmp"
(cd "$tmp" && nbdev-export && nbdev-clean) >/dev/null
drift=$(for d in adaptbench kernels nbs; do diff -rq "$d" "$tmp/$d" | grep -v __pycache__ || true; done)
if [ -n "$drift" ]; then
  printf 'Exported modules or notebooks differ from a fresh nbdev-export / nbdev-clean:\n%s\n' "$drift" >&2
  echo "Run nbdev-export and nbdev-clean, then commit." >&2; exit 1
fi

echo "== notebook tests (nbdev-test)"
nbdev-test --n-workers 2 --timing

echo "== docs (no Quarto here: process the notebooks and check the rendered pages)"
# headless Chromium opens the rendered pages; install it where we can (Debian, as root), else the check says so
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "   (could not install chromium)"
fi
python tools/check_docs.py

echo "== pytest"
python -m pytest -q tests
