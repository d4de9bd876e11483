#!/usr/bin/env bash
# The main job on the bundled default model (stories260K, llama2.c format, MIT): set up, build,
# inspect, convert to an HF directory, generate, and report perplexity.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build build -j "$(nproc)" --target jointnas
J=build/tools/jointnas/jointnas
MODEL=models/stories260K/stories260K.bin
OUTDIR=runs/demo
mkdir -p "$OUTDIR"
echo "== inspect"
$J inspect "$MODEL"
echo "== convert to an HF directory ($OUTDIR/stories260K-hf)"
$J convert --model "$MODEL" --out "$OUTDIR/stories260K-hf"
echo "== generate (greedy, 128 tokens, from the HF conversion)"
$J generate --model "$OUTDIR/stories260K-hf" --prompt "Once upon a time" --max-new-tokens 128
TEXT="${JNAS_SHARED_DIR:-../shared}/data/text/tinystories/tinystories_val_head.txt"
if [ -f "$TEXT" ]; then
  echo "== perplexity on TinyStories validation (first 200 windows of 257 tokens)"
  $J eval ppl --model "$OUTDIR/stories260K-hf" --text "$TEXT" --window 257 --max-windows 200
else
  echo "== perplexity skipped: $TEXT not found (set JNAS_SHARED_DIR to the shared data folder)"
fi
