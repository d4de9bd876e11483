#!/usr/bin/env bash
# The main job on the bundled default model (stories260K, llama2.c format, MIT): set up, build,
# and run the whole pipeline on this machine's CPU (configs/runs/stories260k-cpu.yaml):
# importance -> calibrated latency table -> joint search under a decode budget of 0.6x ->
# distillation finetune -> export -> measured latency and perplexity against the original.
# Prints a summary table and writes runs/stories260k-cpu/{summary.md,report.svg}. A second run
# skips the finished stages; Ctrl-C checkpoints and a rerun resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build -j "$(nproc)" --target jointnas
J=build/tools/jointnas/jointnas
for TEXT in tinystories_train_head.txt tinystories_val_head.txt; do
  TEXT="${JNAS_SHARED_DIR:-../shared}/data/text/tinystories/$TEXT"
  if [ ! -f "$TEXT" ]; then
    echo "error: $TEXT not found: the pipeline trains on the TinyStories training head and evaluates on the validation head (set JNAS_SHARED_DIR to the shared data folder)" >&2
    exit 3
  fi
done
$J run configs/runs/stories260k-cpu.yaml
echo "== a sample from the compressed model (greedy, 64 tokens)"
$J generate --model runs/stories260k-cpu/model --prompt "Once upon a time" --max-new-tokens 64
