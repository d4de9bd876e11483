// Supernet training-step benchmark (issue 5, acceptance 2): Llama-3.1-8B shapes with random bf16
// weights, B x T tokens, soft probabilities over the whole search space, forward + backward with
// gradients to every architecture logit and LoRA adapter. For each mixing implementation and the
// plain dense model (same code, no mixing): ms per step (CUDA events, median), tokens/s and peak
// allocated memory. One JSON line per (mixing, layers); an out-of-memory run is reported as such.
//   usage: supernet_bench CONFIG.json SPACE.yaml [layers=32] [mixings=plain,factorized,dense_mask,loop]
//          [batch=4] [tokens=2048] [lora_rank=16] [repeats=3] [loss=ce|kd]
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <sstream>

#include "jointnas/model/config.h"
#include "jointnas/model/cuda_graph_decoder.h"
#include "jointnas/profile/timing.h"
#include "bench_checkpoint.h"
#include "jointnas/search/head_loss.h"
#include "jointnas/search/supernet.h"

namespace js = jointnas::search;
namespace jm = jointnas::model;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string x; std::getline(ss, x, ',');) out.push_back(x);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    fmt::print(stderr, "usage: supernet_bench CONFIG.json SPACE.yaml [layers] [mixings] [batch] [tokens] [lora_rank] [repeats] [loss=ce|kd]\n");
    return 2;
  }
  jm::LlamaConfig config = jm::LlamaConfig::from_file(argv[1]);
  const int64_t layers = argc > 3 ? std::stoll(argv[3]) : config.num_hidden_layers;
  const auto mixings = split(argc > 4 ? argv[4] : "plain,factorized,dense_mask,loop");
  const int64_t B = argc > 5 ? std::stoll(argv[5]) : 4, T = argc > 6 ? std::stoll(argv[6]) : 2048;
  const int64_t rank = argc > 7 ? std::stoll(argv[7]) : 16;
  const int repeats = argc > 8 ? std::stoi(argv[8]) : 3;
  const std::string loss_kind = argc > 9 ? argv[9] : "ce";  // ce | kd
  config.num_hidden_layers = layers;
  const c10::Device dev(at::kCUDA, 0);
  const at::Tensor ids = at::randint(config.vocab_size, {B, T}, at::TensorOptions().dtype(at::kLong).device(dev));
  const at::Tensor targets = at::randint(config.vocab_size, {B * T}, at::TensorOptions().dtype(at::kLong).device(dev));
  for (const auto& name : mixings) {
    const js::Mixing mixing = js::parse_mixing(name);
    std::string status = "ok";
    double ms = 0;
    int64_t peak = 0, weights = 0;
    double log10_archs = 0;
    try {
      js::SearchSpace space = mixing == js::Mixing::kPlain
                                  ? js::SearchSpace::dense(config)
                                  : js::SearchSpace::from_yaml_file(argv[2], config, "cuda");
      log10_archs = space.log10_num_architectures();
      js::SupernetOptions o;
      o.mixing = mixing;
      o.device = dev;
      o.dtype = at::kBFloat16;
      o.lora_rank = rank;
      js::Supernet net = [&] {
        jm::Checkpoint ck = jointnas::bench::random_gpu_checkpoint(config);
        return js::Supernet(ck, space, {}, o, 1);
      }();
      c10::cuda::CUDACachingAllocator::emptyCache();
      c10::cuda::device_synchronize();
      weights = c10::cuda::CUDACachingAllocator::getDeviceStats(0)
                    .allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)]
                    .current;
      std::vector<at::Tensor> params;
      for (auto& [n, t] : net.named_arch_parameters()) params.push_back(t);
      for (auto& [n, t] : net.named_lora_parameters()) params.push_back(t);
      // The loss at the head in row chunks (search/head_loss.h): the [B*T, vocab] logits never
      // exist in full. kd adds the teacher's forward pass (no gradient) as the search does.
      js::HeadLossOptions lo;
      lo.kd_weight = loss_kind == "kd" ? 1.0 : 0.0;
      lo.ce_weight = loss_kind == "kd" ? 0.0 : 1.0;
      const at::Tensor head = net.lm_head().detach();
      auto step = [&] {
        for (auto& t : params) t.mutable_grad() = at::Tensor();
        at::Tensor teacher = lo.kd_weight != 0 ? net.teacher_hidden(ids).view({B * T, -1}) : at::Tensor();
        at::Tensor h = net.hidden(ids, net.distribution(js::Relaxation::kSoftmax)).view({B * T, -1});
        js::head_loss(h, head, teacher, targets, lo)[0].backward();
      };
      step();  // warm-up (dense_mask builds its stored masks here)
      jointnas::profile::reset_peak_memory(dev);
      ms = jm::cuda_time_ms(step, 0, repeats);
      peak = jointnas::profile::peak_memory(dev);
    } catch (const c10::OutOfMemoryError& e) {
      status = "out_of_memory";
    }
    c10::cuda::CUDACachingAllocator::emptyCache();
    fmt::print("{{\"mixing\": \"{}\", \"loss\": \"{}\", \"layers\": {}, \"batch\": {}, \"tokens\": {}, \"lora_rank\": {}, "
               "\"log10_architectures\": {:.1f}, \"status\": \"{}\", \"ms_per_step\": {:.1f}, "
               "\"tokens_per_s\": {:.0f}, \"peak_gib\": {:.2f}, \"resident_after_build_gib\": {:.2f}}}\n",
               name, loss_kind, layers, B, T, rank, log10_archs, status, ms, ms > 0 ? B * T * 1000.0 / ms : 0.0,
               peak / double(1 << 30), weights / double(1 << 30));
    std::fflush(stdout);
  }
  return 0;
}
