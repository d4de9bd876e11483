// llama.cpp as a runtime of the tool; see llamacpp.h. The timings follow llama-bench
// (tools/llama-bench/llama-bench.cpp of the pinned llama.cpp): random tokens, BOS first when the
// vocabulary adds one, f16 KV cache, n_batch 2048, n_ubatch 512, flash attention auto, default
// model parameters (CPU weight repacking on); llama_synchronize before the clock stops. The
// reference path (logits, window_nll) keeps the KV cache in fp32 without flash attention.
#include "jointnas/llamacpp/llamacpp.h"

#include <llama.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

#include <fmt/format.h>

#include "jointnas/core/error.h"

namespace jointnas::llamacpp {
namespace {

// llama.cpp's error lines since the last take_errors(): they go into our exception's message, so
// that the `error:` line of main stays the first line on stderr.
std::mutex log_mutex;
std::string log_errors;

std::string take_errors() {
  std::lock_guard<std::mutex> lock(log_mutex);
  std::string e;
  std::swap(e, log_errors);
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) e.pop_back();
  for (char& c : e) {
    if (c == '\n') c = ';';
  }
  return e.size() > 400 ? e.substr(e.size() - 400) : e;
}

void init_backend() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(
        [](ggml_log_level level, const char* text, void*) {
          if (level < GGML_LOG_LEVEL_ERROR) return;
          std::lock_guard<std::mutex> lock(log_mutex);
          if (log_errors.size() < 4096) log_errors += text;
        },
        nullptr);
    llama_backend_init();
  });
  take_errors();
}

}  // namespace

void init() { init_backend(); }

namespace {

struct ContextDeleter {
  void operator()(llama_context* c) const { llama_free(c); }
};
using ContextPtr = std::unique_ptr<llama_context, ContextDeleter>;

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

struct Model::Impl {
  std::string path;
  llama_model* model = nullptr;
  const llama_vocab* vocab = nullptr;
  std::mt19937 rng{1234};
  ~Impl() {
    if (model != nullptr) llama_model_free(model);
  }

  // A context of one sequence and n_ctx positions, batches of up to n_batch tokens computed
  // n_ubatch at a time. `reference`: the reference path's fp32 KV cache without flash attention;
  // else llama-bench's f16 KV cache with flash attention auto.
  ContextPtr context(int64_t n_ctx, int64_t n_batch, int64_t n_ubatch, int threads, bool reference) const {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(n_ctx);
    cp.n_batch = static_cast<uint32_t>(n_batch);
    cp.n_ubatch = static_cast<uint32_t>(n_ubatch);
    cp.n_seq_max = 1;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.type_k = reference ? GGML_TYPE_F32 : GGML_TYPE_F16;
    cp.type_v = cp.type_k;
    cp.flash_attn_type = reference ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_AUTO;
    cp.no_perf = true;
    llama_context* c = llama_init_from_model(model, cp);
    if (c == nullptr) throw Error(fmt::format("llama.cpp: llama_init_from_model failed for {} (n_ctx {})", path, n_ctx));
    return ContextPtr(c);
  }
  // llama-bench's context for a test of n_ctx positions: n_batch 2048, n_ubatch 512.
  ContextPtr bench_context(int64_t n_ctx, int threads) const { return context(n_ctx, 2048, 512, threads, false); }
  // The reference path's: one batch of up to n_ctx tokens.
  ContextPtr reference_context(int64_t n_ctx, int64_t n_ubatch, int threads) const {
    return context(n_ctx, n_ctx, n_ubatch, threads, true);
  }

  // Whether the tokenizer puts a space before a text (llama-vocab.cpp: tokenizer.ggml.add_space_prefix,
  // by default true for SentencePiece vocabularies and false for the others).
  bool adds_space_prefix() const {
    char buf[16];
    if (llama_model_meta_val_str(model, "tokenizer.ggml.add_space_prefix", buf, sizeof buf) >= 0) {
      return std::string(buf) == "true";
    }
    return llama_vocab_type(vocab) == LLAMA_VOCAB_TYPE_SPM;
  }

  llama_token random_token() { return static_cast<llama_token>(rng() % static_cast<uint32_t>(llama_vocab_n_tokens(vocab))); }

  // llama-bench's test_prompt: `n` random tokens (BOS first when the vocabulary adds one) at
  // positions from the cache's end, in batches of 2048, only the last position's logits.
  void prompt(llama_context* c, int64_t n) {
    std::vector<llama_token> t(static_cast<size_t>(std::min<int64_t>(n, 2048)));
    int64_t done = 0;
    while (done < n) {
      const int32_t k = static_cast<int32_t>(std::min<int64_t>(n - done, 2048));
      t[0] = done == 0 && llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : random_token();
      for (int32_t i = 1; i < k; ++i) t[i] = random_token();
      if (llama_decode(c, llama_batch_get_one(t.data(), k)) != 0) {
        throw Error(fmt::format("llama.cpp: llama_decode failed on {} tokens of {}", k, path));
      }
      done += k;
    }
    llama_synchronize(c);
  }
};

bool available() { return true; }
std::string version() { return JNAS_LLAMA_CPP_VERSION; }

Model::Model(const std::string& gguf, int threads)
    : impl_(std::make_shared<Impl>()),
      threads_(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))) {
  init_backend();
  impl_->path = gguf;
  JNAS_CHECK_IO(std::filesystem::is_regular_file(gguf), "llama.cpp: no GGUF file at {}", gguf);
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  mp.progress_callback = [](float, void*) { return true; };  // no progress dots
  impl_->model = llama_model_load_from_file(gguf.c_str(), mp);
  JNAS_CHECK_IO(impl_->model != nullptr, "llama.cpp could not load {} (not a GGUF model it reads: {})", gguf,
                take_errors());
  impl_->vocab = llama_model_get_vocab(impl_->model);
}
Model::~Model() = default;

const std::string& Model::path() const { return impl_->path; }
int64_t Model::params() const { return static_cast<int64_t>(llama_model_n_params(impl_->model)); }
int64_t Model::bytes() const { return static_cast<int64_t>(llama_model_size(impl_->model)); }
std::string Model::description() const {
  char buf[256];
  llama_model_desc(impl_->model, buf, sizeof buf);
  return buf;
}
int64_t Model::n_ctx_train() const { return llama_model_n_ctx_train(impl_->model); }
int64_t Model::n_vocab() const { return llama_vocab_n_tokens(impl_->vocab); }
int64_t Model::bos_id() const {
  const llama_token t = llama_vocab_bos(impl_->vocab);
  return t == LLAMA_TOKEN_NULL ? -1 : t;
}
int64_t Model::eos_id() const {
  const llama_token t = llama_vocab_eos(impl_->vocab);
  return t == LLAMA_TOKEN_NULL ? -1 : t;
}
bool Model::add_bos() const { return llama_vocab_get_add_bos(impl_->vocab); }

std::function<double()> Model::decode_timer(int64_t context) {
  JNAS_CHECK_CONFIG(context >= 1 && context < n_ctx_train(), "llama.cpp decode at context {}: {} has {} positions",
                    context, impl_->path, n_ctx_train());
  auto impl = impl_;
  auto ctx = std::make_shared<ContextPtr>(impl->bench_context(context + 1, threads_));
  impl->prompt(ctx->get(), context);  // the depth, once (llama-bench caches it the same way)
  return [impl, ctx, context] {
    llama_context* c = ctx->get();
    llama_token tok = impl->random_token();
    llama_pos pos = static_cast<llama_pos>(context);
    llama_batch b = llama_batch_get_one(&tok, 1);
    const double t0 = now_ms();
    if (llama_decode(c, b) != 0) throw Error(fmt::format("llama.cpp: decode step failed on {}", impl->path));
    llama_synchronize(c);
    const double ms = now_ms() - t0;
    llama_memory_seq_rm(llama_get_memory(c), 0, pos, -1);  // back to `context` cached tokens
    return ms;
  };
}

std::function<double()> Model::prefill_timer(int64_t tokens) {
  JNAS_CHECK_CONFIG(tokens >= 1 && tokens <= n_ctx_train(), "llama.cpp prefill of {} tokens: {} has {} positions", tokens,
                    impl_->path, n_ctx_train());
  auto impl = impl_;
  auto ctx = std::make_shared<ContextPtr>(impl->bench_context(tokens, threads_));
  return [impl, ctx, tokens] {
    llama_context* c = ctx->get();
    llama_memory_clear(llama_get_memory(c), false);
    const double t0 = now_ms();
    impl->prompt(c, tokens);
    return now_ms() - t0;
  };
}

std::vector<int32_t> Model::tokenize(const std::string& text, bool add_special) const {
  std::vector<llama_token> t(text.size() + 16);
  int32_t n = llama_tokenize(impl_->vocab, text.data(), static_cast<int32_t>(text.size()), t.data(),
                             static_cast<int32_t>(t.size()), add_special, /*parse_special=*/false);
  if (n < 0) {
    t.resize(static_cast<size_t>(-n));
    n = llama_tokenize(impl_->vocab, text.data(), static_cast<int32_t>(text.size()), t.data(),
                       static_cast<int32_t>(t.size()), add_special, false);
  }
  t.resize(static_cast<size_t>(std::max(n, 0)));
  return std::vector<int32_t>(t.begin(), t.end());
}

std::vector<int32_t> Model::tokenize_continuation(const std::string& text) const {
  // The piece starts with the space it was cut before; the dummy prefix is that space.
  if (!text.empty() && text[0] == ' ' && impl_->adds_space_prefix()) return tokenize(text.substr(1), false);
  return tokenize(text, false);
}

std::string Model::detokenize(const std::vector<int32_t>& ids, bool skip_special) const {
  std::string out(ids.size() * 8 + 16, '\0');
  const std::vector<llama_token> t(ids.begin(), ids.end());
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int32_t n = llama_detokenize(impl_->vocab, t.data(), static_cast<int32_t>(t.size()), out.data(),
                                       static_cast<int32_t>(out.size()), skip_special, /*unparse_special=*/!skip_special);
    if (n >= 0) {
      out.resize(static_cast<size_t>(n));
      return out;
    }
    out.resize(static_cast<size_t>(-n));
  }
  throw Error(fmt::format("llama.cpp: llama_detokenize failed on {} ids of {}", ids.size(), impl_->path));
}

std::vector<float> Model::logits(const std::vector<int32_t>& ids) const {
  JNAS_CHECK_CONFIG(!ids.empty(), "llama.cpp logits: no tokens");
  const int32_t T = static_cast<int32_t>(ids.size());
  const int64_t n_ctx = std::max(T, 16) + 16;
  ContextPtr ctx = impl_->reference_context(n_ctx, n_ctx, threads_);
  llama_batch b = llama_batch_init(T, 0, 1);
  for (int32_t i = 0; i < T; ++i) {
    b.token[i] = ids[static_cast<size_t>(i)];
    b.pos[i] = i;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = 1;
  }
  b.n_tokens = T;
  const int rc = llama_decode(ctx.get(), b);
  llama_batch_free(b);
  if (rc != 0) throw Error(fmt::format("llama.cpp: llama_decode failed on {}", impl_->path));
  const int64_t V = n_vocab();
  std::vector<float> out(static_cast<size_t>(T * V));
  for (int32_t i = 0; i < T; ++i) {
    const float* l = llama_get_logits_ith(ctx.get(), i);
    std::copy(l, l + V, out.begin() + static_cast<int64_t>(i) * V);
  }
  return out;
}

Model::WindowNll Model::window_nll(int64_t window) const {
  JNAS_CHECK_CONFIG(window >= 2 && window - 1 <= n_ctx_train(),
                    "llama.cpp windows of {} tokens: {} has {} positions (a window has at most n_ctx_train + 1 tokens)",
                    window, impl_->path, n_ctx_train());
  auto impl = impl_;
  // n_ubatch 512: llama.cpp's default, which bounds the attention scores' buffer whatever the window.
  auto ctx = std::make_shared<ContextPtr>(impl->reference_context(window, std::min<int64_t>(window, 512), threads_));
  auto batch = std::shared_ptr<llama_batch>(new llama_batch(llama_batch_init(static_cast<int32_t>(window), 0, 1)),
                                            [](llama_batch* b) {
                                              llama_batch_free(*b);
                                              delete b;
                                            });
  const int64_t V = n_vocab();
  return [impl, ctx, batch, window, V](const std::vector<int32_t>& ids, int64_t first) {
    const auto n = static_cast<int64_t>(ids.size());
    JNAS_CHECK_CONFIG(n >= 2 && n <= window && first >= 0 && first < n - 1,
                      "llama.cpp window of {} tokens scored from {}: expected 2 .. {} tokens and a first prediction "
                      "before the last",
                      n, first, window);
    for (const int32_t id : ids) {
      JNAS_CHECK_CONFIG(id >= 0 && id < V, "token id {} outside {}'s vocabulary of {}", id, impl->path, V);
    }
    llama_context* c = ctx->get();
    llama_memory_clear(llama_get_memory(c), true);
    // Inputs ids[0, n-1); the logits of position j predict ids[j + 1], asked for from `first` on.
    llama_batch& b = *batch;
    for (int64_t i = 0; i + 1 < n; ++i) {
      b.token[i] = ids[static_cast<size_t>(i)];
      b.pos[i] = static_cast<llama_pos>(i);
      b.n_seq_id[i] = 1;
      b.seq_id[i][0] = 0;
      b.logits[i] = i >= first ? 1 : 0;
    }
    b.n_tokens = static_cast<int32_t>(n - 1);
    if (llama_decode(c, b) != 0) throw Error(fmt::format("llama.cpp: llama_decode failed on a window of {}", impl->path));
    std::vector<double> nll(static_cast<size_t>(n - 1), 0.0);
    for (int64_t j = first; j + 1 < n; ++j) {
      // llama.cpp's perplexity tool (tools/perplexity/perplexity.cpp, log_softmax): max in fp32,
      // sum of expf(l - max) in double.
      const float* l = llama_get_logits_ith(c, static_cast<int32_t>(j));
      if (l == nullptr) throw Error(fmt::format("llama.cpp: no logits at position {} of {}", j, impl->path));
      const float mx = *std::max_element(l, l + V);
      double sum = 0.0;
      for (int64_t v = 0; v < V; ++v) sum += std::exp(l[v] - mx);
      nll[static_cast<size_t>(j)] = std::log(sum) - static_cast<double>(l[ids[static_cast<size_t>(j + 1)]] - mx);
    }
    return nll;
  };
}

const std::vector<Preset>& presets() {
  // llama-quantize's QUANT_OPTIONS rows this tool offers (tools/quantize/quantize.cpp).
  static const std::vector<Preset> p = {
      {"Q4_0", LLAMA_FTYPE_MOSTLY_Q4_0, "4.34G, +0.4685 ppl @ Llama-3-8B"},
      {"Q4_K_M", LLAMA_FTYPE_MOSTLY_Q4_K_M, "4.58G, +0.1754 ppl @ Llama-3-8B"},
      {"Q5_K_M", LLAMA_FTYPE_MOSTLY_Q5_K_M, "5.33G, +0.0569 ppl @ Llama-3-8B"},
      {"Q6_K", LLAMA_FTYPE_MOSTLY_Q6_K, "6.14G, +0.0217 ppl @ Llama-3-8B"},
      {"Q8_0", LLAMA_FTYPE_MOSTLY_Q8_0, "7.96G, +0.0026 ppl @ Llama-3-8B"},
  };
  return p;
}

const Preset& find_preset(const std::string& name) {
  std::string names;
  for (const Preset& p : presets()) {
    if (p.name == name) return p;
    names += names.empty() ? p.name : std::string(", ") + p.name;
  }
  throw ConfigError(fmt::format("unknown llama-quantize preset '{}' (one of {})", name, names));
}

int64_t quantize(const std::string& in, const std::string& out, const std::string& preset, int threads) {
  const Preset& p = find_preset(preset);
  namespace fs = std::filesystem;
  JNAS_CHECK_IO(fs::is_regular_file(in), "llama.cpp quantize: no GGUF file at {}", in);
  std::error_code ec;
  JNAS_CHECK_CONFIG(!(fs::exists(out) && fs::equivalent(in, out, ec)) && fs::absolute(in) != fs::absolute(out),
                    "llama.cpp quantize: --out {} is the input; write to another file", out);
  init_backend();
  llama_model_quantize_params qp = llama_model_quantize_default_params();
  qp.nthread = std::max(threads, 1);
  qp.ftype = static_cast<llama_ftype>(p.ftype);
  const std::string tmp = out + ".partial";
  const uint32_t rc = llama_model_quantize(in.c_str(), tmp.c_str(), &qp);
  if (rc != 0) {
    fs::remove(tmp, ec);
    throw IoError(fmt::format("llama.cpp could not quantize {} to {}: {}", in, p.name, take_errors()));
  }
  fs::rename(tmp, out);
  return static_cast<int64_t>(fs::file_size(out));
}

}  // namespace jointnas::llamacpp
