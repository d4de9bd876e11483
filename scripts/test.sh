#!/usr/bin/env bash
# Set up a fresh machine (idempotent), build, and run the CPU test suite (ctest label `cpu`).
#   bash scripts/test.sh              # what CI runs (.ci/run)
#   bash scripts/test.sh --sanitize   # the same tests in an ASan + UBSan build (build-asan/)
#   JNAS_TEST_LABEL='cpu|slow' bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SANITIZE=0
[ "${1:-}" = "--sanitize" ] && SANITIZE=1
if ((SANITIZE)); then
  BUILD="${JNAS_BUILD_DIR:-build-asan}"
  EXTRA=(-DJNAS_SANITIZE=ON)
  source scripts/sanitizer_env.sh
else
  BUILD="${JNAS_BUILD_DIR:-build}"
  EXTRA=()
fi
JOBS="${JNAS_JOBS:-$(nproc)}"
start=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v python3)" "${EXTRA[@]}" >/dev/null
cmake --build "$BUILD" -j "$JOBS"
built=$(date +%s)
echo "[test] build ($BUILD) took $((built - start)) s" >&2
cd "$BUILD"
# One intra-op thread per test process: ctest runs $JOBS of them on $JOBS cores, and LibTorch's
# OpenMP threads spin-waiting against each other slowed the supernet tests ~90x (2 s -> 176 s).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ctest -L "${JNAS_TEST_LABEL:-cpu}" --output-on-failure -j "$JOBS" --timeout 1800
echo "[test] build + tests ($BUILD) took $(( $(date +%s) - start )) s" >&2
