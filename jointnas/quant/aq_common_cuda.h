// What the kernels of the activation-quantizing formats (w8a8, fp8_e4m3) share: the host-side
// argument checks (expected vs got) and small launch helpers. Included by .cu files only.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace jointnas::quant::cuda::aq {

constexpr unsigned kFull = 0xffffffffu;

// ---------------------------------------------------------------------------------------------
// Argument checks (expected vs got).

// A defined CUDA tensor of `dtype` (read through its strides).
inline void check_tensor_device_dtype(const at::Tensor& t, const char* fn, const char* name, at::ScalarType dtype) {
  TORCH_CHECK(t.defined(), fn, ": ", name, " must be defined");
  TORCH_CHECK(t.is_cuda(), fn, ": ", name, " must be a CUDA tensor, got device ", t.device());
  TORCH_CHECK(t.scalar_type() == dtype, fn, ": ", name, " must be ", dtype, ", got ",
              t.scalar_type());
}

// The same, contiguous, and on the device of `same_device_as` when given.
inline void check_tensor(const at::Tensor& t, const char* fn, const char* name, at::ScalarType dtype,
                  const at::Tensor* same_device_as = nullptr) {
  check_tensor_device_dtype(t, fn, name, dtype);
  if (same_device_as != nullptr) {
    TORCH_CHECK(t.device() == same_device_as->device(), fn, ": ", name, " must be on ",
                same_device_as->device(), ", got ", t.device());
  }
  TORCH_CHECK(t.is_contiguous(), fn, ": ", name, " must be contiguous, got sizes ", t.sizes(),
              " strides ", t.strides());
}

// A per-row scale vector: fp32 [n, 1] or [n].
inline void check_scale(const at::Tensor& s, int64_t n, const char* fn, const char* name,
                 const at::Tensor& like) {
  check_tensor(s, fn, name, at::kFloat, &like);
  const bool ok =
      (s.dim() == 2 && s.size(0) == n && s.size(1) == 1) || (s.dim() == 1 && s.size(0) == n);
  TORCH_CHECK(ok, fn, ": ", name, " must be [", n, ", 1] or [", n, "], got ", s.sizes());
}

inline void check_residual(const at::Tensor* residual, int64_t M, int64_t N, const char* fn,
                    const at::Tensor& like) {
  if (residual == nullptr) return;
  check_tensor(*residual, fn, "residual", at::kBFloat16, &like);
  TORCH_CHECK(residual->dim() == 2 && residual->size(0) == M && residual->size(1) == N, fn,
              ": residual must be [", M, ", ", N, "], got ", residual->sizes());
}

inline bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

inline const __nv_bfloat16* bf16_or_null(const at::Tensor* t) {
  return t == nullptr ? nullptr : reinterpret_cast<const __nv_bfloat16*>(t->data_ptr());
}

inline int max_dynamic_smem() {
  int device = 0, bytes = 0;
  C10_CUDA_CHECK(cudaGetDevice(&device));
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return bytes;
}

}  // namespace jointnas::quant::cuda::aq
