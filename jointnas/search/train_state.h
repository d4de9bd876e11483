// What the training loops (search, finetune) share so that hours of work survive a kill, a full
// disk or a numerical blow-up: checkpoint directories with an atomic commit point, and a guard
// that names the tensor that went non-finite.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "jointnas/core/json_util.h"

namespace jointnas::search {

// When and where a loop checkpoints (docs/search.md "Checkpoints").
struct Checkpointing {
  std::string dir;              // empty: no checkpoints
  int64_t every = 10;           // steps
  double every_seconds = 300;   // and at least this often in wall time (0: steps only)
  // Set asynchronously (SIGINT / SIGTERM handler): the loop checkpoints after the current step and
  // throws Interrupted.
  const std::atomic<bool>* interrupt = nullptr;
  // Called with the step a resumed loop continues from (the caller trims its log).
  std::function<void(int64_t)> on_resume;
};

// A directory of ckpt-NNNNNN.{safetensors,json} pairs. latest.json, written last and atomically,
// names the one complete pair; older pairs are deleted after it moves. Every file is written
// atomically (write, fsync, rename), so a kill at any moment leaves the previous good pair.
class CheckpointDir {
 public:
  CheckpointDir(const Checkpointing& policy, std::string format);

  bool enabled() const { return !policy_.dir.empty(); }
  bool interrupted() const { return policy_.interrupt != nullptr && policy_.interrupt->load(); }
  // Whether to save after `steps_done` steps: every N steps, every T seconds since the last save,
  // at the end, or when interrupted.
  bool due(int64_t steps_done, bool last) const;

  // `meta` gets "format" and "step"; tensors are copied to the CPU.
  void save(int64_t steps_done, const std::map<std::string, at::Tensor>& tensors, Json meta);

  struct Loaded {
    int64_t step = 0;
    std::map<std::string, at::Tensor> tensors;
    Json meta;
    std::string json_path, tensors_path;
  };
  // The committed checkpoint, if any, after checking its format and step <= max_step; without one
  // the directory is created. Throws IoError on a damaged or foreign checkpoint, saying what to do.
  std::optional<Loaded> load_latest(int64_t max_step);

  // Tensor lists stored as "prefix/00000", "prefix/00001", ...
  static void put(std::map<std::string, at::Tensor>& t, const std::string& prefix, const std::vector<at::Tensor>& v);
  // Copies them back into `v` in place (shapes must match).
  static void get(const Loaded& l, const std::string& prefix, std::vector<at::Tensor>& v);

 private:
  std::string file(int64_t step, const char* ext) const;
  Checkpointing policy_;
  std::string format_;
  mutable std::chrono::steady_clock::time_point last_save_;
};

// The NaN/Inf guard of the training loops. `loss` holds the loss terms of one step; when any is
// non-finite, the parameters and their gradients are scanned and an Error names the first
// non-finite tensor, the step and the phase, and says that the last checkpoint is intact.
void check_finite(const at::Tensor& loss, int64_t step, const char* phase,
                  const std::vector<std::pair<std::string, at::Tensor>>& params, const std::string& checkpoint_dir);

}  // namespace jointnas::search
