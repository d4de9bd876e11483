#!/usr/bin/env bash
# Compiles every CUDA source of the library (jointnas/**/*.cu) with nvcc for sm_90 against the pip
# torch's headers, with the flags the CMake CUDA build uses (cmake/JnasTorch.cmake, Torch's
# Caffe2/public/cuda.cmake, jnas_warnings), object files thrown away. For machines without a GPU
# or a CUDA build of torch: the CPU wheel ships the CUDA headers of ATen and c10, so every kernel
# and host wrapper is compiled (device code included), only nothing is linked or run. On the GPU
# machine the real check is the CMake build with -DJNAS_WITH_CUDA=ON and the cuda-labelled tests.
#
# usage: bash scripts/check_cuda_compile.sh [FILE.cu ...]   (default: every .cu under jointnas/)
#        JOBS=N to compile N files at a time (default 1: each nvcc takes 1-2 GB and a core).
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x "$NVCC" ]] || { echo "error: nvcc not found (set NVCC=...)" >&2; exit 2; }
PY=${PYTHON:-python3}
TORCH=$("$PY" -c "import importlib.util as u, os; s = u.find_spec('torch'); print(s.submodule_search_locations[0])")
[[ -f "$TORCH/include/ATen/cuda/CUDAContext.h" ]] || { echo "error: no ATen CUDA headers under $TORCH/include" >&2; exit 2; }
FLAGS=(-std=c++17 -arch=sm_90 -O3 -DNDEBUG --expt-relaxed-constexpr --expt-extended-lambda
       -DJNAS_WITH_CUDA=1 -DFMT_HEADER_ONLY=1 -D_GLIBCXX_USE_CXX11_ABI=1
       -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter
       -I. -isystem "$TORCH/include" -isystem "$TORCH/include/torch/csrc/api/include")
if [[ $# -gt 0 ]]; then files=("$@"); else mapfile -t files < <(find jointnas -name '*.cu' | sort); fi
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
# compile INDEX FILE: the compiler's output to $log/INDEX.txt, then one "ok" / "FAIL" line.
compile() {
  local t0=$SECONDS
  if "$NVCC" "${FLAGS[@]}" -c "$2" -o /dev/null >"$log/$1.txt" 2>&1; then
    echo "ok    $2 ($((SECONDS - t0)) s)" | tee "$log/$1.status"
  else
    echo "FAIL  $2" | tee "$log/$1.status"
    cat "$log/$1.txt"
  fi
}
jobs=${JOBS:-1}
for i in "${!files[@]}"; do
  compile "$i" "${files[$i]}" &
  if (( (i + 1) % jobs == 0 )); then wait; fi
done
wait
# Warnings in our own code (not in the torch / CUDA headers), listed even when it compiled.
grep -h "^jointnas/.*warning" "$log"/*.txt 2>/dev/null | sort -u || true
failed=$(cat "$log"/*.status | grep -c "^FAIL" || true)
if [[ $failed -ne 0 ]]; then echo "$failed of ${#files[@]} CUDA sources fail to compile"; exit 1; fi
echo "all ${#files[@]} CUDA sources compile"
