// Search and finetune steps at Llama-3.1-8B shapes (issue 6, acceptance 2): random bf16 weights on
// the GPU, a latency table with synthetic entries for every key the space needs (step time does not
// depend on the table's values), `steps` DNAS steps (each: one LoRA update and one architecture
// update, both with the teacher's forward pass) and `steps` finetune steps of a mid-size
// architecture. Prints one JSON line per stage: ms per step (median over steps after the first),
// peak allocated memory.
//   usage: search_bench CONFIG.json SPACE.yaml [steps=4] [batch=4] [seq_len=2048] [lora_rank=16]
#include <ATen/ATen.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "bench_checkpoint.h"
#include "jointnas/model/config.h"
#include "jointnas/profile/latency_table.h"
#include "jointnas/profile/required_keys.h"
#include "jointnas/profile/timing.h"
#include "jointnas/profile/workload.h"
#include "jointnas/search/cost.h"
#include "jointnas/search/dnas.h"
#include "jointnas/search/finetune.h"

namespace js = jointnas::search;
namespace jm = jointnas::model;
namespace jp = jointnas::profile;

namespace {

double median_after_first(std::vector<double> v) {
  if (v.size() > 1) v.erase(v.begin());
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

void report(const std::string& stage, const std::vector<double>& ms, int64_t B, int64_t T, const c10::Device& dev,
            const std::string& status) {
  const double m = median_after_first(ms);
  fmt::print("{{\"stage\": \"{}\", \"status\": \"{}\", \"steps\": {}, \"batch\": {}, \"seq_len\": {}, "
             "\"ms_per_step\": {:.1f}, \"peak_gib\": {:.2f}}}\n",
             stage, status, ms.size(), B, T, m, jp::peak_memory(dev) / double(1 << 30));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: search_bench CONFIG.json SPACE.yaml [steps] [batch] [seq_len] [lora_rank]\n");
    return 2;
  }
  const jm::LlamaConfig config = jm::LlamaConfig::from_file(argv[1]);
  const int64_t steps = argc > 3 ? std::stoll(argv[3]) : 4, B = argc > 4 ? std::stoll(argv[4]) : 4;
  const int64_t T = argc > 5 ? std::stoll(argv[5]) : 2048, rank = argc > 6 ? std::stoll(argv[6]) : 16;
  const c10::Device dev(at::kCUDA, 0);
  const js::SearchSpace space = js::SearchSpace::from_yaml_file(argv[2], config, "cuda");
  const jm::Checkpoint ck = jointnas::bench::random_gpu_checkpoint(config);
  std::mt19937_64 rng(1);
  std::vector<int64_t> tokens(static_cast<size_t>(4 * B * T));
  for (auto& t : tokens) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(config.vocab_size));

  js::SupernetOptions so;
  so.device = dev;
  so.dtype = at::kBFloat16;
  so.lora_rank = rank;
  {
    std::vector<double> ms;
    std::string status = "ok";
    try {
      js::Supernet net(ck, space, {}, so, 1);
      const jp::CostSpace cs = js::cost_space(space, config, {});
      jp::Workload w;
      jp::LatencyTable table;
      for (const std::string& k : jp::required_keys(config, cs, w)) table.set(k, {0.01 + 1e-9 * static_cast<double>(k.size()), 0, 0, 1});
      js::CostContext cc{&config, &space, {}, &table, w, 2};
      js::Budget b;
      b.latency_ms = 0.9 * js::arch_cost(cc, js::largest_arch(space)).latency_ms;
      js::DnasOptions o;
      o.steps = steps;
      o.batch = B;
      o.seq_len = T;
      js::LocalProcessGroup pg;
      jp::reset_peak_memory(dev);
      js::run_dnas(net, tokens, cc, b, o, pg, [&](const jointnas::Json& j) { ms.push_back(j["ms"].get<double>()); });
    } catch (const c10::OutOfMemoryError&) {
      status = "out_of_memory";
    }
    report("search", ms, B, T, dev, status);
  }
  c10::cuda::CUDACachingAllocator::emptyCache();
  {
    std::vector<double> ms;
    std::string status = "ok";
    try {
      // A mid-size architecture: the middle choice of every decision.
      js::Arch a = js::largest_arch(space);
      for (js::Decision& d : js::decisions(space, a)) *d.index = d.choices / 2;
      js::Supernet net(ck, js::restrict_to(space, a), {}, so, 2);
      js::FinetuneOptions o;
      o.steps = steps;
      o.batch = B;
      o.seq_len = T;
      js::LocalProcessGroup pg;
      jp::reset_peak_memory(dev);
      js::run_finetune(net, tokens, o, pg, [&](const jointnas::Json& j) { ms.push_back(j["ms"].get<double>()); });
    } catch (const c10::OutOfMemoryError&) {
      status = "out_of_memory";
    }
    report("finetune", ms, B, T, dev, status);
  }
  return 0;
}
