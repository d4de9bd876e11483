#!/usr/bin/env bash
# Set up a fresh machine (idempotent), build, and run the CPU test suite (ctest label `cpu`).
#   bash scripts/test.sh            # what CI runs (.ci/run)
#   JNAS_TEST_LABEL='cpu|slow' bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD="${JNAS_BUILD_DIR:-build}"
JOBS="${JNAS_JOBS:-$(nproc)}"
start=$(date +%s)
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython3_EXECUTABLE="$(command -v python3)" >/dev/null
cmake --build "$BUILD" -j "$JOBS"
built=$(date +%s)
echo "[test] build took $((built - start)) s" >&2
cd "$BUILD"
# One intra-op thread per test process: ctest runs $JOBS of them on $JOBS cores, and LibTorch's
# OpenMP threads spin-waiting against each other slowed the supernet tests ~90x (2 s -> 176 s).
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
ctest -L "${JNAS_TEST_LABEL:-cpu}" --output-on-failure -j "$JOBS" --timeout 1200
echo "[test] build + tests took $(( $(date +%s) - start )) s" >&2
