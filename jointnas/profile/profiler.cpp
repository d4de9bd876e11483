// Measurement of latency-table entries (see profiler.h).
#include "jointnas/profile/profiler.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <torch/headeronly/version.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/machine.h"
#include "jointnas/core/paths.h"
#include "jointnas/kernels/decode_attention.h"
#include "jointnas/kernels/fused.h"
#include "jointnas/kernels/linear.h"
#include "jointnas/profile/git_sha.h"
#include "jointnas/profile/table_key.h"
#include "jointnas/profile/timing.h"
#include "jointnas/quant/qlinear.h"
#include "jointnas/quant/quantizing_producers.h"
#ifdef JNAS_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#endif

namespace jointnas::profile {
namespace {

int copies_for(int64_t bytes, int64_t target) {
  return static_cast<int>(std::clamp<int64_t>((target + std::max<int64_t>(bytes, 1) - 1) / std::max<int64_t>(bytes, 1), 1, 16));
}

// A lower bound of the bytes an entry's buffers take (one weight copy; linear weights are drawn in
// fp32 before they are quantized), checked against the machine's memory before anything is
// allocated (issue 26: a config.json of vocab_size 2^24 x hidden_size 2^14 made profile abort in
// LibTorch's allocator, exit 134).
uint64_t entry_bytes(const ParsedKey& p, const std::string& key, uint64_t elt) {
  auto u = [&](char c) { return static_cast<uint64_t>(std::max<int64_t>(need(p, c, key), 0)); };
  auto mul = [](std::initializer_list<uint64_t> xs) {
    uint64_t r = 1;
    for (uint64_t x : xs) r = saturating_mul(r, x);
    return r;
  };
  if (p.op == "linear") {
    return saturating_add(mul({u('n'), u('k'), 4}), mul({u('m'), saturating_add(u('k'), u('n')), elt}));
  }
  if (p.op == "attention") {
    return saturating_add(mul({2, u('b'), u('K'), u('c'), u('d'), elt}), mul({u('b'), u('h'), u('q'), u('d'), elt}));
  }
  if (p.op == "block_fixed") return mul({u('m'), saturating_add(mul({2, u('h')}), mul({2, u('i')})), elt});
  if (p.op == "head") return saturating_add(mul({u('v'), u('h'), elt}), mul({u('m'), u('v'), 4}));
  return 0;
}

}  // namespace

Json device_meta(const ProfileOptions& o) {
  Json m{{"device", o.device.str()}, {"dtype", c10::toString(o.dtype)},
         {"libtorch", TORCH_VERSION}, {"git_sha", git_sha()}};
#ifdef JNAS_WITH_CUDA
  if (o.device.is_cuda()) {
    const auto* p = at::cuda::getCurrentDeviceProperties();
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    m["device_name"] = p->name;
    m["sm_count"] = p->multiProcessorCount;
    m["cuda_driver"] = driver;
    m["cuda_runtime"] = runtime;
    int clock_khz = 0;
    if (cudaDeviceGetAttribute(&clock_khz, cudaDevAttrClockRate, o.device.index()) == cudaSuccess) {
      m["sm_clock_mhz"] = clock_khz / 1000;
    }
  }
#endif
  if (o.device.is_cpu()) m["cpu_threads"] = at::get_num_threads();
  return m;
}

LatencyTable load_reusable_table(const std::string& path, const Json& meta) {
  if (!file_exists(path)) return {};
  LatencyTable old = LatencyTable::load(path);
  Json om = old.meta;
  if (om.is_object()) om.erase("workloads");
  if (om == meta) {
    JNAS_LOG_INFO("[profile] reusing {} ({} entries)", path, old.entries().size());
    return old;
  }
  JNAS_LOG_WARN("[profile] {} was measured under other conditions ({}); starting a new table", path, om.dump());
  return {};
}

void stamp_meta(LatencyTable& table, Json meta, const Workload& w) {
  Json wl = table.meta.contains("workloads") && table.meta["workloads"].is_array() ? table.meta["workloads"]
                                                                                    : Json::array();
  if (std::find(wl.begin(), wl.end(), Json(w.name())) == wl.end()) wl.push_back(w.name());
  meta["workloads"] = wl;
  table.meta = meta;
}

void profile_keys(LatencyTable& table, const std::vector<std::string>& keys, const ProfileOptions& o,
                  bool force, const std::function<void(int64_t, int64_t, const std::string&, double)>& progress) {
  c10::InferenceMode guard;
  std::vector<std::string> todo;
  for (const auto& k : keys) {
    if (force || !table.has(k)) todo.push_back(k);
  }
  if (o.device.is_cpu()) {
    // Every entry before the first is timed: a config or workload too large fails in seconds.
    for (const auto& key : todo) {
      check_memory_fits(entry_bytes(parse_key(key), key, c10::elementSize(o.dtype)),
                        fmt::format("latency-table entry '{}'", key),
                        "the model's sizes (hidden_size, intermediate_size, vocab_size, heads) or the workload's "
                        "batch, context or tokens");
    }
  }
  const auto t_start = std::chrono::steady_clock::now();
  auto opt = at::TensorOptions().device(o.device).dtype(o.dtype);
  for (size_t i = 0; i < todo.size(); ++i) {
    const std::string& key = todo[i];
    const ParsedKey p = parse_key(key);
    TimingStats st;
    if (p.op == "linear") {
      const int64_t M = need(p, 'm', key), K = need(p, 'k', key), N = need(p, 'n', key);
      const quant::QuantFormat& f = quant::find_format(p.format);
      std::vector<quant::QuantLinear> ws;
      const quant::QuantLinear first = quant::QuantLinear::quantize(at::randn({N, K}, opt) * 0.02, f, o.device, o.dtype);
      ws.push_back(first);
      for (int c = 1; c < copies_for(first.weight_bytes(), o.rotate_bytes); ++c) {
        ws.push_back(quant::QuantLinear::quantize(at::randn({N, K}, opt) * 0.02, f, o.device, o.dtype));
      }
      const at::Tensor x = at::randn({M, K}, opt);
      size_t r = 0;
      if (p.quantized_input) {
        // As the runtime runs it after a producer that quantized x (RMSNorm, SiLU * up): the
        // producer's cost is in block_fixed, the linear starts from the codes.
        if (!quant::producer_quantizes_input(f, o.device, o.dtype)) {
          throw ConfigError(fmt::format("latency-table key '{}': {} on {} ({}) has no producer-quantized "
                                        "input; drop the /qx suffix", key, f.name, o.device.str(),
                                        c10::toString(o.dtype)));
        }
        const quant::QuantizedAct qx = quant::quantize_act_ref(x.cpu(), f);
        const quant::QuantizedAct xq{qx.q.to(o.device), qx.scale.to(o.device)};
        st = time_ms(o.device, [&] { ws[r++ % ws.size()].forward(xq); }, o.warmup, o.repeats);
      } else {
        st = time_ms(o.device, [&] { ws[r++ % ws.size()].forward(x); }, o.warmup, o.repeats);
      }
    } else if (p.op == "attention") {
      // As the runtime runs it: decode folds the query heads of a KV group and uses the split-K
      // kernel on CUDA (SDPA elsewhere); prefill is causal SDPA.
      const int64_t B = need(p, 'b', key), Q = need(p, 'q', key), C = need(p, 'c', key);
      const int64_t nh = need(p, 'h', key), nkv = need(p, 'K', key), hd = need(p, 'd', key);
      const double scale = 1.0 / std::sqrt(static_cast<double>(hd));
      const at::Tensor k = at::randn({B, nkv, C, hd}, opt), v = at::randn({B, nkv, C, hd}, opt);
      if (Q == 1) {
        const at::Tensor q = at::randn({B, nkv, nh / nkv, hd}, opt);
        const at::Tensor pos = at::full({1}, C - 1, at::TensorOptions().device(o.device).dtype(at::kLong));
        const bool fused = kernels::decode_attention_applies(q, k);
        st = time_ms(o.device, [&] {
          if (fused) {
            kernels::decode_attention(q, k, v, pos, scale);
          } else {
            at::scaled_dot_product_attention(q, k, v, {}, 0.0, false, scale, false);
          }
        }, o.warmup, o.repeats);
      } else {
        const at::Tensor q = at::randn({B, nh, Q, hd}, opt);
        st = time_ms(o.device, [&] {
          at::scaled_dot_product_attention(q, k, v, {}, 0.0, true, scale, nh != nkv);
        }, o.warmup, o.repeats);
      }
    } else if (p.op == "block_fixed") {
      // Two RMSNorms, two residual adds and SiLU*mul at m token rows. RoPE + KV write is not
      // measured on its own; the table's calibration (fitted end to end) absorbs it.
      const int64_t M = need(p, 'm', key), H = need(p, 'h', key), I = need(p, 'i', key);
      const at::Tensor x = at::randn({1, M, H}, opt), w = at::ones({H}, opt), gu = at::randn({1, M, 2 * I}, opt);
      st = time_ms(o.device, [&] {
        at::Tensor h = kernels::rms_norm(x, w, o.rms_eps);
        at::Tensor y = x + h;
        kernels::rms_norm(y, w, o.rms_eps);
        kernels::silu_mul(gu);
        (void)(y + h);
      }, o.warmup, o.repeats);
    } else if (p.op == "head") {
      const int64_t M = need(p, 'm', key), H = need(p, 'h', key), V = need(p, 'v', key);
      // Rotating copies of the table, as for the linears: in a decode step the head is read after
      // every block's weights, so a single copy that fits the last-level cache times it warm. On
      // the 2-core CPU VM (32 MB L3) the single-copy entry read 0.33 ms at hidden 256 (8 MB) and
      // 1.5 ms at 384 (13 MB), and every hidden-384 architecture was over-predicted.
      const int64_t elt = static_cast<int64_t>(c10::elementSize(o.dtype));
      std::vector<at::Tensor> embs;
      for (int c = 0; c < copies_for(V * H * elt, o.rotate_bytes); ++c) embs.push_back(at::randn({V, H}, opt) * 0.02);
      const at::Tensor w = at::ones({H}, opt);
      const at::Tensor ids = at::randint(0, V, {M, 1}, at::TensorOptions().device(o.device).dtype(at::kLong));
      const at::Tensor x = at::randn({M, 1, H}, opt);
      size_t r = 0;
      st = time_ms(o.device, [&] {
        const at::Tensor& emb = embs[r++ % embs.size()];
        at::embedding(emb, ids);
        kernels::linear_logits(kernels::rms_norm(x, w, o.rms_eps), emb);  // as the runtime: fp32 logits
      }, o.warmup, o.repeats);
    } else {
      throw ConfigError(fmt::format("latency-table key '{}': unknown op '{}'", key, p.op));
    }
    table.set(key, {st.median, st.p10, st.p90, o.repeats});
    if (progress) {
      const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      const double eta = el / static_cast<double>(i + 1) * static_cast<double>(todo.size() - i - 1);
      progress(static_cast<int64_t>(i + 1), static_cast<int64_t>(todo.size()), key, eta);
    }
  }
}

}  // namespace jointnas::profile
