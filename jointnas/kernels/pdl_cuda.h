// Programmatic dependent launch for our CUDA kernels (included by .cu files only; see launch.h).
// A kernel launched through pdl::launch must begin with
//     ... prefetch of inputs that no earlier kernel writes (weights) ...
//     pdl::wait();                // every earlier kernel has completed, its writes are visible
//     pdl::launch_dependents();   // the next kernel in the stream may now be scheduled
// in every block, before it reads an activation or writes anything. The chain is transitive: a
// kernel's predecessor completes only after its own wait returned. Triggering after the wait,
// not before, keeps at most one kernel waiting ahead: with the trigger first, a whole cascade of
// later kernels became resident and prefetched their weights while attention still ran, and the
// decode step at context 2048 got 8 % slower (H200, 2026-11-27, docs/benchmarks.md).
#pragma once

#include <cuda_runtime.h>

#include <utility>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAException.h>

#include "jointnas/kernels/launch.h"

namespace jointnas::kernels::pdl {

__device__ __forceinline__ void launch_dependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

__device__ __forceinline__ void wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Starts moving the 128-byte line at p from DRAM into L2 (no register, no result).
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// Prefetches the first `lines` 128-byte lines of rows row0 .. row0 + R - 1 (clamped to n_rows)
// of a row-major matrix of row_bytes per row, spread over the warp's lanes: the first chunk a
// GEMV warp reads, on its way to L2 while the previous kernel finishes.
template <int R>
__device__ __forceinline__ void prefetch_rows(const void* base, int64_t row_bytes, int64_t row0,
                                              int64_t n_rows, int lines, int lane) {
  if (row0 >= n_rows) return;
  const int per_row = static_cast<int>(min(static_cast<int64_t>(lines), (row_bytes + 127) / 128));
  for (int i = lane; i < R * per_row; i += 32) {
    const int64_t row = min(row0 + i / per_row, n_rows - 1);
    prefetch_l2(static_cast<const char*>(base) + row * row_bytes + (i % per_row) * 128);
  }
}

// True when launches on the current device may overlap (the switch is on and the device is a
// Hopper or newer).
inline bool enabled() {
  return programmatic_launch() && at::cuda::getCurrentDeviceProperties()->major >= 9;
}

// kernel<<<grid, block, smem, stream>>>(args...), with programmatic stream serialization when
// enabled().
template <typename... Params, typename... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
            Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = enabled() ? 1 : 0;
  C10_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace jointnas::kernels::pdl
