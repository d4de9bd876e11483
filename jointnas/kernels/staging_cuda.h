// Staging a small input (x of a GEMV) into shared memory with its loads in flight together
// (included by .cu files only).
#pragma once

#include <cuda_runtime.h>

namespace jointnas::kernels {

// Reads x[0 .. total) (16-byte vectors) across a block of kThreads threads with up to 8 loads per
// thread in flight before the first store, and hands each (index, vector) to `store`. Written as
// the plain loop (load, store, next), K = 14336 at M = 1 took 7 L2 round trips in a row before
// the first weight was used (docs/benchmarks.md, issues 2 and 3).
template <int kThreads, typename Store>
__device__ __forceinline__ void load_staged(const int4* __restrict__ x, int total, Store store) {
  constexpr int kStage = 8;
  for (int i0 = threadIdx.x; i0 < total; i0 += kStage * kThreads) {
    int4 v[kStage];
#pragma unroll
    for (int u = 0; u < kStage; ++u) {
      if (i0 + u * kThreads < total) v[u] = x[i0 + u * kThreads];
    }
#pragma unroll
    for (int u = 0; u < kStage; ++u) {
      const int i = i0 + u * kThreads;
      if (i >= total) break;
      store(i, v[u]);
    }
  }
}

}  // namespace jointnas::kernels
