#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; build dir build-fuzz) and runs each one on a
# copy of its seed corpus (fuzz/corpus/<target>/, never written to). Exits non-zero when any
# target finds a crash, a hang (> 10 s on one input), a leak, a sanitizer report or runs out of
# memory; the input that did it is kept in $BUILD/fuzz-out/<target>/. docs/fuzzing.md.
#   bash scripts/fuzz.sh             # 60 s per target
#   bash scripts/fuzz.sh 30          # 30 s per target (CI)
#   bash scripts/fuzz.sh --runs 1000000
#   JNAS_FUZZ_TARGETS="fuzz_config fuzz_tokenizer" bash scripts/fuzz.sh 10
# Env: JNAS_FUZZ_BUILD_DIR (build-fuzz), JNAS_JOBS (build jobs), JNAS_FUZZ_PARALLEL (targets
# fuzzed at once, default 1), JNAS_FUZZ_ARGS (extra libFuzzer flags for every target).
set -euo pipefail
cd "$(dirname "$0")/.."

limit=(-max_total_time=60)
what="60 s per target"
case "${1:-}" in
  "") ;;
  --runs) [[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET | --runs N]" >&2; exit 2; }
          limit=(-runs="$2"); what="$2 runs per target" ;;
  *) [[ "$1" =~ ^[0-9]+$ ]] || { echo "usage: $0 [SECONDS_PER_TARGET | --runs N]" >&2; exit 2; }
     limit=(-max_total_time="$1"); what="$1 s per target" ;;
esac

BUILD="${JNAS_FUZZ_BUILD_DIR:-build-fuzz}"
JOBS="${JNAS_JOBS:-$(nproc)}"
CXX_BIN="${JNAS_FUZZ_CXX:-clang++}"
command -v "$CXX_BIN" >/dev/null || { echo "error: $CXX_BIN not found; hint: bash scripts/setup.sh (apt: clang libclang-rt-14-dev)" >&2; exit 2; }

targets=()
if [ -n "${JNAS_FUZZ_TARGETS:-}" ]; then
  read -r -a targets <<<"$JNAS_FUZZ_TARGETS"
else
  for f in fuzz/fuzz_*.cpp; do targets+=("$(basename "$f" .cpp)"); done
fi

start=$(date +%s)
# Configure once (idempotent: cmake keeps the cache), then build only the fuzz targets.
if [ ! -f "$BUILD/build.ninja" ]; then
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_BIN" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DJNAS_BUILD_FUZZ=ON -DJNAS_BUILD_TESTS=OFF -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
fi
cmake --build "$BUILD" -j "$JOBS" --target "${targets[@]}"
built=$(date +%s)
echo "[fuzz] build took $((built - start)) s" >&2

out="$BUILD/fuzz-out"
mkdir -p "$out"
# -fno-sanitize-recover makes every UBSan report fatal; ASan's defaults already are. Scratch files
# of the file-based loaders go to a private TMPDIR.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Fuzzes one target; writes its one-line result to $out/<target>/result.
fuzz_one() {
  local t=$1 work="$out/$1" rc=0 t0 secs execs cov ft status
  rm -rf "$work"
  mkdir -p "$work/corpus" "$work/tmp"
  cp -r "fuzz/corpus/$t/." "$work/corpus/"  # a copy: new inputs never land in the committed corpus
  local dict=()
  [ -f "fuzz/dict/$t.dict" ] && dict=(-dict="fuzz/dict/$t.dict")
  echo "[fuzz] $t: $what" >&2
  t0=$(date +%s)
  # shellcheck disable=SC2086
  TMPDIR="$work/tmp" "$BUILD/fuzz/$t" "$work/corpus" "${limit[@]}" "${dict[@]}" -timeout=10 \
    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$work/" ${JNAS_FUZZ_ARGS:-} \
    >"$work/log.txt" 2>&1 || rc=$?
  secs=$(( $(date +%s) - t0 ))
  execs=$(grep -h 'stat::number_of_executed_units' "$work/log.txt" | awk '{s += $2} END {print s + 0}')
  cov=$(grep -ho 'cov: [0-9]*' "$work/log.txt" | tail -1 | awk '{print $2}')
  ft=$(grep -ho 'ft: [0-9]*' "$work/log.txt" | tail -1 | awk '{print $2}')
  status=ok
  if [ "$rc" -ne 0 ]; then
    status="FAILED (exit $rc; see $work/log.txt)"
    grep -E 'ERROR|runtime error|SUMMARY|deadly|Test unit written|uncaught|property violated' \
      "$work/log.txt" | head -20 >&2 || true
  fi
  printf '%-24s %12s execs %6s s  cov %-6s ft %-7s %s\n' "$t" "$execs" "$secs" "${cov:-?}" "${ft:-?}" \
    "$status" >"$work/result"
}

# JNAS_FUZZ_PARALLEL targets at a time (default 1: each target has the machine to itself).
parallel="${JNAS_FUZZ_PARALLEL:-1}"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$parallel" ]; do wait -n || true; done
  fuzz_one "$t" &
done
wait
failed=()
summary=()
for t in "${targets[@]}"; do
  summary+=("$(cat "$out/$t/result" 2>/dev/null || echo "$t: no result")")
  grep -q ' ok$' "$out/$t/result" 2>/dev/null || failed+=("$t")
done
echo "[fuzz] results ($what; logs in $out):" >&2
printf '  %s\n' "${summary[@]}" >&2
echo "[fuzz] build + fuzzing took $(( $(date +%s) - start )) s" >&2
if ((${#failed[@]})); then
  echo "error: fuzzing found problems in: ${failed[*]}" >&2
  echo "hint: reproduce with $BUILD/fuzz/<target> $out/<target>/crash-* (or leak-*, timeout-*, oom-*)" >&2
  exit 1
fi
