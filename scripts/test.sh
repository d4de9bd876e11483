#!/usr/bin/env bash
# Set up a fresh machine (idempotent), build, and run every check CI runs (.ci/run):
#   1. the Release build (gcc) and the `cpu` tests;
#   2. the sanitizer build (clang, ASan + UBSan, libFuzzer coverage; build-san/) and the same
#      `cpu` tests in it;
#   3. a bounded fuzz run of every libFuzzer target from that build (JNAS_FUZZ_SECONDS, 30 s each).
# Measured on the 2-core CI-sized machine: docs/benchmarks.md ("CI cost").
#   bash scripts/test.sh              # all three (what CI runs)
#   bash scripts/test.sh --quick      # 1 only (the everyday loop)
#   bash scripts/test.sh --sanitize   # 2 only
#   bash scripts/test.sh --fuzz       # 3 only (builds build-san when needed)
#   JNAS_TEST_LABEL='cpu|slow' bash scripts/test.sh --quick
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
mode="${1:-all}"
case "$mode" in
  all | --quick | --sanitize | --fuzz) ;;
  *) echo "usage: $0 [--quick | --sanitize | --fuzz]" >&2; exit 2 ;;
esac
JOBS="${JNAS_JOBS:-$(nproc)}"
t_all=$(date +%s)

# Builds into $1 with the cmake arguments after it, then runs the `cpu` tests there.
build_and_test() {
  local build=$1 start built
  shift
  start=$(date +%s)
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v python3)" "$@" >/dev/null
  cmake --build "$build" -j "$JOBS"
  built=$(date +%s)
  echo "[test] build ($build) took $((built - start)) s" >&2
  # One intra-op thread per test process: ctest runs $JOBS of them on $JOBS cores, and LibTorch's
  # OpenMP threads spin-waiting against each other slowed the supernet tests ~90x (2 s -> 176 s).
  (cd "$build" && OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" ctest -L "${JNAS_TEST_LABEL:-cpu}" --output-on-failure -j "$JOBS" --timeout 1800)
  echo "[test] tests ($build) took $(( $(date +%s) - built )) s" >&2
}

SAN_BUILD="${JNAS_SAN_BUILD_DIR:-build-san}"
sanitizer_build() {
  # One clang build serves the sanitizer tests and the fuzz targets: every library is compiled
  # with ASan + UBSan and libFuzzer's coverage (inert outside a fuzzer).
  (source scripts/sanitizer_env.sh && build_and_test "$SAN_BUILD" -DCMAKE_CXX_COMPILER="${JNAS_FUZZ_CXX:-clang++}" \
    -DJNAS_SANITIZE=ON -DJNAS_BUILD_FUZZ=ON)
}

if [ "$mode" = all ] || [ "$mode" = --quick ]; then
  build_and_test "${JNAS_BUILD_DIR:-build}"
fi
if [ "$mode" = all ] || [ "$mode" = --sanitize ]; then
  sanitizer_build
fi
if [ "$mode" = all ] || [ "$mode" = --fuzz ]; then
  t=$(date +%s)
  JNAS_FUZZ_BUILD_DIR="$SAN_BUILD" bash scripts/fuzz.sh "${JNAS_FUZZ_SECONDS:-30}"
  echo "[test] fuzzing took $(( $(date +%s) - t )) s" >&2
fi
echo "[test] everything ($mode) took $(( $(date +%s) - t_all )) s" >&2
