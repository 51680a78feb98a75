#!/usr/bin/env bash
# The main job: set up (once), then run the reasoning-collapse study at its quick scale on the shipped
# SmolLM2-135M-Instruct (CPU, ≤ 10 minutes on 2 cores) and say where its figures are.
# Extra arguments override the quick scale, e.g. `tools/main.sh -p model Qwen/Qwen3-1.7B -p native_thinking true`.
source "$(dirname "$0")/setup.sh"
start=$(date +%s)
adaptbench run reasoning_collapse -p model smollm2-135m-instruct -p n_max 5 -p samples 2 -p budget 80 \
  -p threads "${ADAPTBENCH_THREADS:-2}" "$@"
echo "main job wall time: $(( $(date +%s) - start )) s"
