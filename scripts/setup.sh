#!/usr/bin/env bash
# Installs everything jointnas needs on a fresh Debian 12 machine, idempotently:
# system libraries from apt, LibTorch 2.11 from the PyPI torch wheel (C++ headers and libs only
# are used on CPU machines: torch_cpu + c10). Safe to run again: it skips what is already there.
set -euo pipefail

APT_PACKAGES=(
  cmake ninja-build ccache g++ pkg-config
  nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libyaml-cpp-dev
  libsentencepiece-dev libpcre2-dev libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev  # scripts/fuzz.sh: libFuzzer, ASan and UBSan runtimes for clang 14
  libplplot-dev plplot-driver-cairo  # `jointnas pareto`: charts (PNG and SVG through cairo)
)
TORCH_VERSION="2.11.0"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "[setup] apt: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
have_torch=$("$PY" - <<PYEOF 2>/dev/null || true
import importlib.metadata as m
try:
    print(m.version("torch").split("+")[0])
except Exception:
    print("")
PYEOF
)
if [ "$have_torch" != "$TORCH_VERSION" ]; then
  echo "[setup] pip: installing torch==$TORCH_VERSION (for LibTorch)" >&2
  "$PY" -m pip install -q "torch==$TORCH_VERSION"
fi
# Python tools of the checks: lizard measures function lengths (scripts/check_sizes.py);
# transformers loads `jointnas export --to hf` directories (scripts/check_hf_export.py, issue 24).
PY_TOOLS=("lizard==1.17.10" "transformers==5.23.0")
for spec in "${PY_TOOLS[@]}"; do
  name="${spec%%==*}"; want="${spec##*==}"
  have=$("$PY" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
  if [ "$have" != "$want" ]; then
    echo "[setup] pip: installing $spec" >&2
    "$PY" -m pip install -q "$spec"
  fi
done
# llama.cpp (pinned, CPU only, built once into ~/.cache/jointnas): the GGUF tests run against it.
bash "$(dirname "$0")/setup_llama_cpp.sh"
echo "[setup] ok: apt packages present, torch $TORCH_VERSION, ${PY_TOOLS[*]}, llama.cpp" >&2
