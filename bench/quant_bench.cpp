// Per-format linear micro benchmark at the Llama-3.1-8B shapes (issue 3, acceptance 3): every
// registry format through QuantLinear (the path the runtime takes) and torch's tinygemm int4 for
// comparison, M in {1, 16, 256, 2048}. CUDA events, median of repeats, rotating weight copies
// (> 2x L2 in total) so that the cache does not flatter small shapes. One JSON line per
// (shape, M, format): ms, TFLOP/s, GB/s (weights + activations moved), speed-up over bf16.
// `ms` times one eager call between two events, so it includes the host's launches (and, for
// the quantized-activation paths, the host time between their two kernels). `graph_ms` is also
// given: one CUDA graph calls the layer once per rotating copy, back to back, as the runtime's
// CUDA-graph decode step and prefill run their linears; median replay time divided by the calls
// (the replay's own launch is shared by them).
// Formats that quantize activations get a second row, "input": "codes": the linear from x already
// quantized, as the runtime runs it after a producer that quantizes (RMSNorm, SiLU * up). Then the
// producers themselves ("op" rows): RMSNorm at [M, 4096], SiLU * up at [M, 2 x 14336] and the
// attention output's transpose to [M, 4096], bf16 output against the fused quantizing producer, so
// that producer + linear can be compared whole.
// usage: quant_bench [M,M,...]   (default 1,16,256,2048)
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <fmt/format.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <string>

#include "jointnas/kernels/fused.h"
#include "jointnas/model/cuda_graph_decoder.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/qlinear.h"
#include "jointnas/quant/quantizing_producers.h"

namespace {

using jointnas::model::cuda_time_ms;
namespace q = jointnas::quant;

// Per-call milliseconds of `call(0) .. call(n - 1)` captured in one CUDA graph, replayed.
double graph_ms(const std::function<void(size_t)>& call, size_t n) {
  jointnas::model::CudaGraphCall g([&] {
    for (size_t j = 0; j < n; ++j) call(j);
  });
  return cuda_time_ms([&] { g.replay(); }, 3, 30) / static_cast<double>(n);
}

int copies_for(int64_t bytes) {
  const int64_t target = int64_t(256) << 20;  // 5x the H100/H200 L2 (50 MB)
  return static_cast<int>(std::clamp<int64_t>((target + bytes - 1) / bytes, 2, 16));
}

// RMSNorm [M, 4096], SiLU * up [M, 2 x 14336] and the attention output [1, 32, M, 128] -> [1, M,
// 4096] (bf16: the transposed copy; quantized: the gather): bf16 output, and quantized for w8a8 /
// fp8 by the fused producer. One input each (the runtime's producers read what the previous kernel just
// wrote); eager and in-graph (8 calls per replay).
void producers(const std::vector<int64_t>& ms_list, const at::TensorOptions& bf) {
  namespace k = jointnas::kernels;
  for (int64_t M : ms_list) {
    const at::Tensor x = at::randn({M, 4096}, bf), w = at::ones({4096}, bf), gu = at::randn({M, 2 * 14336}, bf);
    const at::Tensor attn = at::randn({1, 32, M, 128}, bf);  // SDPA's output [B, nh, T, hd]
    struct Op {
      std::string name, format;
      std::function<void()> call;
    };
    std::vector<Op> ops = {{"rms_norm", "bf16", [&] { k::rms_norm(x, w, 1e-5); }},
                           {"silu_mul", "bf16", [&] { k::silu_mul(gu); }},
                           {"attn_out", "bf16", [&] { attn.transpose(1, 2).reshape({1, M, 4096}); }}};
    for (const char* f : {"w8a8", "fp8_e4m3"}) {
      const q::QuantFormat& qf = q::find_format(f);
      ops.push_back({"rms_norm", f, [&, &qf = qf] { q::rms_norm_quantized(x, w, 1e-5, qf); }});
      ops.push_back({"silu_mul", f, [&, &qf = qf] { q::silu_mul_quantized(gu, qf); }});
      ops.push_back({"attn_out", f, [&, &qf = qf] { q::attention_output_quantized(attn, qf); }});
    }
    for (int threads : {256, 512, 1024}) {  // SiLU * up's threads per row (the default picks one)
      ops.push_back({fmt::format("silu_mul_t{}", threads), "fp8_e4m3",
                     [&, threads] { q::cuda::silu_mul_quantize_act(gu, true, threads); }});
    }
    for (const Op& op : ops) {
      const double ms = cuda_time_ms(op.call, 10, 100);
      const double gms = graph_ms([&](size_t) { op.call(); }, 8);
      fmt::print("{{\"op\": \"{}\", \"M\": {}, \"format\": \"{}\", \"ms\": {:.5f}, \"graph_ms\": {:.5f}}}\n",
                 op.name, M, op.format, ms, gms);
    }
    fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  c10::InferenceMode guard;
  // The four shapes, then the fused q/k/v projection the runtime runs (6144 x 4096).
  const std::vector<std::pair<int64_t, int64_t>> shapes = {
      {4096, 4096}, {1024, 4096}, {14336, 4096}, {4096, 14336}, {6144, 4096}};
  std::vector<int64_t> ms_list = {1, 16, 256, 2048};
  if (argc > 1) {
    ms_list.clear();
    for (const char* p = argv[1]; *p != 0;) {
      char* end = nullptr;
      ms_list.push_back(std::strtoll(p, &end, 10));
      if (end == p || ms_list.back() < 1) {
        fmt::print(stderr, "quant_bench: expected a comma-separated list of M >= 1, got '{}'\n", argv[1]);
        return 2;
      }
      p = *end == ',' ? end + 1 : end;
    }
  }
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  producers(ms_list, bf);
  for (auto [N, K] : shapes) {
    const at::Tensor w_master = at::randn({N, K}, bf) * 0.02;
    std::map<std::string, std::vector<q::QuantLinear>> lins;
    for (const q::QuantFormat& f : q::formats()) {
      const q::QuantLinear one = q::QuantLinear::quantize(w_master, f, at::kCUDA, at::kBFloat16);
      const int c = copies_for(one.weight_bytes());
      for (int i = 0; i < c; ++i) {
        lins[f.name].push_back(i == 0 ? one : q::QuantLinear::quantize(w_master * (1.0 + 1e-3 * i), f,
                                                                       at::kCUDA, at::kBFloat16));
      }
    }
    // torch's tinygemm int4 (asymmetric, bf16 scales_and_zeros, group 128) for comparison.
    std::vector<at::Tensor> tg_w;
    at::Tensor tg_sz = at::randn({K / 128, N, 2}, bf) * 0.01;
    for (int i = 0; i < copies_for(N * K / 2); ++i) {
      // Random packed nibbles (timing only): [N, K / 2] uint8, 8 inner k-tiles as gpt-fast uses.
      at::Tensor packed = at::randint(0, 256, {N, K / 2}, at::TensorOptions().device(at::kCUDA).dtype(at::kByte));
      tg_w.push_back(at::_convert_weight_to_int4pack(packed, 8));
    }
    for (int64_t M : ms_list) {
      const at::Tensor x = at::randn({M, K}, bf);
      double bf16_ms = 0, bf16_graph_ms = 0;
      for (const q::QuantFormat& f : q::formats()) {
        auto& v = lins[f.name];
        size_t i = 0;
        const double ms = cuda_time_ms([&] { v[i++ % v.size()].forward(x); }, 10, M >= 256 ? 50 : 200);
        const double gms = graph_ms([&](size_t j) { v[j].forward(x); }, v.size());
        if (!f.quantized()) {
          bf16_ms = ms;
          bf16_graph_ms = gms;
        }
        const double bytes = static_cast<double>(v[0].weight_bytes()) + 2.0 * M * (K + N);
        fmt::print("{{\"N\": {}, \"K\": {}, \"M\": {}, \"format\": \"{}\", \"path\": \"{}\", \"ms\": {:.5f}, "
                   "\"tflops\": {:.2f}, \"gb_s\": {:.0f}, \"speedup_vs_bf16\": {:.3f}, \"graph_ms\": {:.5f}, "
                   "\"graph_gb_s\": {:.0f}, \"graph_speedup_vs_bf16\": {:.3f}}}\n",
                   N, K, M, f.name, v[0].path_for(M), ms, 2.0 * M * N * K / ms / 1e9, bytes / ms / 1e6,
                   bf16_ms / ms, gms, bytes / gms / 1e6, bf16_graph_ms / gms);
        if (f.act == q::ActType::kNone) continue;
        // From codes: x quantized once, outside the timed calls.
        const q::QuantizedAct xq = q::rms_norm_quantized(x, at::ones({K}, bf), 1e-5, f);
        const double cms = cuda_time_ms([&] { v[i++ % v.size()].forward(xq); }, 10, M >= 256 ? 50 : 200);
        const double cgms = graph_ms([&](size_t j) { v[j].forward(xq); }, v.size());
        fmt::print("{{\"N\": {}, \"K\": {}, \"M\": {}, \"format\": \"{}\", \"input\": \"codes\", \"ms\": {:.5f}, "
                   "\"tflops\": {:.2f}, \"speedup_vs_bf16\": {:.3f}, \"graph_ms\": {:.5f}, "
                   "\"graph_speedup_vs_bf16\": {:.3f}}}\n",
                   N, K, M, f.name, cms, 2.0 * M * N * K / cms / 1e9, bf16_ms / cms, cgms, bf16_graph_ms / cgms);
      }
      if (M == 1) {
        // Tiling variants of the int4 GEMV (rows per warp x vectors in flight), for tuning.
        auto& v4 = lins["w4a16_g128"];
        for (int variant : {14, 18, 24, 42, 44, 81, 82, 100, 101, 102, 104, 108}) {
          auto run = [&](size_t j) {
            const q::PackedWeight& p = v4[j % v4.size()].packed();
            q::cuda::gemv_w4a16(x, p.data, p.scale, p.zero, p.group, nullptr, variant);
          };
          size_t i = 0;
          const double ms = cuda_time_ms([&] { run(i++); }, 10, 200);
          const double gms = graph_ms(run, v4.size());
          fmt::print("{{\"N\": {}, \"K\": {}, \"M\": 1, \"w4_variant\": {}, \"ms\": {:.5f}, "
                     "\"speedup_vs_bf16\": {:.3f}, \"graph_ms\": {:.5f}, \"graph_speedup_vs_bf16\": {:.3f}}}\n",
                     N, K, variant, ms, bf16_ms / ms, gms, bf16_graph_ms / gms);
        }
      }
      size_t i = 0;
      const double ms = cuda_time_ms(
          [&] { at::_weight_int4pack_mm(x, tg_w[i++ % tg_w.size()], 128, tg_sz); }, 10, M >= 256 ? 20 : 200);
      fmt::print("{{\"N\": {}, \"K\": {}, \"M\": {}, \"format\": \"torch_tinygemm_int4\", \"path\": "
                 "\"_weight_int4pack_mm\", \"ms\": {:.5f}, \"tflops\": {:.2f}, \"gb_s\": {:.0f}, "
                 "\"speedup_vs_bf16\": {:.3f}}}\n",
                 N, K, M, ms, 2.0 * M * N * K / ms / 1e9, (N * K / 2.0 + 2.0 * M * (K + N)) / ms / 1e6,
                 bf16_ms / ms);
      fflush(stdout);
    }
  }
  return 0;
}
