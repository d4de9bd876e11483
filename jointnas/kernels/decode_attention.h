// Decode attention (one new token per sequence) over the valid prefix of a preallocated KV cache:
// partial softmax statistics per warp, merged in shared memory by one block per KV head when the
// cache holds at most 512 keys (256 at G = 8), else split over the key axis (flash-decoding) and
// merged by a combine pass. Reads exactly the K/V of positions [0, pos], whatever the cache size;
// pos lives on the device, so the call can sit inside a CUDA graph.
#pragma once

#include <ATen/core/Tensor.h>

namespace jointnas::kernels {

// q [B, nkv, G, hd] (the G query heads of each KV group), k/v cache [B, nkv, L, hd] contiguous,
// pos int64 [1] on the device (keys 0..pos are attended), scale = 1/sqrt(hd) usually.
// Returns [B, nkv, G, hd]. CUDA only; see decode_attention_applies().
at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k_cache, const at::Tensor& v_cache,
                            const at::Tensor& pos, double scale);
// Shapes and dtypes the kernel takes: CUDA, bf16/fp16/fp32, hd 64 or 128, G in 1..4 or 8.
bool decode_attention_applies(const at::Tensor& q, const at::Tensor& k_cache);
// Reference: SDPA over the first pos + 1 keys (host-side pos).
at::Tensor decode_attention_ref(const at::Tensor& q, const at::Tensor& k_cache,
                                const at::Tensor& v_cache, int64_t pos, double scale);

}  // namespace jointnas::kernels
