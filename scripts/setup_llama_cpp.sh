#!/usr/bin/env bash
# Builds llama.cpp (ggml + libllama, CPU only, Release) from the PyPI sdist of llama-cpp-python,
# pinned, into ~/.cache/jointnas/llama.cpp-<version> (JNAS_LLAMA_CPP_CACHE overrides the parent).
# The GGUF export tests link against it (tests/CMakeLists.txt finds it there) and skip cleanly
# without it. Idempotent: a stamp file holding the sdist's sha256 makes a second run a no-op.
# Measured on the 2-core machine: docs/benchmarks.md ("CI cost").
set -euo pipefail

VERSION="0.3.36"
SHA256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
PREFIX="${JNAS_LLAMA_CPP_CACHE:-$HOME/.cache/jointnas}/llama.cpp-$VERSION"
STAMP="$PREFIX/.jointnas-stamp"
PY="${PYTHON:-python3}"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SHA256" ]; then
  echo "[setup] llama.cpp $VERSION present in $PREFIX" >&2
  exit 0
fi

t0=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "[setup] llama.cpp: downloading the llama-cpp-python==$VERSION sdist" >&2
"$PY" -m pip download -q --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work"
sdist="$work/llama_cpp_python-$VERSION.tar.gz"
echo "$SHA256  $sdist" | sha256sum -c --quiet -
tar xzf "$sdist" -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"

echo "[setup] llama.cpp: building ggml + libllama (CPU, Release) into $PREFIX" >&2
rm -rf "$PREFIX"
# GGML_NATIVE=OFF with AVX2/FMA/F16C: the same kernels on every x86-64 CI machine, so the
# activation quantizers that jointnas mirrors (docs/export.md) do not change with the host CPU.
cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$PREFIX" -DBUILD_SHARED_LIBS=ON \
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
  -DGGML_OPENMP=OFF -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
  -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >/dev/null
cmake --build "$work/build" -j "${JNAS_JOBS:-$(nproc)}" --target llama
cmake --install "$work/build" >/dev/null
# gguf-py from the same tree: the reference the writer's tests read files back with.
cp -r "$src/gguf-py" "$PREFIX/gguf-py"
echo "$SHA256" >"$STAMP"
echo "[setup] llama.cpp $VERSION built in $(( $(date +%s) - t0 )) s" >&2
