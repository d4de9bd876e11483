// A small harness over libllama for the GGUF tests: all-position logits of one sequence, greedy
// generation, tokenization. CPU, fp32 KV cache, no flash attention, no weight repacking (the
// repacked kernels quantize activations in their own layout; docs/export.md), 2 threads.
#pragma once

#include <llama.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace jointnas::testing {

class LlamaCppRunner {
 public:
  explicit LlamaCppRunner(const std::string& gguf) {
    static const bool init = [] {
      llama_log_set(
          [](ggml_log_level level, const char* text, void*) {
            if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
          },
          nullptr);
      llama_backend_init();
      return true;
    }();
    (void)init;
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    mp.use_extra_bufts = false;
    mp.progress_callback = [](float, void*) { return true; };  // no progress dots
    model_ = llama_model_load_from_file(gguf.c_str(), mp);
    if (model_ == nullptr) throw std::runtime_error("llama.cpp could not load " + gguf);
    vocab_ = llama_model_get_vocab(model_);
  }
  ~LlamaCppRunner() {
    if (model_ != nullptr) llama_model_free(model_);
  }
  LlamaCppRunner(const LlamaCppRunner&) = delete;
  LlamaCppRunner& operator=(const LlamaCppRunner&) = delete;

  int32_t n_vocab() const { return llama_vocab_n_tokens(vocab_); }

  // Logits [T * V] of every position of `ids` in one batch (positions 0..T-1).
  std::vector<float> logits(const std::vector<int32_t>& ids) const {
    llama_context* ctx = context(static_cast<int32_t>(ids.size()));
    llama_batch b = llama_batch_init(static_cast<int32_t>(ids.size()), 0, 1);
    for (size_t i = 0; i < ids.size(); ++i) add(b, ids[i], static_cast<int32_t>(i), true);
    if (llama_decode(ctx, b) != 0) throw std::runtime_error("llama_decode failed");
    const int32_t V = n_vocab();
    std::vector<float> out(ids.size() * static_cast<size_t>(V));
    for (size_t i = 0; i < ids.size(); ++i) {
      const float* l = llama_get_logits_ith(ctx, static_cast<int32_t>(i));
      std::copy(l, l + V, out.begin() + static_cast<int64_t>(i) * V);
    }
    llama_batch_free(b);
    llama_free(ctx);
    return out;
  }

  // Greedy continuation of `prompt` by n tokens (argmax, first index on ties).
  std::vector<int32_t> greedy(const std::vector<int32_t>& prompt, int n) const {
    llama_context* ctx = context(static_cast<int32_t>(prompt.size()) + n);
    llama_batch b = llama_batch_init(static_cast<int32_t>(prompt.size()), 0, 1);
    for (size_t i = 0; i < prompt.size(); ++i)
      add(b, prompt[i], static_cast<int32_t>(i), i + 1 == prompt.size());
    std::vector<int32_t> out;
    int32_t pos = static_cast<int32_t>(prompt.size());
    for (int step = 0; step < n; ++step) {
      if (llama_decode(ctx, b) != 0) throw std::runtime_error("llama_decode failed");
      const float* l = llama_get_logits_ith(ctx, -1);
      int32_t best = 0;
      for (int32_t v = 1; v < n_vocab(); ++v) {
        if (l[v] > l[best]) best = v;
      }
      out.push_back(best);
      b.n_tokens = 0;
      add(b, best, pos++, true);
    }
    llama_batch_free(b);
    llama_free(ctx);
    return out;
  }

  std::vector<int32_t> tokenize(const std::string& text, bool add_special) const {
    std::vector<llama_token> t(text.size() + 16);
    int32_t n =
        llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), t.data(),
                       static_cast<int32_t>(t.size()), add_special, /*parse_special=*/false);
    if (n < 0) {
      t.resize(static_cast<size_t>(-n));
      n = llama_tokenize(vocab_, text.data(), static_cast<int32_t>(text.size()), t.data(),
                         static_cast<int32_t>(t.size()), add_special, false);
    }
    t.resize(static_cast<size_t>(std::max(n, 0)));
    return std::vector<int32_t>(t.begin(), t.end());
  }

 private:
  llama_context* context(int32_t n_tokens) const {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = static_cast<uint32_t>(std::max(n_tokens, 16) + 16);
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_seq_max = 1;
    cp.n_threads = 2;
    cp.n_threads_batch = 2;
    cp.type_k = GGML_TYPE_F32;
    cp.type_v = GGML_TYPE_F32;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    llama_context* ctx = llama_init_from_model(model_, cp);
    if (ctx == nullptr) throw std::runtime_error("llama_init_from_model failed");
    return ctx;
  }
  static void add(llama_batch& b, int32_t id, int32_t pos, bool logits) {
    const int32_t i = b.n_tokens++;
    b.token[i] = id;
    b.pos[i] = pos;
    b.n_seq_id[i] = 1;
    b.seq_id[i][0] = 0;
    b.logits[i] = logits ? 1 : 0;
  }

  llama_model* model_ = nullptr;
  const llama_vocab* vocab_ = nullptr;
};

}  // namespace jointnas::testing
