// The checks of a run config before any stage runs; see run_config.h (check).
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "jointnas/core/error.h"
#include "jointnas/core/machine.h"
#include "jointnas/llamacpp/llamacpp.h"
#include "jointnas/model/llama.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/pipeline/run_config.h"
#include "jointnas/pipeline/study_plan.h"
#include "jointnas/quant/format.h"
#include "jointnas/search/space.h"

namespace jointnas::pipeline {
namespace {

namespace fs = std::filesystem;

// A file the config names must exist and be a regular file (a FIFO or a directory where a file
// should be is named as such).
void check_file(const RunConfig& c, const char* key, const std::string& path, bool dir_ok = false) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw ConfigError(fmt::format("{}: '{}': {} does not exist", c.source, key, path),
                      "paths are relative to the run config's folder; \"$SHARED/...\" is the shared data folder "
                      "(JNAS_SHARED_DIR)");
  }
  if (S_ISREG(st.st_mode) || (dir_ok && S_ISDIR(st.st_mode))) return;
  const char* what = S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO (named pipe)" : "not a regular file";
  throw ConfigError(fmt::format("{}: '{}': {} is {}, expected a {}", c.source, key, path, what,
                                dir_ok ? "file or directory" : "file"));
}

void check_data(const RunConfig& c, RunMode mode) {
  if (c.data.calibration.empty()) {
    throw ConfigError(fmt::format("{}: 'data.calibration' is required: the text the importance ranking is computed on",
                                  c.source),
                      "add for example `data: {calibration: $SHARED/data/text/wikitext2/wikitext2_train_5k.txt}`");
  }
  check_file(c, "data.calibration", c.data.calibration);
  if (!c.data.train.empty()) check_file(c, "data.train", c.data.train);
  if (!c.data.eval.empty()) check_file(c, "data.eval", c.data.eval);
  JNAS_CHECK_CONFIG(mode != RunMode::kStudy || !c.data.eval.empty(),
                    "{}: 'data.eval' (the held-out perplexity text) is required by `jointnas pareto`", c.source);
}

// The workload, the eval window and the bench contexts against the model's positions: a decode
// step at context c needs c + 1 positions, a prefill of s tokens s positions.
void check_positions(const RunConfig& c, const model::LlamaConfig& m) {
  const int64_t P = m.max_position_embeddings;
  const profile::Workload& w = c.workload;
  if (w.kind == "decode") {
    JNAS_CHECK_CONFIG(w.context + 1 <= P,
                      "{}: 'workload.context' {} does not fit the model: a decode step at context c needs c + 1 of its "
                      "{} positions (at most {})",
                      c.source, w.context, P, P - 1);
  } else {
    JNAS_CHECK_CONFIG(w.tokens <= P, "{}: 'workload.tokens' {} exceeds the model's {} positions", c.source, w.tokens, P);
  }
  if (!c.data.eval.empty()) {
    const int64_t win = ppl_window(c.eval.ppl, P);
    JNAS_CHECK_CONFIG(win >= 2 && win <= P,
                      "{}: the perplexity window {} ('eval.window', or the protocol's) does not fit the model's {} "
                      "positions",
                      c.source, win, P);
  }
}

// Values that would allocate more memory than this machine has are refused here, before any
// stage (issue 26: they were a bad_alloc or the OOM killer in the stage that used them, after the
// stages before it had run). Each is a lower bound of what the stage allocates: one forward pass
// of its batch (model::forward_bytes: logits and the widest activation, no gradients) or the
// workload's KV cache, on the CPU against machine_memory_bytes(). A CUDA run's device memory is
// checked by its stages (the card is not queried here).
void check_memory(const RunConfig& c, const model::LlamaConfig& m) {
  if (c.device != "cpu") return;
  const std::vector<model::LayerSpec> specs = model::dense_layer_specs(m);
  const int64_t P = m.max_position_embeddings;
  constexpr int64_t kFp32 = 4;  // the CPU runs in fp32
  struct Use {
    const char* what;
    int64_t batch, tokens;
    const char* keys;
  };
  const Use uses[] = {
      {"importance", c.importance.batch, std::min(c.importance.seq_len, P), "'importance.batch' or 'importance.seq_len'"},
      {"search", c.search.dnas.batch, std::min(c.search.dnas.seq_len, P), "'search.batch' or 'search.seq_len'"},
      {"finetune", c.finetune.train.batch, std::min(c.finetune.train.seq_len, P),
       "'finetune.batch' or 'finetune.seq_len'"},
      {"eval ppl", c.eval.ppl.batch, std::min(ppl_window(c.eval.ppl, P), P) - 1, "'eval.batch' or 'eval.window'"},
  };
  for (const Use& u : uses) {
    check_memory_fits(model::forward_bytes(m, specs, u.batch, u.tokens, false, kFp32),
                      fmt::format("{}: {}: a forward pass of {} x {} tokens", c.source, u.what, u.batch, u.tokens),
                      u.keys);
  }
  // The workload's KV cache (profile and bench allocate it): K and V of every layer.
  const int64_t positions = c.workload.kind == "decode" ? c.workload.context + 1 : c.workload.tokens;
  uint64_t kv = 0;
  for (const model::LayerSpec& l : specs) {
    kv = saturating_add(kv, saturating_mul(saturating_mul(2 * static_cast<uint64_t>(c.workload.batch),
                                                          static_cast<uint64_t>(positions)),
                                           static_cast<uint64_t>(l.num_key_value_heads * l.head_dim * kFp32)));
  }
  check_memory_fits(kv, fmt::format("{}: the workload's KV cache ({} x {} positions)", c.source, c.workload.batch,
                                    positions),
                    "'workload.batch' or 'workload.context'");
}

// The target llama.cpp (docs/llamacpp.md): a build that links libllama, one sequence (llama-bench's
// batch), and a space whose every format is a ggml type, since llama.cpp runs nothing else and the
// GGUF export would otherwise convert the searched formats to other ones (the space the search
// traded would not be what llama.cpp times).
void check_llamacpp_target(const RunConfig& c, const search::SearchSpace& space) {
  if (!llamacpp::available()) {
    throw ConfigError(fmt::format("{}: 'target_device: llama.cpp', but this build has no llama.cpp", c.source),
                      "run scripts/setup_llama_cpp.sh, then reconfigure and rebuild");
  }
  JNAS_CHECK_CONFIG(c.workload.batch == 1,
                    "{}: 'workload.batch' is {}; with 'target_device: llama.cpp' the workload is one sequence "
                    "(batch 1, as llama-bench times it)",
                    c.source, c.workload.batch);
  std::set<std::string> other;
  for (const search::LayerChoices& l : space.layers) {
    for (const auto& slot : l.formats) {
      for (const std::string& f : slot) {
        if (quant::find_format(f).weight != quant::WeightType::kGgml) other.insert(f);
      }
    }
  }
  if (!other.empty()) {
    throw ConfigError(fmt::format("{}: 'target_device: llama.cpp', but the search space {} offers {}, which {} "
                                  "llama.cpp runs",
                                  c.source, c.search_space.str(), fmt::join(other, ", "),
                                  other.size() == 1 ? "is not a ggml type" : "are not ggml types"),
                      "list only f16, q8_0, q4_0, q4_k, q5_k, q6_k in the space's formats, or leave `formats` out "
                      "(the target's default: the ggml types whose blocks fit each slot's widths)");
  }
}

}  // namespace

void check(const RunConfig& c, RunMode mode) {
  check_file(c, "model", c.model, /*dir_ok=*/true);
  check_file(c, "search_space", c.search_space);
  if (!c.table.empty()) check_file(c, "table", c.table);
  check_data(c, mode);
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  JNAS_CHECK_CONFIG(c.threads <= static_cast<int64_t>(cores),
                    "{}: 'threads' {} exceeds this machine's {} cores (more threads than cores only slow every "
                    "stage down)",
                    c.source, c.threads, cores);
  if (mode == RunMode::kRun) {
    check_budget(c.budget, c.source + ": 'budget'");
  } else {
    JNAS_CHECK_CONFIG(c.has_pareto, "{}: `jointnas pareto` needs a 'pareto' section (budgets, methods, ...)", c.source);
  }
  // The model's config and the search space against it: cheap (the weights are mapped, not read).
  const model::Checkpoint ck = model::load_checkpoint(c.model);
  check_positions(c, ck.config);
  check_memory(c, ck.config);
  const search::SearchSpace space = search::SearchSpace::from_yaml_file(c.search_space, ck.config, c.target());
  if (c.llamacpp()) check_llamacpp_target(c, space);
  if (mode == RunMode::kStudy) check_study(c, space);
}

}  // namespace jointnas::pipeline
