// llama.cpp's CPU kernels timed one operation at a time; see op_timer.h. The graphs follow
// libllama's (src/llama-graph.cpp, build_attn_mha and build_ffn; src/llama-kv-cache.cpp for the
// cache writes and the padding of n_kv) in the pinned llama.cpp.
#include "jointnas/llamacpp/op_timer.h"

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "jointnas/core/error.h"
#include "jointnas/llamacpp/llamacpp.h"

namespace jointnas::llamacpp {
namespace {

constexpr int64_t kMinCopies = 4, kMaxCopies = 64;
constexpr float kRmsEps = 1e-5f;

struct CtxDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};
using CtxPtr = std::unique_ptr<ggml_context, CtxDeleter>;
struct BufDeleter {
  void operator()(ggml_backend_buffer* b) const { ggml_backend_buffer_free(b); }
};
using BufPtr = std::unique_ptr<ggml_backend_buffer, BufDeleter>;
struct AllocDeleter {
  void operator()(ggml_gallocr* g) const { ggml_gallocr_free(g); }
};
using AllocPtr = std::unique_ptr<ggml_gallocr, AllocDeleter>;

CtxPtr new_context(int64_t tensors, int64_t graph_nodes = 0) {
  const size_t size = ggml_tensor_overhead() * static_cast<size_t>(tensors) +
                      (graph_nodes > 0 ? ggml_graph_overhead_custom(static_cast<size_t>(graph_nodes), false) : 0);
  CtxPtr c{ggml_init({size, nullptr, /*no_alloc=*/true})};
  if (!c) throw IoError("ggml_init failed (out of memory?)");
  return c;
}

// jointnas's format name ("q4_k") -> ggml type (GGML_TYPE_Q4_K), by ggml's own type names.
bool ggml_type_of(const std::string& format, ggml_type* out) {
  for (int t = 0; t < GGML_TYPE_COUNT; ++t) {
    const char* name = ggml_type_name(static_cast<ggml_type>(t));
    if (name == nullptr || ggml_type_size(static_cast<ggml_type>(t)) == 0) continue;
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower == format) {
      *out = static_cast<ggml_type>(t);
      return true;
    }
  }
  return false;
}

ggml_type require_type(const std::string& format) {
  ggml_type t{};
  if (!ggml_type_of(format, &t)) {
    throw ConfigError(fmt::format("'{}' is not a ggml type; the llama.cpp target times ggml's formats only", format),
                      "give the search space ggml formats (f16, q8_0, q4_0, q4_k, q5_k, q6_k; docs/formats.md)");
  }
  return t;
}

std::vector<float> random_floats(int64_t n, float scale, std::mt19937_64& rng) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = d(rng);
  return v;
}

// `rows` x `per_row` random values as ggml type `t` (ggml's own quantizer: valid scales, no NaN).
std::vector<uint8_t> random_rows(ggml_type t, int64_t rows, int64_t per_row, std::mt19937_64& rng) {
  const std::vector<float> src = random_floats(rows * per_row, 0.02f, rng);
  std::vector<uint8_t> dst(ggml_row_size(t, per_row) * static_cast<size_t>(rows));
  if (t == GGML_TYPE_F32) {
    std::memcpy(dst.data(), src.data(), dst.size());
  } else if (t == GGML_TYPE_F16) {
    ggml_fp32_to_fp16_row(src.data(), reinterpret_cast<ggml_fp16_t*>(dst.data()), rows * per_row);
  } else {
    ggml_quantize_chunk(t, src.data(), dst.data(), 0, rows, per_row, nullptr);
  }
  return dst;
}

int64_t copies_for(int64_t bytes, int64_t rotate_bytes) {
  return std::clamp<int64_t>((rotate_bytes + std::max<int64_t>(bytes, 1) - 1) / std::max<int64_t>(bytes, 1),
                             kMinCopies, kMaxCopies);
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

OpTime summarize(std::vector<double> samples) {
  JNAS_CHECK_CONFIG(!samples.empty(), "no timings to summarize");
  std::vector<double> t = samples;
  std::sort(t.begin(), t.end());
  const auto at = [&](double q) { return t[std::min(t.size() - 1, static_cast<size_t>(q * static_cast<double>(t.size())))]; };
  return {at(0.5), at(0.1), at(0.9), std::move(samples)};
}

struct OpTimer::Impl {
  ggml_backend_t backend = nullptr;
  ggml_backend_dev_t dev = nullptr;
  std::vector<ggml_backend_buffer_type_t> bufts;  // libllama's order: extra (repacking) types, then plain CPU
  int64_t rotate_bytes = 0;
  int warmup = 0, repeats = 0;
  std::mt19937_64 rng{20261207};

  // The buffer type libllama's loader gives a weight used by `op_of(weight)` (llama-model-loader.cpp,
  // weight_buft_supported): the first that the CPU device supports the op with.
  ggml_backend_buffer_type_t weight_buft(ggml_type t, int64_t k, int64_t n) {
    for (ggml_backend_buffer_type_t b : bufts) {
      CtxPtr c = new_context(4);
      ggml_tensor* w = ggml_new_tensor_2d(c.get(), t, k, n);
      ggml_tensor* x = ggml_new_tensor_2d(c.get(), GGML_TYPE_F32, k, 512);
      ggml_tensor* op = ggml_mul_mat(c.get(), w, x);
      w->buffer = ggml_backend_buft_alloc_buffer(b, 0);
      const bool ok = ggml_backend_dev_supports_op(dev, op);
      ggml_backend_buffer_free(w->buffer);
      w->buffer = nullptr;
      if (ok) return b;
    }
    return bufts.back();
  }

  // Allocates every tensor of `ctx` in `buft`; the buffer is kept in `keep`.
  static void allocate(ggml_context* ctx, ggml_backend_buffer_type_t buft, std::vector<BufPtr>& keep) {
    ggml_backend_buffer_t b = ggml_backend_alloc_ctx_tensors_from_buft(ctx, buft);
    if (b == nullptr) throw IoError("ggml: could not allocate the profiling tensors (out of memory?)");
    keep.emplace_back(b);
  }

  // Random values of the tensor's type in every row of `t` (allocated).
  void fill(ggml_tensor* t) {
    const int64_t per_row = t->ne[0];
    const int64_t rows = ggml_nrows(t);
    const std::vector<uint8_t> bytes = random_rows(t->type, rows, per_row, rng);
    ggml_backend_tensor_set(t, bytes.data(), 0, bytes.size());
  }

  // Builds the graph (`build` adds one copy's outputs to it), allocates it, and times
  // `copies` copies per call: the median call over `repeats`, per copy.
  OpTime time_graph(int64_t copies, int64_t nodes_per_copy, const std::function<void(ggml_context*, ggml_cgraph*, int64_t)>& build) {
    const int64_t nodes = std::max<int64_t>(GGML_DEFAULT_GRAPH_SIZE, copies * nodes_per_copy * 2);
    CtxPtr g = new_context(copies * nodes_per_copy * 2 + 16, nodes);
    ggml_cgraph* gf = ggml_new_graph_custom(g.get(), static_cast<size_t>(nodes), false);
    for (int64_t c = 0; c < copies; ++c) build(g.get(), gf, c);
    AllocPtr galloc{ggml_gallocr_new(ggml_backend_get_default_buffer_type(backend))};
    if (!galloc || !ggml_gallocr_alloc_graph(galloc.get(), gf)) {
      throw IoError("ggml: could not allocate the profiling graph (out of memory?)");
    }
    auto run = [&] {
      const double t0 = now_ms();
      if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) throw IoError("ggml: graph compute failed");
      return now_ms() - t0;
    };
    for (int i = 0; i < warmup; ++i) run();
    std::vector<double> t;
    for (int i = 0; i < std::max(1, repeats); ++i) t.push_back(run() / static_cast<double>(copies));
    return summarize(std::move(t));
  }
};

OpTimer::OpTimer(int threads, int64_t rotate_bytes, int warmup, int repeats) : impl_(std::make_unique<Impl>()) {
  JNAS_CHECK_CONFIG(threads >= 1, "llama.cpp profiling needs at least 1 thread, got {}", threads);
  Impl& s = *impl_;
  init();  // ggml's log lines (one per repacked tensor) dropped, its errors kept
  ggml_backend_load_all();
  s.dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (s.dev == nullptr) throw IoError("ggml has no CPU backend");
  s.backend = ggml_backend_dev_init(s.dev, nullptr);
  if (s.backend == nullptr) throw IoError("ggml: could not start the CPU backend");
  ggml_backend_cpu_set_n_threads(s.backend, threads);
  ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(s.dev);
  auto extra = reinterpret_cast<ggml_backend_dev_get_extra_bufts_t>(
      ggml_backend_reg_get_proc_address(reg, "ggml_backend_dev_get_extra_bufts"));
  if (extra != nullptr) {
    for (ggml_backend_buffer_type_t* b = extra(s.dev); b != nullptr && *b != nullptr; ++b) s.bufts.push_back(*b);
  }
  s.bufts.push_back(ggml_backend_dev_buffer_type(s.dev));
  s.rotate_bytes = rotate_bytes;
  s.warmup = warmup;
  s.repeats = repeats;
}

OpTimer::~OpTimer() {
  if (impl_ && impl_->backend != nullptr) ggml_backend_free(impl_->backend);
}

bool OpTimer::is_ggml_type(const std::string& format) {
  ggml_type t{};
  return ggml_type_of(format, &t);
}

OpTime OpTimer::linear(int64_t m, int64_t k, int64_t n, const std::string& format) {
  Impl& s = *impl_;
  const ggml_type t = require_type(format);
  JNAS_CHECK_CONFIG(k % ggml_blck_size(t) == 0, "linear k {} is not whole blocks of {} ({} values)", k, format,
                    ggml_blck_size(t));
  const int64_t copies = copies_for(static_cast<int64_t>(ggml_row_size(t, k)) * n, s.rotate_bytes);
  CtxPtr cw = new_context(copies), ci = new_context(1);
  std::vector<ggml_tensor*> ws;
  for (int64_t c = 0; c < copies; ++c) ws.push_back(ggml_new_tensor_2d(cw.get(), t, k, n));
  ggml_tensor* x = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, k, m);
  std::vector<BufPtr> keep;
  Impl::allocate(cw.get(), s.weight_buft(t, k, n), keep);
  Impl::allocate(ci.get(), ggml_backend_dev_buffer_type(s.dev), keep);
  // One set of random weights, written into every copy (the repacking buffer repacks on write).
  const std::vector<uint8_t> bytes = random_rows(t, n, k, s.rng);
  for (ggml_tensor* w : ws) ggml_backend_tensor_set(w, bytes.data(), 0, bytes.size());
  s.fill(x);
  return s.time_graph(copies, 1, [&](ggml_context* g, ggml_cgraph* gf, int64_t c) {
    ggml_build_forward_expand(gf, ggml_mul_mat(g, ws[static_cast<size_t>(c)], x));
  });
}

OpTime OpTimer::attention(int64_t rows, int64_t context, int64_t heads, int64_t kv_heads, int64_t head_dim) {
  Impl& s = *impl_;
  JNAS_CHECK_CONFIG(heads >= 1 && kv_heads >= 1 && heads % kv_heads == 0 && head_dim >= 2 && head_dim % 2 == 0,
                    "attention: {} heads over {} KV heads of size {}", heads, kv_heads, head_dim);
  // libllama pads the keys attended to (n_kv) to a multiple of 256 cells (llama-kv-cache.cpp).
  const int64_t n_kv = (context + rows + 255) / 256 * 256;
  const int64_t kv_width = kv_heads * head_dim;
  const int64_t copies = copies_for(2 * n_kv * kv_width * 2, s.rotate_bytes);
  CtxPtr cc = new_context(2 * copies), ci = new_context(6);
  std::vector<ggml_tensor*> kc, vc;
  for (int64_t c = 0; c < copies; ++c) {
    kc.push_back(ggml_new_tensor_2d(cc.get(), GGML_TYPE_F16, kv_width, n_kv));
    vc.push_back(ggml_new_tensor_2d(cc.get(), GGML_TYPE_F16, kv_width, n_kv));
  }
  ggml_tensor* q = ggml_new_tensor_3d(ci.get(), GGML_TYPE_F32, head_dim, heads, rows);
  ggml_tensor* k = ggml_new_tensor_3d(ci.get(), GGML_TYPE_F32, head_dim, kv_heads, rows);
  ggml_tensor* v = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, kv_width, rows);
  ggml_tensor* pos = ggml_new_tensor_1d(ci.get(), GGML_TYPE_I32, rows);
  ggml_tensor* idx = ggml_new_tensor_1d(ci.get(), GGML_TYPE_I64, rows);
  ggml_tensor* mask = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F16, n_kv, rows);
  std::vector<BufPtr> keep;
  Impl::allocate(cc.get(), ggml_backend_dev_buffer_type(s.dev), keep);
  Impl::allocate(ci.get(), ggml_backend_dev_buffer_type(s.dev), keep);
  for (ggml_tensor* t : kc) s.fill(t);
  for (ggml_tensor* t : vc) s.fill(t);
  s.fill(q);
  s.fill(k);
  s.fill(v);
  std::vector<int32_t> p(static_cast<size_t>(rows));
  std::vector<int64_t> ix(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    p[static_cast<size_t>(r)] = static_cast<int32_t>(context + r);
    ix[static_cast<size_t>(r)] = context + r;
  }
  ggml_backend_tensor_set(pos, p.data(), 0, p.size() * sizeof(int32_t));
  ggml_backend_tensor_set(idx, ix.data(), 0, ix.size() * sizeof(int64_t));
  // Causal mask over the filled cells, -inf over the padding (as libllama's KQ mask).
  std::vector<float> mf(static_cast<size_t>(n_kv * rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n_kv; ++j) mf[static_cast<size_t>(r * n_kv + j)] = j <= context + r ? 0.0f : -INFINITY;
  }
  std::vector<ggml_fp16_t> mh(mf.size());
  ggml_fp32_to_fp16_row(mf.data(), mh.data(), static_cast<int64_t>(mf.size()));
  ggml_backend_tensor_set(mask, mh.data(), 0, mh.size() * sizeof(ggml_fp16_t));
  const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
  const auto rope = [&](ggml_context* g, ggml_tensor* a) {
    return ggml_rope_ext(g, a, pos, nullptr, static_cast<int>(head_dim), GGML_ROPE_TYPE_NORMAL, 0, 10000.0f, 1.0f,
                         0.0f, 1.0f, 0.0f, 0.0f);
  };
  return s.time_graph(copies, 8, [&](ggml_context* g, ggml_cgraph* gf, int64_t c) {
    ggml_tensor* K = kc[static_cast<size_t>(c)];
    ggml_tensor* V = vc[static_cast<size_t>(c)];
    ggml_tensor* qr = rope(g, q);
    ggml_tensor* kr = ggml_reshape_2d(g, rope(g, k), kv_width, rows);
    ggml_build_forward_expand(gf, ggml_set_rows(g, K, kr, idx));
    ggml_build_forward_expand(gf, ggml_set_rows(g, V, v, idx));
    const size_t e = ggml_element_size(K);
    ggml_tensor* kv = ggml_view_3d(g, K, head_dim, n_kv, kv_heads, e * kv_width, e * head_dim, 0);
    ggml_tensor* vv = ggml_view_3d(g, V, head_dim, n_kv, kv_heads, e * kv_width, e * head_dim, 0);
    ggml_tensor* o = ggml_flash_attn_ext(g, ggml_permute(g, qr, 0, 2, 1, 3), kv, vv, mask, scale, 0.0f, 0.0f);
    ggml_build_forward_expand(gf, ggml_reshape_2d(g, o, head_dim * heads, rows));
  });
}

OpTime OpTimer::block_fixed(int64_t m, int64_t h, int64_t i) {
  Impl& s = *impl_;
  const int64_t copies = kMinCopies * 2;
  CtxPtr ci = new_context(7);
  ggml_tensor* x = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, h, m);
  ggml_tensor* a = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, h, m);  // attention output
  ggml_tensor* f = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, h, m);  // FFN output
  ggml_tensor* gate = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, i, m);
  ggml_tensor* up = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, i, m);
  ggml_tensor* n1 = ggml_new_tensor_1d(ci.get(), GGML_TYPE_F32, h);
  ggml_tensor* n2 = ggml_new_tensor_1d(ci.get(), GGML_TYPE_F32, h);
  std::vector<BufPtr> keep;
  Impl::allocate(ci.get(), ggml_backend_dev_buffer_type(s.dev), keep);
  for (ggml_tensor* t : {x, a, f, gate, up, n1, n2}) s.fill(t);
  return s.time_graph(copies, 9, [&](ggml_context* g, ggml_cgraph* gf, int64_t) {
    ggml_build_forward_expand(gf, ggml_mul(g, ggml_rms_norm(g, x, kRmsEps), n1));
    ggml_tensor* r = ggml_add(g, a, x);
    ggml_build_forward_expand(gf, ggml_mul(g, ggml_rms_norm(g, r, kRmsEps), n2));
    ggml_build_forward_expand(gf, ggml_swiglu_split(g, gate, up));
    ggml_build_forward_expand(gf, ggml_add(g, f, r));
  });
}

OpTime OpTimer::head(int64_t scored, int64_t h, int64_t vocab) {
  Impl& s = *impl_;
  const int64_t copies = copies_for(h * vocab * 2, s.rotate_bytes);
  CtxPtr cw = new_context(copies), ci = new_context(3);
  std::vector<ggml_tensor*> ws;
  for (int64_t c = 0; c < copies; ++c) ws.push_back(ggml_new_tensor_2d(cw.get(), GGML_TYPE_F16, h, vocab));
  ggml_tensor* ids = ggml_new_tensor_1d(ci.get(), GGML_TYPE_I32, scored);
  ggml_tensor* x = ggml_new_tensor_2d(ci.get(), GGML_TYPE_F32, h, scored);
  ggml_tensor* n = ggml_new_tensor_1d(ci.get(), GGML_TYPE_F32, h);
  std::vector<BufPtr> keep;
  Impl::allocate(cw.get(), s.weight_buft(GGML_TYPE_F16, h, vocab), keep);
  Impl::allocate(ci.get(), ggml_backend_dev_buffer_type(s.dev), keep);
  const std::vector<uint8_t> bytes = random_rows(GGML_TYPE_F16, vocab, h, s.rng);
  for (ggml_tensor* w : ws) ggml_backend_tensor_set(w, bytes.data(), 0, bytes.size());
  std::vector<int32_t> id(static_cast<size_t>(scored));
  for (size_t r = 0; r < id.size(); ++r) id[r] = static_cast<int32_t>((r * 7919) % static_cast<size_t>(vocab));
  ggml_backend_tensor_set(ids, id.data(), 0, id.size() * sizeof(int32_t));
  s.fill(x);
  s.fill(n);
  return s.time_graph(copies, 5, [&](ggml_context* g, ggml_cgraph* gf, int64_t c) {
    ggml_tensor* w = ws[static_cast<size_t>(c)];
    ggml_build_forward_expand(gf, ggml_get_rows(g, w, ids));
    ggml_build_forward_expand(gf, ggml_mul_mat(g, w, ggml_mul(g, ggml_rms_norm(g, x, kRmsEps), n)));
  });
}

}  // namespace jointnas::llamacpp
