# Sourced by scripts/test.sh --sanitize and scripts/device_check.sh sanitize: runtime options of the
# ASan + UBSan build. Every report aborts the test. LibTorch is not instrumented: its one-time
# allocations are not ours to fix (scripts/lsan.supp), and ODR checks trip over symbols both it
# and we pull in.
_jnas_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_odr_violation=0:abort_on_error=1:halt_on_error=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$_jnas_dir/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
