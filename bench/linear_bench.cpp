// Decode GEMV micro benchmark at the Llama-3.1-8B linear shapes (M = 1, bf16): cuBLAS through
// at::linear vs kernels::gemv_bf16. CUDA events, median of repeats, 8 rotating weight copies
// (> L2) so that the cache does not flatter either side. Prints one JSON line per shape.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include "jointnas/kernels/linear.h"
#include "jointnas/model/cuda_graph_decoder.h"

int main() {
  c10::InferenceMode guard;
  using jointnas::model::cuda_time_ms;
  const double bw = jointnas::model::cuda_copy_bandwidth(int64_t(1) << 30);
  fmt::print("{{\"copy_bandwidth_gb_s\": {:.1f}}}\n", bw / 1e9);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {6144, 4096}, {4096, 4096}, {1024, 4096}, {28672, 4096}, {14336, 4096}, {4096, 14336}, {128256, 4096}};
  auto opts = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  for (auto [N, K] : shapes) {
    const int copies = N * K * 2 > (int64_t(256) << 20) ? 2 : 8;
    std::vector<at::Tensor> ws;
    for (int c = 0; c < copies; ++c) ws.push_back(at::randn({N, K}, opts));
    at::Tensor x = at::randn({1, 1, K}, opts);
    int i = 0;
    const double ms_cublas = cuda_time_ms([&] { at::linear(x, ws[i++ % copies]); }, 10, 100);
    const double bytes = 2.0 * N * K;
    std::string variants;
    for (int v : {14, 18, 24, 42, 44}) {
      i = 0;
      const double ms = cuda_time_ms([&] { jointnas::kernels::gemv_bf16(x, ws[i++ % copies], v); }, 10, 100);
      variants += fmt::format(", \"v{}_gb_s\": {:.0f}", v, bytes / ms / 1e6);
    }
    i = 0;
    const double ms_ours = cuda_time_ms([&] { jointnas::kernels::gemv_bf16(x, ws[i++ % copies]); }, 10, 100);
    fmt::print("{{\"N\": {}, \"K\": {}, \"cublas_ms\": {:.4f}, \"gemv_ms\": {:.4f}, \"cublas_gb_s\": {:.0f}, "
               "\"gemv_gb_s\": {:.0f}, \"speedup\": {:.3f}{}}}\n",
               N, K, ms_cublas, ms_ours, bytes / ms_cublas / 1e6, bytes / ms_ours / 1e6, ms_cublas / ms_ours,
               variants);
  }
  return 0;
}
