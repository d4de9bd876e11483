// Task evaluation glue (see task_eval.h).
#include "jointnas/eval/task_eval.h"

#include <chrono>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"

namespace jointnas::eval {
TaskResult evaluate_task(const model::LlamaModel& model, const tok::Tokenizer& tok, int64_t bos,
                         const TaskConfig& cfg, const TaskEvalOptions& opts) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<Instance> instances = load_instances(cfg, opts.data_dir, opts.limit, opts.num_fewshot);
  const int64_t prefix = opts.prefix_token >= 0 ? opts.prefix_token : bos;
  const int64_t max_len = opts.score.max_length > 0 ? opts.score.max_length : model.config().max_position_embeddings;
  // Requests, and for each instance the range of requests it owns (rolling: one per window).
  std::vector<LoglikRequest> reqs;
  std::vector<std::vector<size_t>> owned(instances.size());
  for (size_t i = 0; i < instances.size(); ++i) {
    const Instance& in = instances[i];
    if (cfg.output_type == OutputType::kLoglikelihoodRolling) {
      // tok_encode(text): BOS when the tokenizer adds it, then windows after prefix_token_id.
      std::vector<int64_t> ids;
      if (bos >= 0) ids.push_back(bos);
      for (int32_t id : tok.encode(in.continuations[0])) ids.push_back(id);
      JNAS_CHECK_CONFIG(prefix >= 0, "{}: rolling loglikelihood needs a BOS or EOS token as prefix", cfg.source);
      for (auto& w : rolling_windows(ids, prefix, max_len)) {
        owned[i].push_back(reqs.size());
        reqs.push_back(std::move(w));
      }
      continue;
    }
    for (size_t c = 0; c < in.continuations.size(); ++c) {
      owned[i].push_back(reqs.size());
      reqs.push_back(encode_request(tok, bos, in.contexts[c], in.continuations[c], prefix));
    }
  }
  const std::vector<LoglikResult> lls = score_requests(model, reqs, opts.score);
  TaskResult r;
  r.task = cfg.task;
  r.output_type = cfg.output_type;
  r.requests = static_cast<int64_t>(reqs.size());
  r.items.resize(instances.size());
  for (size_t i = 0; i < instances.size(); ++i) {
    ItemResult& it = r.items[i];
    it.subtask = instances[i].subtask;
    it.where = instances[i].where;
    if (cfg.output_type == OutputType::kLoglikelihoodRolling) {
      double sum = 0;  // lm-eval: sum over the windows, in window order
      int64_t tokens = 0;
      for (size_t k : owned[i]) {
        sum += lls[k].logprob;
        tokens += static_cast<int64_t>(reqs[k].continuation.size());
      }
      it.lls.push_back(sum);
      it.cont_tokens.push_back(tokens);
      continue;
    }
    for (size_t k : owned[i]) {
      it.lls.push_back(lls[k].logprob);
      it.greedy.push_back(lls[k].greedy);
      it.cont_tokens.push_back(static_cast<int64_t>(reqs[k].continuation.size()));
    }
  }
  score_items(cfg, instances, r);
  if (r.gold_out_of_range > 0) {
    JNAS_LOG_WARN("[eval tasks] {}: {} of {} documents have a gold label outside their choices; lm-eval scores them "
                  "as wrong (-100), and so does jointnas (check doc_to_target)",
                  cfg.task, r.gold_out_of_range, instances.size());
  }
  aggregate(cfg, r, opts.bootstrap_iters);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace jointnas::eval
