#!/usr/bin/env bash
# The main job: set up (once), then run the reasoning-collapse study on the trained model organism
# `smollm2-135m-reasoner` (SmolLM2-135M-Instruct + the shipped LoRA adapter in data/reasoner; CPU, ≤ 10 minutes on
# 2 cores): Tower of Hanoi and Checker Jumping, n = 1–4, both modes, 8 samples per (task, n, mode); add
# `-p tasks hanoi,checker_jumping,addition -p arithmetic_n_max 4` for the arithmetic family (about 3 minutes more).
# Prints where the figures are and a plain-language summary of what the curves show.
# Extra arguments override these defaults, e.g. `tools/main.sh -p model smollm2-135m-instruct` (the untrained base
# model) or `tools/main.sh -p model Qwen/Qwen3-1.7B -p native_thinking true -p budget 8192` (a reasoning model on a GPU).
source "$(dirname "$0")/setup.sh"
start=$(date +%s)
log=$(mktemp); trap 'rm -f "$log"' EXIT
defaults=(model smollm2-135m-reasoner tasks hanoi,checker_jumping n_max 4 instances_per_n 2 samples 4 budget 320
          temperature 0.7 batch_size 8 threads "${ADAPTBENCH_THREADS:-2}")
given=" $* "
args=()
for ((i = 0; i < ${#defaults[@]}; i += 2)); do          # a default the caller sets with -p NAME is left to the caller
  [[ "$given" == *" -p ${defaults[i]} "* ]] || args+=(-p "${defaults[i]}" "${defaults[i+1]}")
done
adaptbench run reasoning_collapse "${args[@]}" "$@" | tee "$log"
status=${PIPESTATUS[0]}
[ "$status" -eq 0 ] || exit "$status"
dir=$(grep -m1 -oE "(outputs|folder): *[^ ]+" "$log" | awk '{print $2}')
if [ -n "$dir" ] && [ -d "$dir" ]; then
  echo; echo "== figures"; ls -1 "$dir"/figures/*.png
  if [ -f "$dir/summary.txt" ]; then echo; echo "== what the curves show"; fold -s -w 118 "$dir/summary.txt"; fi
fi
echo; echo "main job wall time: $(( $(date +%s) - start )) s"
