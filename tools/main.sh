#!/usr/bin/env bash
# The main job: set up (once), then run the main study on the shipped SmolLM2 and say where its figures are.
source "$(dirname "$0")/setup.sh"
start=$(date +%s)
adaptbench run smoke "$@"
echo "main job wall time: $(( $(date +%s) - start )) s"
