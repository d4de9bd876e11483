// The cost model (see cost_model.h): one additive decomposition, evaluated discretely or in
// expectation.
#include "jointnas/profile/cost_model.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <c10/core/ScalarType.h>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"
#include "jointnas/quant/format.h"
#include "jointnas/quant/qkernels_cuda.h"
#include "jointnas/quant/qlinear.h"

namespace jointnas::profile {
namespace {

// Token rows through the linears, query rows and key count of attention, rows scored by the head.
struct Shape {
  int64_t m = 1, attn_rows = 1, attn_context = 1, kv_len = 1, scored = 1;
};

Shape shape_of(const Workload& w, bool prefill) {
  Shape s;
  if (prefill) {
    s.m = w.batch * w.tokens;
    s.attn_rows = w.tokens;
    s.attn_context = w.tokens;
    s.kv_len = w.tokens;
  } else {
    s.m = w.batch;
    s.attn_rows = 1;
    s.attn_context = w.context + 1;  // the cached tokens and the new one
    s.kv_len = w.context + 1;
  }
  s.scored = w.batch;  // generation scores the last position only
  return s;
}

// The (regime, weight) pairs a workload averages over.
std::vector<std::pair<bool, double>> regimes(const Workload& w) {
  if (w.kind == "decode") return {{false, 1.0}};
  if (w.kind == "prefill") return {{true, 1.0}};
  return {{false, w.decode_weight}, {true, w.prefill_weight}};
}

// Stored bytes of an N x K linear in `format`, from the registry row.
// Weight bytes the runtime holds for one linear: the packed format, and on the CPU also the
// dequantized copy in the compute dtype that QuantLinear keeps of a weight-only format (its CPU
// GEMM runs on that copy), so a weight-only format costs more memory there than bf16, not less.
int64_t linear_bytes(int64_t n, int64_t k, const std::string& format, int64_t dtype_bytes, bool cpu) {
  const quant::QuantFormat& f = quant::find_format(format);
  if (!f.quantized()) return n * k * dtype_bytes;
  const int64_t groups = k / f.group_for(k);
  return n * k * f.weight_bits / 8 + n * groups * static_cast<int64_t>(c10::elementSize(f.scale_dtype)) +
         (f.asymmetric ? n * groups : 0) + (cpu && f.weight_only() ? n * k * dtype_bytes : 0);
}

// Whether the table was measured on the CPU (profile writes meta.device = "cpu").
bool measured_on_cpu(const LatencyTable& t) {
  return t.meta.is_object() && t.meta.contains("device") && t.meta["device"].is_string() &&
         t.meta["device"].get<std::string>() == "cpu";
}

// Everything one block contributes, for given sizes and formats.
struct BlockTerms {
  double latency = 0;
  int64_t weight_bytes = 0, params = 0, activation_bytes = 0;
};

// Whether the runtime hands a linear of `format` its input quantized by the producer (RMSNorm,
// SiLU * up), the rule of LlamaModel::block: on a table measured on CUDA, bf16 activations.
bool fed_quantized(const std::string& format, bool cpu_table) {
  return quant::producer_quantizes_input(quant::find_format(format), cpu_table ? c10::kCPU : c10::kCUDA,
                                         at::kBFloat16);
}

double linear_ms(const LatencyTable& t, int64_t m, int64_t k, int64_t n, const std::string& f,
                 bool quantized_input) {
  return t.ms(LatencyTable::linear_key(m, k, n, f, quantized_input));
}

// Peak transient memory of one forward, replayed allocation by allocation as LlamaModel::run /
// block (model/llama.cpp), kernels::linear / linear_add (kernels/linear.cpp) and QuantLinear::run
// (quant/qlinear.cpp) allocate and free on CUDA: the caching allocator's allocated peak is this
// walk's peak up to its 512-byte rounding. Keep the three in step. A sum of the largest tensors
// per phase misses what a block keeps alive to its end (qkv, the roped q and the attention output
// stay referenced through the MLP) and the int32 accumulator of w8a8's _int_mm; on the default
// 8B space that summary predicted the prefill peak 74-222 MB low (docs/benchmarks.md).
class AllocWalk {
 public:
  void alloc(int64_t b) {
    live_ += b;
    peak_ = std::max(peak_, live_);
  }
  void free(int64_t b) { live_ -= b; }
  int64_t live() const { return live_; }
  int64_t peak() const { return peak_; }

 private:
  int64_t live_ = 0, peak_ = 0;
};

// Rows up to which QuantLinear takes its batch-1 GEMVs on CUDA, and the rows _int_mm needs.
constexpr int64_t kGemvRows = quant::cuda::kMaxGemvRows, kIntMmRows = quant::kIntMmMinRows;

// y = x W^T over `rows` token rows, K -> N, in `format`; leaves y [rows, N] allocated.
// `quantized_input`: x came quantized from its producer (no quantization of x here).
void walk_linear(AllocWalk& a, int64_t rows, int64_t k, int64_t n, const std::string& format, int64_t eb,
                 bool quantized_input = false) {
  const quant::QuantFormat& f = quant::find_format(format);
  const int64_t y = rows * n * eb;
  if (!f.quantized() || (f.weight_only() && rows <= kGemvRows)) {
    a.alloc(y);
    return;
  }
  if (f.weight_only()) {  // dequantize to the compute dtype, then cuBLAS
    a.alloc(n * k * eb);
    a.alloc(y);
    a.free(n * k * eb);
    return;
  }
  // Per-token activation quantization: 1-byte codes [rows, K] and fp32 scales [rows], alive
  // through the GEMM.
  const int64_t q = rows * k + rows * 4;
  if (!quantized_input) a.alloc(q);
  if (rows > kGemvRows && f.act == quant::ActType::kInt8PerToken) {
    const int64_t padded = rows < kIntMmRows ? kIntMmRows * k : 0;  // zero rows padded on
    a.alloc(padded);
    const int64_t acc = std::max(rows, kIntMmRows) * n * 4;  // _int_mm's int32 output
    a.alloc(acc);
    a.alloc(y);
    a.free(acc + padded);
  } else {
    a.alloc(y);  // batch-1 GEMV or _scaled_mm: straight to the compute dtype
  }
  if (!quantized_input) a.free(q);
}

// residual + x W^T: fused into the GEMV epilogue at batch 1 (bf16: one row; quantized: up to
// kGemvRows), otherwise the linear's output and then the sum.
void walk_linear_add(AllocWalk& a, int64_t rows, int64_t k, int64_t n, const std::string& format, int64_t eb,
                     bool quantized_input = false) {
  const bool fused = quant::find_format(format).quantized() ? rows <= kGemvRows : rows == 1;
  walk_linear(a, rows, k, n, format, eb, quantized_input);
  if (fused) return;
  a.alloc(rows * n * eb);
  a.free(rows * n * eb);
}

// One block over `rows` = batch * t token rows; its input is live (counted by the caller), its
// output is left allocated, everything else is freed. `cpu`: no producer quantizes its output.
void walk_block(AllocWalk& a, int64_t rows, int64_t t, int64_t batch, const model::LayerSpec& l, int64_t H,
                int64_t eb, bool cpu) {
  const int64_t hd = l.head_dim, q = l.num_attention_heads * hd, kv = l.num_key_value_heads * hd;
  const int64_t I = l.intermediate_size;
  const int64_t h = rows * H * eb, qb = rows * q * eb;
  // A producer that quantizes for its linear writes 1-byte codes and fp32 scales instead of bf16.
  const bool fq = fed_quantized(l.format_qkv, cpu), fo = fed_quantized(l.format_o, cpu),
             fg = fed_quantized(l.format_gate_up, cpu), fd = fed_quantized(l.format_down, cpu);
  auto produced = [&](bool quantized, int64_t width) { return quantized ? rows * width + rows * 4 : rows * width * eb; };
  const int64_t h1 = produced(fq, H), h2 = produced(fg, H), act = produced(fd, I);
  a.alloc(h1);                                                 // h = rms_norm(x)
  walk_linear(a, rows, H, q + 2 * kv, l.format_qkv, eb, fq);  // qkv (K / V go to the cache)
  a.alloc(qb);                                                 // q after RoPE
  a.alloc(qb);                                                 // attention output
  if (t > 1) {
    const int64_t lse = batch * l.num_attention_heads * t * 4;  // flash attention's logsumexp
    a.alloc(lse);
    a.free(lse);
  }
  if (fo) {
    // The attention output's codes are gathered from [B, nh, T, hd]; the output is released,
    // o_proj runs, its codes go out of scope.
    a.alloc(produced(true, q));
    a.free(qb);
    walk_linear_add(a, rows, q, H, l.format_o, eb, true);  // out = x + o_proj(attn)
    a.free(produced(true, q));
  } else {
    if (t > 1) {
      a.alloc(qb);  // [B, nh, T, hd] -> [B, T, nh hd] copy; the attention output is then freed
      a.free(qb);
    }
    walk_linear_add(a, rows, q, H, l.format_o, eb);  // out = x + o_proj(attn)
  }
  a.alloc(h2);                                     // h = rms_norm(out) replaces the first h
  a.free(h1);
  walk_linear(a, rows, H, 2 * I, l.format_gate_up, eb, fg);
  a.alloc(act);  // silu(gate) * up; the gate_up output is freed after it
  a.free(rows * 2 * I * eb);
  walk_linear_add(a, rows, I, H, l.format_down, eb, fd);  // the block's output
  // h, qkv, q, the attention output (unless released for o_proj's codes), out and the SiLU
  // product go out of scope.
  a.free(h2 + (q + 2 * kv) * rows * eb + (fo ? 1 : 2) * qb + h + act);
}

// Peak transient bytes of LlamaModel::run over `t` tokens per sequence (rows = batch * t), scoring
// the last position of each: int64 ids and positions, the embedding, the blocks in turn (the
// previous block's output is freed once the next one returns), the final norm and fp32 logits.
int64_t forward_peak_bytes(int64_t batch, int64_t t, const std::vector<model::LayerSpec>& specs, int64_t H,
                           int64_t V, int64_t eb, bool cpu) {
  const int64_t rows = batch * t;
  AllocWalk a;
  a.alloc(2 * rows * 8);  // token ids on the device and positions
  a.alloc(rows * H * eb);  // embedding
  for (const model::LayerSpec& l : specs) {
    if (l.skip) continue;
    walk_block(a, rows, t, batch, l, H, eb, cpu);
    a.free(rows * H * eb);  // the block's input
  }
  a.alloc(batch * H * eb);  // final norm of the last positions
  a.alloc(batch * V * 4);   // fp32 logits
  return a.peak();
}

}  // namespace

Workload Workload::from_json(const Json& j, const std::string& src) {
  JNAS_CHECK_CONFIG(j.is_object(), "{}: a workload must be an object", src);
  Workload w;
  w.kind = get_string(j, "kind", src).value_or("decode");
  JNAS_CHECK_CONFIG(w.kind == "decode" || w.kind == "prefill" || w.kind == "mix",
                    "{}: workload kind '{}' (expected decode, prefill or mix)", src, w.kind);
  w.batch = get_int(j, "batch", src).value_or(1);
  w.context = get_int(j, "context", src).value_or(512);
  w.tokens = get_int(j, "tokens", src).value_or(2048);
  w.decode_weight = get_number(j, "decode_weight", src).value_or(1.0);
  w.prefill_weight = get_number(j, "prefill_weight", src).value_or(0.0);
  JNAS_CHECK_CONFIG(w.batch >= 1 && w.context >= 0 && w.tokens >= 1,
                    "{}: workload needs batch >= 1, context >= 0, tokens >= 1", src);
  return w;
}

Json Workload::to_json() const {
  return Json{{"kind", kind}, {"batch", batch}, {"context", context}, {"tokens", tokens},
              {"decode_weight", decode_weight}, {"prefill_weight", prefill_weight}};
}

std::string Workload::name() const {
  if (kind == "decode") return fmt::format("decode_b{}_c{}", batch, context);
  if (kind == "prefill") return fmt::format("prefill_b{}_s{}", batch, tokens);
  return fmt::format("mix_b{}_c{}_s{}_{}_{}", batch, context, tokens, decode_weight, prefill_weight);
}

std::string LatencyTable::linear_key(int64_t m, int64_t k, int64_t n, const std::string& format,
                                     bool quantized_input) {
  return fmt::format("linear/m{}/k{}/n{}/{}{}", m, k, n, format, quantized_input ? "/qx" : "");
}
std::string LatencyTable::attention_key(int64_t b, int64_t rows, int64_t context, int64_t heads,
                                        int64_t kv_heads, int64_t head_dim) {
  return fmt::format("attention/b{}/q{}/c{}/h{}/kv{}/d{}", b, rows, context, heads, kv_heads, head_dim);
}
std::string LatencyTable::block_fixed_key(int64_t m, int64_t h, int64_t i) {
  return fmt::format("block_fixed/m{}/h{}/i{}", m, h, i);
}
std::string LatencyTable::head_key(int64_t m, int64_t h, int64_t v) {
  return fmt::format("head/m{}/h{}/v{}", m, h, v);
}

double LatencyTable::ms(const std::string& key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    throw ConfigError(fmt::format("latency table {} has no entry '{}'",
                                  source.empty() ? "(in memory)" : source, key),
                      "profile this shape: `jointnas profile` with the search space and workload");
  }
  return it->second.ms;
}

const LatencyTable::Calibration* LatencyTable::calibration_for(const Workload& w) const {
  auto it = calibration.find(w.name());
  return it == calibration.end() ? nullptr : &it->second;
}

Json LatencyTable::to_json() const {
  Json e = Json::object();
  for (const auto& [k, v] : entries_) {
    e[k] = Json{{"ms", v.ms}, {"p10", v.p10}, {"p90", v.p90}, {"repeats", v.repeats}};
  }
  Json cal = Json::object();
  for (const auto& [k, c] : calibration) {
    cal[k] = Json{{"scale", c.scale}, {"per_block_ms", c.per_block_ms}, {"constant_ms", c.constant_ms},
                  {"runs", c.runs}, {"outliers", c.outliers}, {"memory_bytes", c.memory_bytes}};
  }
  return Json{{"format", "jointnas-latency-table"}, {"version", 1}, {"meta", meta},
              {"calibration", cal}, {"entries", e}};
}

namespace {

// One candidate model of fit_calibration: which of (per block, constant) it fits beside scale.
struct CalibModel {
  bool per_block = false, constant = false;
};

// Weighted least squares of `model` on the runs selected by `use`, each row divided by its
// measurement. Columns: prediction, then the optional terms. Returns nullopt when singular.
std::optional<LatencyTable::Calibration> solve_calibration(const std::vector<std::array<double, 3>>& runs,
                                                           const std::vector<bool>& use, CalibModel model) {
  std::vector<std::array<double, 3>> rows;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!use[i]) continue;
    const double inv = 1.0 / runs[i][2];
    std::array<double, 3> r{runs[i][0] * inv, 0, 0};
    int k = 1;
    if (model.per_block) r[k++] = runs[i][1] * inv;
    if (model.constant) r[k++] = inv;
    rows.push_back(r);
  }
  const int p = 1 + (model.per_block ? 1 : 0) + (model.constant ? 1 : 0);
  if (static_cast<int>(rows.size()) < p) return std::nullopt;
  // Normal equations (p <= 3), target 1 for every row, solved by Gaussian elimination with
  // partial pivoting; a pivot below 1e-12 of the matrix scale means the columns are dependent.
  double a[3][4] = {};
  for (const auto& r : rows) {
    for (int i = 0; i < p; ++i) {
      for (int j = 0; j < p; ++j) a[i][j] += r[i] * r[j];
      a[i][3] += r[i];
    }
  }
  double scale_ref = 0;
  for (int i = 0; i < p; ++i) scale_ref = std::max(scale_ref, std::abs(a[i][i]));
  for (int c = 0; c < p; ++c) {
    int piv = c;
    for (int r = c + 1; r < p; ++r) {
      if (std::abs(a[r][c]) > std::abs(a[piv][c])) piv = r;
    }
    if (!(std::abs(a[piv][c]) > 1e-12 * scale_ref)) return std::nullopt;
    for (int j = 0; j < 4; ++j) std::swap(a[c][j], a[piv][j]);
    for (int r = 0; r < p; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (int j = c; j < 4; ++j) a[r][j] -= f * a[c][j];
    }
  }
  double x[3] = {};
  for (int i = 0; i < p; ++i) x[i] = a[i][3] / a[i][i];
  LatencyTable::Calibration c;
  int k = 0;
  c.scale = x[k++];
  if (model.per_block) c.per_block_ms = x[k++];
  if (model.constant) c.constant_ms = x[k++];
  c.runs = static_cast<int>(rows.size());
  return c;
}

double calibrated(const LatencyTable::Calibration& c, const std::array<double, 3>& run) {
  return c.scale * run[0] + c.per_block_ms * run[1] + c.constant_ms;
}

// A fit the search can use: finite, larger architectures cost more, positive on every used run.
bool plausible(const LatencyTable::Calibration& c, const std::vector<std::array<double, 3>>& runs,
               const std::vector<bool>& use) {
  if (!(std::isfinite(c.scale) && std::isfinite(c.per_block_ms) && std::isfinite(c.constant_ms) && c.scale > 0)) {
    return false;
  }
  for (size_t i = 0; i < runs.size(); ++i) {
    if (use[i] && !(calibrated(c, runs[i]) > 0)) return false;
  }
  return true;
}

// Leave-one-out root mean square relative error of `model` over the used runs; +inf when some
// held-out fit is singular or implausible.
double loo_error(const std::vector<std::array<double, 3>>& runs, const std::vector<bool>& use, CalibModel model) {
  double sum = 0;
  int n = 0;
  for (size_t i = 0; i < runs.size(); ++i) {
    if (!use[i]) continue;
    std::vector<bool> rest = use;
    rest[i] = false;
    const auto c = solve_calibration(runs, rest, model);
    if (!c || !plausible(*c, runs, rest)) return std::numeric_limits<double>::infinity();
    const double e = (calibrated(*c, runs[i]) - runs[i][2]) / runs[i][2];
    sum += e * e;
    ++n;
  }
  return std::sqrt(sum / n);
}

}  // namespace

LatencyTable::Calibration fit_calibration(const std::vector<std::array<double, 3>>& runs) {
  JNAS_CHECK_CONFIG(runs.size() >= 3, "calibration needs at least 3 measured runs, got {}", runs.size());
  for (const auto& r : runs) {
    JNAS_CHECK_CONFIG(std::isfinite(r[0]) && r[0] > 0 && std::isfinite(r[2]) && r[2] > 0 && r[1] >= 0,
                      "calibration run (predicted {} ms, {} blocks, measured {} ms) is not usable: predictions "
                      "and measurements must be positive",
                      r[0], r[1], r[2]);
  }
  const CalibModel models[] = {{false, false}, {false, true}, {true, false}, {true, true}};
  std::vector<bool> use(runs.size(), true);
  auto best_fit = [&]() {
    LatencyTable::Calibration best;
    double best_err = std::numeric_limits<double>::infinity();
    bool found = false;
    for (const CalibModel& m : models) {
      const auto c = solve_calibration(runs, use, m);
      if (!c || !plausible(*c, runs, use)) continue;
      // Leave-one-out needs a spare run beyond the parameters; scale alone is the fallback.
      const int p = 1 + (m.per_block ? 1 : 0) + (m.constant ? 1 : 0);
      const double err = (!m.per_block && !m.constant) ? loo_error(runs, use, m)
                         : c->runs >= p + 2            ? loo_error(runs, use, m)
                                                       : std::numeric_limits<double>::infinity();
      if (!found || err < best_err * (1 - 1e-9)) {
        best = *c;
        best_err = err;
        found = true;
      }
    }
    JNAS_CHECK_CONFIG(found, "calibration fit failed on {} runs", runs.size());
    return best;
  };
  LatencyTable::Calibration c = best_fit();
  const int max_outliers = static_cast<int>(runs.size()) / 4;
  int outliers = 0;
  while (outliers < max_outliers) {
    std::vector<double> res;
    size_t worst = 0;
    double worst_e = -1;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (!use[i]) continue;
      const double e = std::abs(calibrated(c, runs[i]) - runs[i][2]) / runs[i][2];
      res.push_back(e);
      if (e > worst_e) {
        worst_e = e;
        worst = i;
      }
    }
    std::nth_element(res.begin(), res.begin() + static_cast<std::ptrdiff_t>(res.size() / 2), res.end());
    const double median = res[res.size() / 2];
    if (!(worst_e > 0.10 && worst_e > 4 * median)) break;
    use[worst] = false;
    ++outliers;
    c = best_fit();
  }
  c.outliers = outliers;
  return c;
}

LatencyTable LatencyTable::from_json(const Json& j, const std::string& src) {
  JNAS_CHECK_IO(j.is_object() && j.value("format", "") == "jointnas-latency-table",
                "{}: not a jointnas latency table (expected \"format\": \"jointnas-latency-table\")", src);
  LatencyTable t;
  t.source = src;
  if (j.contains("meta")) t.meta = j["meta"];
  if (j.contains("calibration") && j["calibration"].is_object()) {
    for (const auto& [k, v] : j["calibration"].items()) {
      Calibration c;
      c.scale = get_number(v, "scale", src).value_or(1.0);
      c.per_block_ms = get_number(v, "per_block_ms", src).value_or(0.0);
      c.constant_ms = get_number(v, "constant_ms", src).value_or(0.0);
      c.runs = static_cast<int>(get_int(v, "runs", src).value_or(0));
      c.outliers = static_cast<int>(get_int(v, "outliers", src).value_or(0));
      c.memory_bytes = get_int(v, "memory_bytes", src).value_or(0);
      // A constant beside whole models: anything past a petabyte is a corrupt file, and would
      // overflow the peak it is added to.
      JNAS_CHECK_IO(c.memory_bytes > -(int64_t{1} << 50) && c.memory_bytes < (int64_t{1} << 50),
                    "{}: calibration '{}' has memory_bytes {} (expected |bytes| < 2^50)", src, k, c.memory_bytes);
      JNAS_CHECK_IO(std::isfinite(c.scale) && std::isfinite(c.per_block_ms) && std::isfinite(c.constant_ms),
                    "{}: calibration '{}' has non-finite values", src, k);
      t.calibration[k] = c;
    }
  }
  JNAS_CHECK_IO(j.contains("entries") && j["entries"].is_object(), "{}: 'entries' must be an object", src);
  for (const auto& [k, v] : j["entries"].items()) {
    JNAS_CHECK_IO(v.is_object(), "{}: entry '{}' must be an object", src, k);
    Entry e;
    auto ms = get_number(v, "ms", src);
    JNAS_CHECK_IO(ms && std::isfinite(*ms) && *ms >= 0, "{}: entry '{}' needs a finite ms >= 0", src, k);
    e.ms = *ms;
    e.p10 = get_number(v, "p10", src).value_or(e.ms);
    e.p90 = get_number(v, "p90", src).value_or(e.ms);
    e.repeats = static_cast<int>(get_int(v, "repeats", src).value_or(0));
    t.entries_[k] = e;
  }
  return t;
}

LatencyTable LatencyTable::load(const std::string& path) { return from_json(read_json_file(path), path); }

void LatencyTable::save(const std::string& path) const { write_file_atomic(path, to_json().dump(1) + "\n"); }

Json Cost::to_json() const {
  return Json{{"latency_ms", latency_ms}, {"weight_bytes", weight_bytes}, {"kv_cache_bytes", kv_cache_bytes},
              {"activation_bytes", activation_bytes}, {"table_bytes", table_bytes}, {"runtime_bytes", runtime_bytes},
              {"peak_bytes", peak_bytes()}, {"params", params}};
}

Cost predict(const model::LlamaConfig& c, const std::vector<model::LayerSpec>& specs,
             const LatencyTable& table, const Workload& w, int64_t dtype_bytes) {
  JNAS_CHECK_CONFIG(static_cast<int64_t>(specs.size()) == c.num_hidden_layers,
                    "cost model: {} layer specs for {} layers", specs.size(), c.num_hidden_layers);
  const int64_t H = c.hidden_size, V = c.vocab_size;
  const bool cpu = measured_on_cpu(table);
  Cost cost;
  cost.params = V * H * (c.tie_word_embeddings ? 1 : 2) + H;
  cost.weight_bytes = cost.params * dtype_bytes;  // embeddings, head, final norm
  for (auto [prefill, weight] : regimes(w)) {
    const Shape s = shape_of(w, prefill);
    double lat = table.ms(LatencyTable::head_key(s.scored, H, V));
    // A decode workload first fills its context (a prefill of `context` tokens): its peak counts.
    int64_t act = prefill ? forward_peak_bytes(w.batch, w.tokens, specs, H, V, dtype_bytes, cpu)
                          : forward_peak_bytes(w.batch, 1, specs, H, V, dtype_bytes, cpu);
    if (!prefill && w.context > 0) act = std::max(act, forward_peak_bytes(w.batch, w.context, specs, H, V, dtype_bytes, cpu));
    for (const model::LayerSpec& l : specs) {
      if (l.skip) continue;
      const int64_t hd = l.head_dim, q = l.num_attention_heads * hd, kv = l.num_key_value_heads * hd;
      const int64_t I = l.intermediate_size;
      lat += linear_ms(table, s.m, H, q + 2 * kv, l.format_qkv, fed_quantized(l.format_qkv, cpu));
      lat += table.ms(LatencyTable::attention_key(w.batch, s.attn_rows, s.attn_context,
                                                  l.num_attention_heads, l.num_key_value_heads, hd));
      lat += linear_ms(table, s.m, q, H, l.format_o, fed_quantized(l.format_o, cpu));
      lat += linear_ms(table, s.m, H, 2 * I, l.format_gate_up, fed_quantized(l.format_gate_up, cpu));
      lat += linear_ms(table, s.m, I, H, l.format_down, fed_quantized(l.format_down, cpu));
      lat += table.ms(LatencyTable::block_fixed_key(s.m, H, I));
    }
    cost.latency_ms += weight * lat;
    cost.activation_bytes = std::max(cost.activation_bytes, act);
    int64_t kvb = 0;
    for (const model::LayerSpec& l : specs) {
      if (!l.skip) kvb += 2 * w.batch * s.kv_len * l.num_key_value_heads * l.head_dim * dtype_bytes;
    }
    cost.kv_cache_bytes = std::max(cost.kv_cache_bytes, kvb);
  }
  {
    // LlamaModel::build_rope_tables: one cos and one sin [max_pos, hd] fp32 table per distinct
    // (head_dim, theta).
    std::set<std::pair<int64_t, double>> tables;
    for (const model::LayerSpec& l : specs) {
      if (!l.skip) tables.insert({l.head_dim, l.rope_theta});
    }
    for (const auto& [hd, theta] : tables) cost.table_bytes += 2 * c.max_position_embeddings * hd * 4;
  }
  if (const LatencyTable::Calibration* cal = table.calibration_for(w)) {
    int64_t kept = 0;
    for (const model::LayerSpec& l : specs) kept += l.skip ? 0 : 1;
    cost.latency_ms = cal->scale * cost.latency_ms + cal->per_block_ms * static_cast<double>(kept) + cal->constant_ms;
    cost.runtime_bytes = cal->memory_bytes;
  }
  for (const model::LayerSpec& l : specs) {
    if (l.skip) continue;
    const int64_t hd = l.head_dim, q = l.num_attention_heads * hd, kv = l.num_key_value_heads * hd;
    const int64_t I = l.intermediate_size;
    cost.params += 2 * H + H * (q + 2 * kv) + q * H + 2 * I * H + I * H;
    cost.weight_bytes += 2 * H * dtype_bytes + linear_bytes(q + 2 * kv, H, l.format_qkv, dtype_bytes, cpu) +
                         linear_bytes(H, q, l.format_o, dtype_bytes, cpu) +
                         linear_bytes(2 * I, H, l.format_gate_up, dtype_bytes, cpu) +
                         linear_bytes(H, I, l.format_down, dtype_bytes, cpu);
  }
  return cost;
}

namespace {

at::Tensor vec(const std::vector<double>& v) {
  return at::tensor(v, at::TensorOptions().dtype(at::kDouble));
}

// Cost tensor [A, B, C] of f(a, b, c), contracted with three probability vectors.
template <typename F>
at::Tensor expect3(const at::Tensor& pa, const at::Tensor& pb, const at::Tensor& pc, int64_t na,
                   int64_t nb, int64_t nc, F f) {
  std::vector<double> v;
  v.reserve(static_cast<size_t>(na * nb * nc));
  for (int64_t a = 0; a < na; ++a)
    for (int64_t b = 0; b < nb; ++b)
      for (int64_t c = 0; c < nc; ++c) v.push_back(f(a, b, c));
  at::Tensor t = vec(v).reshape({na, nb, nc});
  return at::einsum("a,b,c,abc->", {pa, pb, pc, t});
}

void check_probs(const at::Tensor& p, size_t n, const char* what, int64_t layer) {
  TORCH_CHECK(p.defined() && p.dim() == 1 && p.size(0) == static_cast<int64_t>(n), "expected_cost: ",
              what, " probabilities of layer ", layer, " must be a vector of ", n, " choices, got ",
              p.defined() ? p.sizes().vec() : std::vector<int64_t>{});
}

}  // namespace

ExpectedCost expected_cost(const model::LlamaConfig& c, const CostSpace& sp, const ArchProbs& pr,
                           const LatencyTable& table, const Workload& w, int64_t dtype_bytes) {
  TORCH_CHECK(sp.layers.size() == pr.layers.size() &&
                  static_cast<int64_t>(sp.layers.size()) == c.num_hidden_layers,
              "expected_cost: the space, the probabilities and the config disagree on the layer count");
  check_probs(pr.hidden, sp.hidden.size(), "hidden", -1);
  const at::Tensor pH = pr.hidden.to(at::kDouble);
  const auto& Hs = sp.hidden;
  const int64_t nH = static_cast<int64_t>(Hs.size()), V = c.vocab_size;
  const bool cpu = measured_on_cpu(table);
  const at::Tensor one = at::ones({1}, at::kDouble);
  auto hvec = [&](auto f) {
    std::vector<double> v;
    for (int64_t H : Hs) v.push_back(static_cast<double>(f(H)));
    return vec(v);
  };
  ExpectedCost e;
  const double tie = c.tie_word_embeddings ? 1.0 : 2.0;
  e.params = at::dot(pH, hvec([&](int64_t H) { return tie * V * H + H; }));
  e.weight_bytes = e.params * static_cast<double>(dtype_bytes);
  e.latency_ms = at::zeros({}, at::kDouble);
  e.kv_cache_bytes = at::zeros({}, at::kDouble);
  for (auto [prefill, weight] : regimes(w)) {
    const Shape s = shape_of(w, prefill);
    at::Tensor lat = at::dot(pH, hvec([&](int64_t H) { return table.ms(LatencyTable::head_key(s.scored, H, V)); }));
    at::Tensor kvb = at::zeros({}, at::kDouble);
    for (size_t l = 0; l < sp.layers.size(); ++l) {
      const LayerSpace& L = sp.layers[l];
      const LayerProbs& P = pr.layers[l];
      const int64_t li = static_cast<int64_t>(l);
      check_probs(P.attention, L.attention.size(), "attention", li);
      check_probs(P.intermediate, L.intermediate.size(), "intermediate", li);
      check_probs(P.qkv, L.formats_qkv.size(), "qkv format", li);
      check_probs(P.o, L.formats_o.size(), "o format", li);
      check_probs(P.gate_up, L.formats_gate_up.size(), "gate_up format", li);
      check_probs(P.down, L.formats_down.size(), "down format", li);
      const at::Tensor pa = P.attention.to(at::kDouble), pi = P.intermediate.to(at::kDouble);
      const int64_t na = static_cast<int64_t>(L.attention.size()), ni = static_cast<int64_t>(L.intermediate.size());
      auto attn_vec = [&](auto f) {
        std::vector<double> v;
        for (const AttnChoice& a : L.attention) v.push_back(static_cast<double>(f(a)));
        return vec(v);
      };
      at::Tensor block =
          expect3(pH, pa, P.qkv.to(at::kDouble), nH, na, static_cast<int64_t>(L.formats_qkv.size()),
                  [&](int64_t a, int64_t b, int64_t f) {
                    const AttnChoice& A = L.attention[b];
                    return linear_ms(table, s.m, Hs[a], (A.heads + 2 * A.kv_heads) * A.head_dim, L.formats_qkv[f], fed_quantized(L.formats_qkv[f], cpu));
                  }) +
          at::dot(pa, attn_vec([&](const AttnChoice& A) {
                    return table.ms(LatencyTable::attention_key(w.batch, s.attn_rows, s.attn_context, A.heads,
                                                                A.kv_heads, A.head_dim));
                  })) +
          expect3(pH, pa, P.o.to(at::kDouble), nH, na, static_cast<int64_t>(L.formats_o.size()),
                  [&](int64_t a, int64_t b, int64_t f) {
                    const AttnChoice& A = L.attention[b];
                    return linear_ms(table, s.m, A.heads * A.head_dim, Hs[a], L.formats_o[f], fed_quantized(L.formats_o[f], cpu));
                  }) +
          expect3(pH, pi, P.gate_up.to(at::kDouble), nH, ni, static_cast<int64_t>(L.formats_gate_up.size()),
                  [&](int64_t a, int64_t b, int64_t f) {
                    return linear_ms(table, s.m, Hs[a], 2 * L.intermediate[b], L.formats_gate_up[f], fed_quantized(L.formats_gate_up[f], cpu));
                  }) +
          expect3(pH, pi, P.down.to(at::kDouble), nH, ni, static_cast<int64_t>(L.formats_down.size()),
                  [&](int64_t a, int64_t b, int64_t f) {
                    return linear_ms(table, s.m, L.intermediate[b], Hs[a], L.formats_down[f], fed_quantized(L.formats_down[f], cpu));
                  }) +
          expect3(pH, pi, one, nH, ni, 1, [&](int64_t a, int64_t b, int64_t) {
            return table.ms(LatencyTable::block_fixed_key(s.m, Hs[a], L.intermediate[b]));
          });
      const at::Tensor keep = P.keep.defined() ? P.keep.to(at::kDouble).reshape({}) : at::ones({}, at::kDouble);
      lat = lat + keep * block;
      kvb = kvb + keep * at::dot(pa, attn_vec([&](const AttnChoice& A) {
                                   return 2 * w.batch * s.kv_len * A.kv_heads * A.head_dim * dtype_bytes;
                                 }));
    }
    e.latency_ms = e.latency_ms + weight * lat;
    e.kv_cache_bytes = prefill && w.kind == "mix" ? at::maximum(e.kv_cache_bytes, kvb) : e.kv_cache_bytes + kvb;
  }
  if (const LatencyTable::Calibration* cal = table.calibration_for(w)) {
    at::Tensor kept = at::zeros({}, at::kDouble);
    for (const LayerProbs& P : pr.layers) {
      kept = kept + (P.keep.defined() ? P.keep.to(at::kDouble).reshape({}) : at::ones({}, at::kDouble));
    }
    e.latency_ms = cal->scale * e.latency_ms + cal->per_block_ms * kept + cal->constant_ms;
  }
  for (size_t l = 0; l < sp.layers.size(); ++l) {
    const LayerSpace& L = sp.layers[l];
    const LayerProbs& P = pr.layers[l];
    const at::Tensor pa = P.attention.to(at::kDouble), pi = P.intermediate.to(at::kDouble);
    const int64_t na = static_cast<int64_t>(L.attention.size()), ni = static_cast<int64_t>(L.intermediate.size());
    auto bytes = [&](const at::Tensor& pw, const at::Tensor& pf, int64_t nw, const std::vector<std::string>& fs,
                     auto nk) {
      return expect3(pH, pw, pf.to(at::kDouble), nH, nw, static_cast<int64_t>(fs.size()),
                     [&](int64_t a, int64_t b, int64_t f) {
                       auto [n, k] = nk(Hs[a], b);
                       return static_cast<double>(linear_bytes(n, k, fs[f], dtype_bytes, cpu));
                     });
    };
    auto qkv_rows = [&](int64_t b) { const AttnChoice& A = L.attention[b]; return (A.heads + 2 * A.kv_heads) * A.head_dim; };
    auto q_width = [&](int64_t b) { const AttnChoice& A = L.attention[b]; return A.heads * A.head_dim; };
    at::Tensor wb =
        bytes(pa, P.qkv, na, L.formats_qkv, [&](int64_t H, int64_t b) { return std::pair{qkv_rows(b), H}; }) +
        bytes(pa, P.o, na, L.formats_o, [&](int64_t H, int64_t b) { return std::pair{H, q_width(b)}; }) +
        bytes(pi, P.gate_up, ni, L.formats_gate_up, [&](int64_t H, int64_t b) { return std::pair{2 * L.intermediate[b], H}; }) +
        bytes(pi, P.down, ni, L.formats_down, [&](int64_t H, int64_t b) { return std::pair{H, L.intermediate[b]}; }) +
        at::dot(pH, hvec([&](int64_t H) { return 2 * H * dtype_bytes; }));
    at::Tensor np = expect3(pH, pa, one, nH, na, 1, [&](int64_t a, int64_t b, int64_t) {
                      const double H = static_cast<double>(Hs[a]);
                      return H * static_cast<double>(qkv_rows(b)) + static_cast<double>(q_width(b)) * H;
                    }) +
                    expect3(pH, pi, one, nH, ni, 1, [&](int64_t a, int64_t b, int64_t) {
                      return 3.0 * static_cast<double>(Hs[a]) * static_cast<double>(L.intermediate[b]);
                    }) +
                    at::dot(pH, hvec([&](int64_t H) { return 2 * H; }));
    const at::Tensor keep = P.keep.defined() ? P.keep.to(at::kDouble).reshape({}) : at::ones({}, at::kDouble);
    e.weight_bytes = e.weight_bytes + keep * wb;
    e.params = e.params + keep * np;
  }
  return e;
}

std::vector<std::string> required_keys(const model::LlamaConfig& c, const CostSpace& sp,
                                       const Workload& w, bool cpu_table) {
  auto linear = [&](int64_t m, int64_t k, int64_t n, const std::string& f, bool from_producer) {
    return LatencyTable::linear_key(m, k, n, f, from_producer && fed_quantized(f, cpu_table));
  };
  std::set<std::string> keys;
  for (auto [prefill, weight] : regimes(w)) {
    const Shape s = shape_of(w, prefill);
    for (int64_t H : sp.hidden) {
      keys.insert(LatencyTable::head_key(s.scored, H, c.vocab_size));
      for (const LayerSpace& L : sp.layers) {
        for (const AttnChoice& A : L.attention) {
          for (const auto& f : L.formats_qkv) {
            keys.insert(linear(s.m, H, (A.heads + 2 * A.kv_heads) * A.head_dim, f, true));
          }
          for (const auto& f : L.formats_o) keys.insert(linear(s.m, A.heads * A.head_dim, H, f, true));
        }
        for (int64_t I : L.intermediate) {
          for (const auto& f : L.formats_gate_up) keys.insert(linear(s.m, H, 2 * I, f, true));
          for (const auto& f : L.formats_down) keys.insert(linear(s.m, I, H, f, true));
          keys.insert(LatencyTable::block_fixed_key(s.m, H, I));
        }
      }
    }
    for (const LayerSpace& L : sp.layers) {
      for (const AttnChoice& A : L.attention) {
        keys.insert(LatencyTable::attention_key(w.batch, s.attn_rows, s.attn_context, A.heads, A.kv_heads, A.head_dim));
      }
    }
  }
  return {keys.begin(), keys.end()};
}

Selection random_selection(const CostSpace& sp, std::mt19937_64& rng, double drop_probability) {
  auto pick = [&](size_t n) { return static_cast<int64_t>(std::uniform_int_distribution<size_t>(0, n - 1)(rng)); };
  std::bernoulli_distribution drop(drop_probability);
  Selection s;
  s.hidden = pick(sp.hidden.size());
  for (const LayerSpace& L : sp.layers) {
    s.attention.push_back(pick(L.attention.size()));
    s.intermediate.push_back(pick(L.intermediate.size()));
    s.qkv.push_back(pick(L.formats_qkv.size()));
    s.o.push_back(pick(L.formats_o.size()));
    s.gate_up.push_back(pick(L.formats_gate_up.size()));
    s.down.push_back(pick(L.formats_down.size()));
    s.keep.push_back(!(L.can_skip && drop(rng)));
  }
  return s;
}

std::pair<model::LlamaConfig, std::vector<model::LayerSpec>> select(const model::LlamaConfig& base,
                                                                    const CostSpace& sp, const Selection& s) {
  model::LlamaConfig c = base;
  c.hidden_size = sp.hidden.at(static_cast<size_t>(s.hidden));
  std::vector<model::LayerSpec> specs;
  for (size_t l = 0; l < sp.layers.size(); ++l) {
    const LayerSpace& L = sp.layers[l];
    model::LayerSpec x;
    const AttnChoice& A = L.attention.at(static_cast<size_t>(s.attention[l]));
    x.num_attention_heads = A.heads;
    x.num_key_value_heads = A.kv_heads;
    x.head_dim = A.head_dim;
    x.intermediate_size = L.intermediate.at(static_cast<size_t>(s.intermediate[l]));
    x.rope_theta = A.rope_theta > 0 ? A.rope_theta : base.rope.rope_theta;
    x.skip = !s.keep[l];
    x.format_qkv = L.formats_qkv.at(static_cast<size_t>(s.qkv[l]));
    x.format_o = L.formats_o.at(static_cast<size_t>(s.o[l]));
    x.format_gate_up = L.formats_gate_up.at(static_cast<size_t>(s.gate_up[l]));
    x.format_down = L.formats_down.at(static_cast<size_t>(s.down[l]));
    specs.push_back(x);
  }
  return {c, specs};
}

}  // namespace jointnas::profile
