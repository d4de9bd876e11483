#!/usr/bin/env bash
# Issue 7, acceptance 1 on the full splits: lm-eval 0.4.13 and `jointnas eval tasks`, both fp32 on
# one GPU, every item of the 8 task configs, for ref-17m and the `jointnas convert` HF directory
# of stories260K. One GPU-machine call (docs/eval.md, "Full splits"):
#   DEADLINE=540 bash scripts/lm_eval_parity_gpu.sh     # results under $OUT (default ./out-parity)
# Expects .dev-eval/ (ignored; docs/eval.md says how it is made): tasks.tar.xz (the task data),
# site.tar.xz (lm-eval and the pure-Python packages the machine lacks, unpacked wheels),
# sysroot.tar.xz (the Debian libraries the build needs), shared/models/{ref-17m,stories260K}, and
# optionally bin/jointnas.xz (a CUDA build of this tree from an earlier call, to skip the build).
# lm-eval is bound by Python on the host, not by the GPU: it runs as one process per task group,
# side by side. Every step stops at DEADLINE seconds after the start, and what is done by then
# (lm-eval saves MMLU subject by subject) is compared and packed into $OUT/parity_results.tar.xz.
set -uo pipefail
OUT="${OUT:-$PWD/out-parity}"
mkdir -p "$OUT"
E="${JNAS_EVAL_DIR:-$PWD/.dev-eval}"
W=/tmp/parity
mkdir -p "$W"
T0=$(date +%s)
DEADLINE="${DEADLINE:-540}"
left() { local s=$(( DEADLINE - ($(date +%s) - T0) )); echo $(( s > 1 ? s : 1 )); }
stamp() { echo "== +$(( $(date +%s) - T0 ))s $*"; }
exec > >(tee -a "$OUT/parity.log") 2>&1
stamp "$(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"

mkdir -p "$E/shared/data"
tar xJf "$E/tasks.tar.xz" -C "$E/shared/data" && tar xJf "$E/site.tar.xz" -C "$W" && \
  tar xJf "$E/sysroot.tar.xz" -C "$W" || { echo "unpack failed"; exit 1; }
export PYTHONPATH="$W/site" PYTHONUNBUFFERED=1 HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1
SHARED="$E/shared"
GROUPS_=("hellaswag" "mmlu" "mmlu_5shot" "boolq,piqa,winogrande" "arc_easy,arc_challenge")
MODELS="${MODELS:-ref-17m stories260K}"
COMMON=(--shared "$SHARED" --limit 0 --mmlu-limit 0 --device cuda --batch 64)
PIDS=()

SR="$W/sysroot"
sed -i "s|^prefix=.*|prefix=$SR/usr|" "$SR"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
export LD_LIBRARY_PATH="$SR/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
J="$W/jointnas"
if [ -f "$E/bin/jointnas.xz" ]; then
  xz -dc "$E/bin/jointnas.xz" > "$J" && chmod +x "$J"
else
  export PKG_CONFIG_PATH="$SR/usr/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  cmake -S . -B build-parity -G Ninja -DCMAKE_BUILD_TYPE=Release -DJNAS_WITH_CUDA=ON -DJNAS_BUILD_TESTS=OFF \
    -DCMAKE_PREFIX_PATH="$SR/usr" -DPython3_EXECUTABLE="$(command -v python3)" > "$W/cmake.log" 2>&1 \
    || tail -30 "$W/cmake.log"
  timeout -k 5 "$(left)" ninja -C build-parity -j16 jointnas > "$W/build.log" 2>&1 \
    || grep -E "error|FAILED" "$W/build.log" | head -40
  cp build-parity/tools/jointnas/jointnas "$J"
fi
ls -la "$J"
export STORIES_HF_DIR="$W/stories260K-hf"
"$J" convert -m "$SHARED/models/stories260K/stories260K.bin" -o "$STORIES_HF_DIR" --format json > /dev/null
python3 -c "import torch, transformers, lm_eval, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'lm_eval', lm_eval.__version__, 'datasets', datasets.__version__)"

for m in $MODELS; do  # lm-eval: one background process per task group
  for g in "${GROUPS_[@]}"; do
    tag="${m}_${g//,/+}"
    HF_DATASETS_CACHE="$W/hfds_$tag" timeout -k 5 "$(left)" python3 scripts/lm_eval_parity.py --model "$m" \
      "${COMMON[@]}" --tasks "$g" --only lm-eval --save "$W/lm_eval_$tag.json" > "$W/lm_eval_$tag.log" 2>&1 &
    PIDS+=($!)
  done
done
stamp "lm-eval started: ${#PIDS[@]} processes"
( for m in $MODELS; do  # ours: one process, the tasks one after another
    timeout -k 5 "$(left)" python3 scripts/lm_eval_parity.py --model "$m" "${COMMON[@]}" --binary "$J" \
      --only ours --save "$W/ours_$m.json" > "$W/ours_$m.log" 2>&1
    stamp "ours $m rc $?"
  done ) &
PIDS+=($!)
while true; do  # progress once a minute, until every process is gone or the deadline + 10 s
  sleep 10
  alive=0; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
  [ "$alive" = 0 ] && break
  (( $(date +%s) - T0 > DEADLINE + 10 )) && { stamp "deadline: $alive processes left"; break; }
  if (( ($(date +%s) - T0) % 60 < 10 )); then
    stamp "$alive running"
    for f in "$W"/lm_eval_*.log; do
      echo "  $(basename "$f"): $(tr '\r' '\n' < "$f" | grep -E "it/s|s/it" | tail -1 | cut -c1-110)"
    done
  fi
done
for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
stamp "compare"
for m in $MODELS; do
  for g in "${GROUPS_[@]}"; do
    tag="${m}_${g//,/+}"
    grep -E "failed|Error|error" "$W/lm_eval_$tag.log" | grep -v -i "warn" | tail -3 | sed "s/^/[lm_eval_$tag] /"
    [ -f "$W/lm_eval_$tag.json" ] && [ -f "$W/ours_$m.json" ] && \
      timeout 60 python3 scripts/lm_eval_parity.py --model "$m" "${COMMON[@]}" --tasks "$g" \
        --lm-eval-from "$W/lm_eval_$tag.json" --ours-from "$W/ours_$m.json" --report "$W/report_$tag.json"
  done
  grep -E "error|exceeds" "$W/ours_$m.log" | tail -3 | sed "s/^/[ours_$m] /"
done
(cd "$W" && tar cf - *.json *.log 2>/dev/null | xz -6 -T8 > "$OUT/parity_results.tar.xz")
stamp "done"
