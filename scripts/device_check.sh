#!/usr/bin/env bash
# One GPU-machine call: build the CUDA path against the machine's own PyTorch 2.11, run the `cuda`
# (and `cpu`) tests, then the benchmarks (ours and transformers', same card, same call). Results
# and logs go to $OUT (default ./out). Expects the needed ../shared files copied to .dev/shared.
#   usage: bash scripts/device_check.sh [tests|bench|quant|fp8|supernet|search|searchtime|sanitize|pareto|cpuval|pdl|profile8b|w4|all]
set -uo pipefail
what="${1:-all}"
call_t0=$(date +%s)
OUT="${OUT:-$PWD/out}"
mkdir -p "$OUT"
# What travels packed (the 64 MiB limit of a call): .dev/sysroot.tar.xz and .dev/shared.tar.xz.
for a in sysroot shared; do
  [ -f ".dev/$a.tar.xz" ] && [ ! -d ".dev/$a" ] && tar -C .dev -xJf ".dev/$a.tar.xz"
done
SHARED="${JNAS_SHARED_DIR:-$PWD/.dev/shared}"
exec > >(tee -a "$OUT/device_check.log") 2>&1
echo "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
# The GPU machine has no package registry: libraries it lacks (pcre2, GTest, CLI11) travel as
# Debian packages unpacked into .dev/sysroot (see docs/benchmarks.md, "How the device runs").
PREFIX_ARGS=()
if [ -d .dev/sysroot ]; then
  SR="$PWD/.dev/sysroot"
  sed -i "s|^prefix=.*|prefix=$SR/usr|" "$SR"/usr/lib/x86_64-linux-gnu/pkgconfig/*.pc
  export PKG_CONFIG_PATH="$SR/usr/lib/x86_64-linux-gnu/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$SR/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  PREFIX_ARGS=(-DCMAKE_PREFIX_PATH="$SR/usr")
fi
if [ "$what" = sanitize ]; then
  # Issue 9: the ASan + UBSan build (CPU code only) and the `cpu` tests, on the machine's 16 cores.
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Release -DJNAS_SANITIZE=ON "${PREFIX_ARGS[@]}" \
    -DJNAS_SHARED_DIR="$SHARED" -DPython3_EXECUTABLE="$(command -v python3)" > "$OUT/cmake_asan.log" 2>&1 \
    || { tail -30 "$OUT/cmake_asan.log"; exit 1; }
  start=$(date +%s)
  ninja -C build-asan -j16 -k 0 > "$OUT/build_asan.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build_asan.log" | head -40; exit 1; }
  echo "== asan build ok ($(( $(date +%s) - start )) s)"
  source scripts/sanitizer_env.sh
  (cd build-asan && OMP_NUM_THREADS=1 ctest -L cpu --output-on-failure -j"${JNAS_CTEST_JOBS:-8}" --timeout 1800 > "$OUT/ctest_asan.log" 2>&1); rc=$?
  grep -E "tests passed|Failed|\*\*\*" "$OUT/ctest_asan.log" | head -40
  grep -B2 -A25 -E "ERROR: (Address|Leak)Sanitizer|runtime error:" "$OUT/ctest_asan.log" | head -150
  echo "== asan ctest rc $rc ($(( $(date +%s) - start )) s)"
  exit $rc
fi
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DJNAS_WITH_CUDA=ON -DJNAS_BUILD_BENCH=ON "${PREFIX_ARGS[@]}" \
  -DJNAS_SHARED_DIR="$SHARED" -DPython3_EXECUTABLE="$(command -v python3)" > "$OUT/cmake.log" 2>&1 \
  || { tail -30 "$OUT/cmake.log"; exit 1; }
ninja -C build-gpu -j16 -k 0 ${JNAS_TARGETS:-} > "$OUT/build.log" 2>&1 || { grep -E "error|FAILED" "$OUT/build.log" | head -40; exit 1; }
echo "== build ok"
if [ "$what" = cpuval ]; then
  # Issue 4, acceptance 2 (CPU part): ref-17m sub-architectures on the host CPU, one thread, the
  # CPU formats; the validation run twice (same seed) to show the measurement's own repeatability.
  J=build-gpu/tools/jointnas/jointnas; C="${JNAS_SHARED_DIR:-$PWD/.dev-pareto/shared}/models/ref-17m/config.json"
  S=configs/spaces/ref-17m-cpu.json; T="$OUT/table_ref17m_cpu.json"; th="${JNAS_CPU_THREADS:-1}"
  lscpu | grep -E "Model name|L3" | tee "$OUT/cpu.txt"
  t0=$(date +%s)
  $J profile --config "$C" --space $S --device cpu --threads "$th" --calibrate 8 --seed 3 -o "$T" 2> "$OUT/cpuval_profile.err" | tail -2
  for i in 1 2; do
    left=$(( ${JNAS_CALL_SECONDS:-590} - ($(date +%s) - call_t0) ))
    [ "$left" -lt 150 ] && { echo "== validation $i skipped: $left s left"; break; }
    $J profile --config "$C" --space $S --device cpu --threads "$th" --validate 32 --seed 21 -o "$T" \
      --validate-out "$OUT/cpuval_$i.json" 2> "$OUT/cpuval_$i.err" | tail -1
  done
  echo "== cpuval ($(( $(date +%s) - t0 )) s)"
  exit 0
fi
if [ "$what" = pdl ]; then
  # Issue 2, acceptance 3: the decode step with programmatic dependent launch (kernels/launch.h)
  # against serial launches, alternating processes on the same card; `cuda` tests first.
  (cd build-gpu && ctest -L cuda --output-on-failure -j4 > "$OUT/ctest.log" 2>&1); rc=$?
  grep -E "tests passed|Failed|\*\*\*|Programmatic" "$OUT/ctest.log" | head -20; echo "== ctest -L cuda rc $rc"
  J=build-gpu/tools/jointnas/jointnas
  for i in $(seq "${JNAS_BENCH_REPEAT:-2}"); do
    for mode in serial pdl; do
      extra=(); [ $mode = serial ] && extra=(--no-pdl)
      $J bench --config configs/llama-3.1-8b.json --random-weights --device cuda --contexts 128,2048 \
        --prefill 2048 --repeats 50 "${extra[@]}" --format json > "$OUT/bench_8b_${mode}_$i.json" 2>> "$OUT/bench.err"
      python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], j['programmatic_launch'], ' '.join(f\"ctx{r['context']} {r['ms']:.3f} ms x{r['ratio_to_floor']:.3f}\" for r in j['decode']), 'prefill', round(j['prefill'][0]['ms'],2))" \
        "$OUT/bench_8b_${mode}_$i.json" "$mode $i"
    done
  done
  for f in ${JNAS_PDL_FORMATS:-}; do
    for mode in serial pdl; do
      extra=(); [ $mode = serial ] && extra=(--no-pdl)
      $J bench --config configs/llama-3.1-8b.json --random-weights --device cuda --weight-format $f --contexts 128 \
        --repeats 30 "${extra[@]}" --format json 2>> "$OUT/bench.err" | python3 -c "import json,sys; j=json.load(sys.stdin); print('$f $mode', round(j['decode'][0]['ms'],3), 'x floor', round(j['decode'][0]['ratio_to_floor'],3))"
    done
  done
  rm -f "$OUT/cmake.log" "$OUT/build.log"
  exit 0
fi
if [ "$what" = ncu ]; then
  # Issue 2: each kernel of one CUDA-graph decode step of Llama-3.1-8B alone (Nsight Compute),
  # against the step's graph time: kernel time versus launch and dependency time.
  J=build-gpu/tools/jointnas/jointnas
  NCU=$(command -v ncu || ls /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
  b=(--config configs/llama-3.1-8b.json --random-weights --device cuda --contexts 128)
  step=$($J bench "${b[@]}" --repeats 50 --format json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)['decode'][0]['ms'])")
  "$NCU" --csv --print-units base --page raw --metrics gpu__time_duration.sum,launch__grid_size -k "regex:gemv|rms_norm|rope|decode_attn|silu" \
    $J bench "${b[@]}" --repeats 1 --warmup 1 --min-warmup-ms 0 --min-time-ms 0 > /tmp/ncu.csv 2> /tmp/ncu.err \
    || tail -5 /tmp/ncu.err
  python3 scripts/ncu_decode.py /tmp/ncu.csv auto "$step" | tee "$OUT/ncu_decode.txt"
  exit 0
fi
if [ "$what" = fp8 ]; then
  # Issue 3, fp8 at M = 2048: the `cuda` tests (producers that quantize, bitwise the unfused pair),
  # the micro benchmark (linear from codes, the producers), the 8B decode step and prefill per
  # format (the producers are in the runtime's block there).
  (cd build-gpu && ctest -L cuda --output-on-failure -j4 > "$OUT/ctest.log" 2>&1); rc=$?
  grep -E "tests passed|Failed|\*\*\*" "$OUT/ctest.log" | head -20; echo "== ctest -L cuda rc $rc"
  build-gpu/bench/quant_bench "${JNAS_QB_M:-1,2048}" > "$OUT/quant_bench.jsonl" 2> "$OUT/quant_bench.err"; echo "== quant_bench rc $?"
  python3 scripts/fp8_report.py "$OUT/quant_bench.jsonl"
  J=build-gpu/tools/jointnas/jointnas
  for f in bf16 fp8_e4m3 w8a8; do
    $J bench --config configs/llama-3.1-8b.json --random-weights --device cuda --weight-format $f --contexts 128 \
      --prefill 2048 --repeats 30 --format json > "$OUT/bench_8b_$f.json" 2>> "$OUT/bench.err"
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print('8B $f decode ctx128', round(j['decode'][0]['ms'],3), 'ms, prefill 2048', round(j['prefill'][0]['ms'],2), 'ms')" "$OUT/bench_8b_$f.json"
  done
  rm -f "$OUT/cmake.log" "$OUT/build.log"
  exit $rc
fi
if [ "$what" = w4 ]; then
  # Issue 3, acceptance 3: the int4 GEMV at M = 1 (pipelined kernel vs the register-staged ones):
  # its tests, the per-format micro benchmark (eager and in-graph times), and the Llama-3.1-8B
  # decode step with every linear in w4a16 and in bf16.
  (cd build-gpu && ctest -R "WoKernelsCuda|AqKernelsCuda|QuantLinearCuda" --output-on-failure -j4 > "$OUT/ctest_w4.log" 2>&1); rc=$?
  grep -E "tests passed|Failed|\*\*\*" "$OUT/ctest_w4.log" | head -20; echo "== ctest w4 rc $rc"
  build-gpu/bench/quant_bench > "$OUT/quant_bench.jsonl" 2> "$OUT/quant_bench.err"; echo "== quant_bench rc $?"
  python3 - "$OUT/quant_bench.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r.get("M") != 1 and not (r.get("M") == 2048 and r.get("format") in ("bf16", "fp8_e4m3", "w8a8")): continue
    name = f"M={r['M']} " + (r.get("format") or f"w4 variant {r['w4_variant']}")
    print(f"{r['N']}x{r['K']:<6} {name:22} eager {r['ms']*1e3:7.2f} us x{r['speedup_vs_bf16']:.2f}  graph "
          f"{r.get('graph_ms', 0)*1e3:7.2f} us x{r.get('graph_speedup_vs_bf16', 0):.2f}")
PY
  J=build-gpu/tools/jointnas/jointnas
  for f in bf16 w4a16_g128; do
    $J bench --config configs/llama-3.1-8b.json --random-weights --device cuda --weight-format $f --contexts 128 \
      --repeats 30 --format json 2>> "$OUT/bench.err" | python3 -c "import json,sys; j=json.load(sys.stdin); d=j['decode'][0]; print('decode 8B $f', round(d['ms'],3), 'ms, x floor', round(d['ratio_to_floor'],3))"
  done
  rm -f "$OUT/cmake.log" "$OUT/build.log"
  exit 0
fi
if [ "$what" = profile8b ]; then
  # Issue 4, acceptance 4: wall time to profile the default search space of Llama-3.1-8B (both
  # workloads, with calibration), then a validation of random architectures of that space.
  J=build-gpu/tools/jointnas/jointnas; C=configs/llama-3.1-8b.json; S=configs/spaces/llama-3.1-8b.yaml
  T="$OUT/table_8b_default.json"
  for w in decode prefill; do
    wl=(--workload decode --context 512); [ $w = prefill ] && wl=(--workload prefill --tokens 2048)
    t0=$(date +%s.%N)
    $J profile --config $C --space $S --device cuda "${wl[@]}" --calibrate 8 --seed 3 -o "$T" 2> "$OUT/profile_$w.err" | tail -2
    echo "== profile $w: $(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s wall (entries + calibration)"
    grep -E "eta|entries" "$OUT/profile_$w.err" | tail -1
  done
  for w in ${JNAS_VALIDATE:-decode prefill}; do
    wl=(--workload decode --context 512); [ $w = prefill ] && wl=(--workload prefill --tokens 2048)
    left=$(( ${JNAS_CALL_SECONDS:-590} - ($(date +%s) - call_t0) ))
    [ "$left" -lt 200 ] && { echo "== validation $w skipped: $left s left"; continue; }
    t0=$(date +%s)
    $J profile --config $C --space $S --device cuda "${wl[@]}" --validate "${JNAS_NVAL:-32}" --seed 21 -o "$T" \
      --validate-out "$OUT/val_8b_default_$w.json" 2> "$OUT/val_$w.err" | tail -2
    echo "== validation $w ($(( $(date +%s) - t0 )) s)"
  done
  rm -f "$OUT/cmake.log" "$OUT/build.log"
  exit 0
fi
if [ "$what" = pareto ]; then
  # Issue 8: the Pareto studies named in JNAS_STUDIES (configs/runs/pareto-*.yaml stems), each
  # stopped by SIGINT after JNAS_STUDY_SECONDS (it checkpoints; a rerun on a warm machine resumes).
  # The study directories come back without weights; charts: `jointnas pareto --report-only` here.
  # JNAS_CALL_SECONDS: the whole call's limit; each study stops in time to pack its archive.
  export JNAS_SHARED_DIR="$SHARED"
  J=build-gpu/tools/jointnas/jointnas; M="$JNAS_SHARED_DIR/models/ref-17m"
  if [ -n "${JNAS_BENCH_REPEAT:-}" ]; then
    # The latency noise floor of one model, bench run as separate processes. JNAS_BENCH_PLANS:
    # old (10 eager prefills after 2 warm-ups, no time floors), eager (time floors), graph (the
    # default: time floors and a CUDA graph).
    for i in $(seq "$JNAS_BENCH_REPEAT"); do
      for plan in ${JNAS_BENCH_PLANS:-eager graph}; do
        extra=()
        [ $plan = old ] && extra=(--min-warmup-ms 0 --min-time-ms 0 --no-cuda-graph)
        [ $plan = eager ] && extra=(--no-cuda-graph)
        $J bench --model "$M" --device cuda --contexts 512 --prefill 1024 --repeats 30 "${extra[@]}" --format json \
          > "$OUT/bench_repeat_${plan}_$i.json" 2>> "$OUT/bench_repeat.err"
        python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(sys.argv[2], 'decode', round(j['decode'][0]['ms'],4), 'prefill', round(j['prefill'][0]['ms'],4), 'samples', j['prefill'][0].get('samples'))" \
          "$OUT/bench_repeat_${plan}_$i.json" $plan
      done
    done
  fi
  if [ -n "${JNAS_PARETO_TESTS:-}" ]; then
    # The `cuda` tests first, alone on the card (they do not yield to the studies' timing lock).
    (cd build-gpu && ctest -L cuda --output-on-failure -j4 > "$OUT/ctest.log" 2>&1); rc=$?
    grep -E "tests passed|Failed|\*\*\*" "$OUT/ctest.log" | head -20; echo "== ctest -L cuda rc $rc"
  fi
  one_study() {  # one study, stopped by SIGINT in time for its archive
    local st=$1 t0 secs left rc
    t0=$(date +%s)
    secs="${JNAS_STUDY_SECONDS:-480}"
    if [ -n "${JNAS_CALL_SECONDS:-}" ]; then
      left=$(( JNAS_CALL_SECONDS - (t0 - call_t0) - 45 ))
      [ "$left" -lt "$secs" ] && secs=$left
      [ "$secs" -lt 30 ] && { echo "== $st skipped: $secs s left in this call"; return; }
    fi
    timeout -s INT -k 30 "$secs" $J pareto "configs/runs/$st.yaml" \
      > "$OUT/$st.stdout" 2> "$OUT/$st.stderr"; rc=$?
    echo "== $st rc $rc ($(( $(date +%s) - t0 )) s)"; grep -E "^\[|error" "$OUT/$st.stderr" | grep -E "pareto\]|failed|error" | tail -15
    # One archive: the device returns no deep folders.
    (cd runs && tar --exclude='*.safetensors' --exclude='checkpoint' --exclude='*.model' --exclude='*.vocab' -czf "$OUT/$st.tgz" "$st")
  }
  # JNAS_STUDIES_PARALLEL=1: the studies side by side (their latency timings take turns through the
  # machine-wide timing lock, and every training loop pauses while one times); else one by one.
  # (Wait for the studies by pid: a bare `wait` also waits for the `tee` of the log above, forever.)
  pids=()
  for st in ${JNAS_STUDIES:-pareto-ref17m-gpu-decode}; do
    if [ -n "${JNAS_STUDIES_PARALLEL:-}" ]; then one_study "$st" & pids+=($!); else one_study "$st"; fi
  done
  for p in "${pids[@]}"; do wait "$p"; done
  exit 0
fi
if [ "$what" = searchtime ]; then
  # Issue 22, acceptance 5: one joint search of ref-17m alone on the GPU (no stage beside it), with
  # a finished study's table, permuted model and scores (run `pareto` first on the same warm
  # machine): DNAS only (the search before issue 22), the portfolio without the screen, and the
  # default (screen on). Wall time of each, and the arch.json selection records.
  export JNAS_SHARED_DIR="$SHARED"
  J=build-gpu/tools/jointnas/jointnas; R="runs/${JNAS_STUDY:-pareto-ref17m-gpu-decode}"
  common=(--model "$R/permuted" --device cuda --target-device cuda --space configs/spaces/ref-17m.yaml
    --table "$R/table.json" --text "$SHARED/data/text/wikitext2/wikitext2_train_5k.txt"
    --importance "$R/permuted/importance.json" --scores "$R/scores.json" --workload decode --batch 1 --context 512
    --steps 80 --train-batch 8 --seq-len 128 --lora-rank 8 --lr-arch 0.1 --entropy-weight 2 --checkpoint-every 20
    --seed 0 --format json)
  for b in ${JNAS_SEARCH_BUDGETS:-0.644x}; do
    for v in ${JNAS_SEARCH_VARIANTS:-dnas all screen}; do
      extra=()
      [ "$v" = dnas ] && extra=(--select dnas)
      [ "$v" = all ] && extra=(--finalists 0)
      d="$OUT/searchtime/$b-$v"; rm -rf "$d"; mkdir -p "$d"
      t0=$(date +%s.%N)
      $J search "${common[@]}" --latency "$b" --out "$d" "${extra[@]}" > "$d/stdout.json" 2> "$d/stderr.txt"; rc=$?
      t1=$(date +%s.%N)
      rm -rf "$d/checkpoint"
      python3 - "$d/arch.json" "$b" "$v" "$rc" "$t0" "$t1" <<'PY'
import json, sys
path, b, v, rc, t0, t1 = sys.argv[1:]
wall = float(t1) - float(t0)
sel = {}
try:
    sel = json.load(open(path)).get("selection", {})
except Exception as e:
    sel = {"error": str(e)}
print(f"== search {b} {v}: rc {rc}, {float(wall):.1f} s, winner {sel.get('winner')}, "
      f"screened out {[c['name'] for c in sel.get('candidates', []) if c.get('screened_out')]}")
PY
    done
  done
  exit 0
fi
if [ "$what" = tests ] || [ "$what" = all ]; then
  (cd build-gpu && ctest -L "${JNAS_CTEST_LABEL:-cuda|cpu}" --output-on-failure -j4 > "$OUT/ctest.log" 2>&1); rc=$?
  tail -15 "$OUT/ctest.log"; echo "== ctest rc $rc"
  grep -h "argmax agreement" "$OUT/ctest.log"
  [ -z "${JNAS_QUICK:-}" ] && [ -f "$SHARED/models/ref-17m/golden_logits.safetensors" ] && \
    python3 scripts/bf16_agreement.py "$SHARED" 2>/dev/null | tee "$OUT/bf16_agreement.json"
fi
if [ "$what" = bench ] || [ "$what" = all ]; then
  J=build-gpu/tools/jointnas/jointnas
  build-gpu/bench/linear_bench > "$OUT/linear_bench.jsonl"; cat "$OUT/linear_bench.jsonl"
  $J bench --config configs/llama-3.1-8b.json --random-weights --device cuda \
    --contexts 128,2048 --prefill 2048 --repeats 50 --format json > "$OUT/bench_8b.json"
  $J bench --config configs/llama-3.1-8b.json --random-weights --device cuda \
    --contexts 128 --repeats 30 --no-cuda-graph --format json > "$OUT/bench_8b_eager.json"
  python3 scripts/bench_transformers.py --contexts 128,2048 --prefill 2048 > "$OUT/bench_transformers.json"
  python3 - "$OUT" <<'PY'
import json, sys
o = sys.argv[1]
ours = json.load(open(f"{o}/bench_8b.json")); eager = json.load(open(f"{o}/bench_8b_eager.json"))
hf = json.load(open(f"{o}/bench_transformers.json"))
print(f"copy bandwidth {ours['copy_bandwidth_gb_s']:.0f} GB/s on {hf['device']}")
for r in ours["decode"]:
    t = next(x["ms"] for x in hf["transformers_decode"] if x["context"] == r["context"])
    print(f"decode ctx {r['context']}: ours {r['ms']:.3f} ms (floor {r['floor_ms']:.3f}, x{r['ratio_to_floor']:.3f}) | transformers {t:.3f} ms | speed-up {t / r['ms']:.2f}x")
print(f"eager decode ctx 128: {eager['decode'][0]['ms']:.3f} ms")
for r in ours["prefill"]:
    t = next(x["ms"] for x in hf["transformers_prefill"] if x["tokens"] == r["tokens"])
    print(f"prefill {r['tokens']}: ours {r['ms']:.2f} ms | transformers {t:.2f} ms")
PY
fi
if [ "$what" = quant ] || [ "$what" = all ]; then
  # Issue 3: per-format linear micro benchmark, ref-17m perplexity per format (RTN, GPTQ), and the
  # Llama-3.1-8B decode step / prefill with every linear in each format.
  J=build-gpu/tools/jointnas/jointnas
  build-gpu/bench/quant_bench > "$OUT/quant_bench.jsonl" 2> "$OUT/quant_bench.err"; echo "== quant_bench rc $?"
  M="$SHARED/models/ref-17m"; T="$SHARED/data/text/wikitext2/wiki.test.raw"
  C="$SHARED/data/text/wikitext2/wikitext2_train_5k.txt"; Q=/tmp/jnas_q; mkdir -p "$Q"
  $J eval ppl -m "$M" --text "$T" --device cuda --format json > "$OUT/ppl_bf16.json" 2>> "$OUT/quant.err"
  for f in w8a16 w4a16_g128 w8a8 fp8_e4m3; do
    for meth in rtn gptq; do
      if [ $meth = gptq ] && [ $f != w8a16 ] && [ $f != w4a16_g128 ]; then continue; fi
      calib=(); [ $meth = gptq ] && calib=(--calib "$C")
      $J quantize -m "$M" --format $f --method $meth "${calib[@]}" --device cuda -o "$Q/$f-$meth" \
        --output json > "$OUT/quantize_${f}_$meth.json" 2>> "$OUT/quant.err"
      $J eval ppl -m "$Q/$f-$meth" --text "$T" --device cuda --format json > "$OUT/ppl_${f}_$meth.json" 2>> "$OUT/quant.err"
    done
  done
  for f in bf16 w8a16 w4a16_g128 w8a8 fp8_e4m3; do
    $J bench --config configs/llama-3.1-8b.json --random-weights --device cuda --weight-format $f \
      --contexts 128 --prefill 2048 --repeats 30 --format json > "$OUT/bench_8b_$f.json" 2>> "$OUT/quant.err"
  done
  python3 scripts/quant_report.py "$OUT"
fi
if [ "$what" = supernet ]; then
  # Issue 5: supernet step at Llama-3.1-8B shapes (4 x 2048 tokens, soft probabilities, LoRA 16).
  S=build-gpu/bench/supernet_bench; C=configs/llama-3.1-8b.json; Y=configs/spaces/llama-3.1-8b.yaml
  # The baselines at 2 layers (loop and dense_mask do not fit 32), same space without the depth choice.
  sed '/depth:/d' $Y > /tmp/space_2layers.yaml
  build-gpu/tests/search/search_test --gtest_filter='HeadLoss*' 2>&1 | tail -3
  build-gpu/tests/search/search_cuda_test 2>&1 | grep -E "OK|FAILED|Failure|error|worst" | head -20
  $S $C /tmp/space_2layers.yaml 1 plain,factorized,dense_mask,loop | tee "$OUT/supernet_bench_1layer.jsonl"
  $S $C /tmp/space_2layers.yaml 2 plain,factorized,dense_mask,loop | tee "$OUT/supernet_bench_2layers.jsonl"
  if [ -z "${JNAS_SKIP_32:-}" ]; then
    $S $C $Y 32 plain,factorized | tee "$OUT/supernet_bench_32layers.jsonl"
    # The search's own step: distillation from the teacher's forward pass (no gradient).
    $S $C $Y 32 factorized 4 2048 16 3 kd | tee -a "$OUT/supernet_bench_32layers.jsonl"
  fi
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv | tee "$OUT/gpu.txt"
fi
if [ "$what" = search ]; then
  # Issue 6: DNAS and finetune steps at Llama-3.1-8B shapes (4 x 2048 tokens, LoRA 16).
  build-gpu/tests/search/search_cuda_test 2>&1 | tail -2
  build-gpu/bench/search_bench configs/llama-3.1-8b.json configs/spaces/llama-3.1-8b.yaml 4 4 2048 16 | tee "$OUT/search_bench.jsonl"
  nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
fi
