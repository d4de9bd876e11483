#include "jointnas/search/train_state.h"

#include <cstdio>
#include <filesystem>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "jointnas/core/error.h"
#include "jointnas/core/mapped_file.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/checkpoint.h"

namespace jointnas::search {

CheckpointDir::CheckpointDir(const Checkpointing& policy, std::string format)
    : policy_(policy), format_(std::move(format)), last_save_(std::chrono::steady_clock::now()) {}

std::string CheckpointDir::file(int64_t step, const char* ext) const {
  return fmt::format("{}/ckpt-{:06d}.{}", policy_.dir, step, ext);
}

bool CheckpointDir::due(int64_t steps_done, bool last) const {
  if (!enabled()) return false;
  if (last || interrupted() || steps_done % std::max<int64_t>(1, policy_.every) == 0) return true;
  const double since = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_save_).count();
  return policy_.every_seconds > 0 && since >= policy_.every_seconds;
}

void CheckpointDir::save(int64_t steps_done, const std::map<std::string, at::Tensor>& tensors, Json meta) {
  model::save_tensors(file(steps_done, "safetensors"), tensors);
  meta["format"] = format_;
  meta["step"] = steps_done;
  write_file_atomic(file(steps_done, "json"), meta.dump() + "\n");
  // The commit point: latest.json names a complete pair; the previous pair goes after it moves.
  const std::string latest = policy_.dir + "/latest.json";
  int64_t prev = -1;
  if (file_exists(latest)) {
    const Json j = Json::parse(read_text_file(latest), nullptr, false);
    if (j.is_object() && j.contains("step") && j["step"].is_number_integer()) prev = j["step"].get<int64_t>();
  }
  write_file_atomic(latest, Json{{"step", steps_done}}.dump() + "\n");
  if (prev >= 0 && prev != steps_done) {
    std::remove(file(prev, "safetensors").c_str());
    std::remove(file(prev, "json").c_str());
  }
  last_save_ = std::chrono::steady_clock::now();
}

std::optional<CheckpointDir::Loaded> CheckpointDir::load_latest(int64_t max_step) {
  if (!enabled()) return std::nullopt;
  const std::string latest = policy_.dir + "/latest.json";
  if (!file_exists(latest)) {
    std::error_code ec;
    std::filesystem::create_directories(policy_.dir, ec);
    JNAS_CHECK_IO(!ec && dir_exists(policy_.dir), "cannot create the checkpoint directory {}: {}", policy_.dir,
                  ec.message());
    return std::nullopt;
  }
  const auto step = get_int(read_json_file(latest), "step", latest);
  JNAS_CHECK_IO(step && *step >= 0 && *step <= max_step, "{}: 'step' must be in [0, {}]; remove {} to start over",
                latest, max_step, policy_.dir);
  Loaded l;
  l.step = *step;
  l.json_path = file(*step, "json");
  l.tensors_path = file(*step, "safetensors");
  l.meta = read_json_file(l.json_path);
  JNAS_CHECK_IO(has_format_tag(l.meta, format_) &&
                    l.meta.value("step", Json(-1)) == Json(*step),
                "{}: not a {} at step {}; remove {} to start over", l.json_path, format_, *step, policy_.dir);
  l.tensors = model::load_tensors(l.tensors_path);
  // A checkpoint is an input like any other: NaN LoRA factors or architecture logits in a damaged
  // or edited file made a resumed run train on garbage or pick the smallest architecture with
  // exit 0 (issue 26). Every floating tensor (weights, Adam moments) is checked before resuming.
  for (const auto& [name, t] : l.tensors) {
    if (!at::isFloatingType(t.scalar_type()) || t.numel() == 0) continue;
    if (!at::isfinite(t).all().item<bool>()) {
      throw IoError(fmt::format("{}: tensor '{}' holds {} values that are not finite (NaN or Inf)", l.tensors_path,
                                name, at::logical_not(at::isfinite(t)).sum().item<int64_t>()),
                    fmt::format("the checkpoint is damaged: remove {} to start over", policy_.dir));
    }
  }
  last_save_ = std::chrono::steady_clock::now();
  return l;
}

void CheckpointDir::put(std::map<std::string, at::Tensor>& t, const std::string& prefix,
                        const std::vector<at::Tensor>& v) {
  for (size_t i = 0; i < v.size(); ++i) t[fmt::format("{}/{:05d}", prefix, i)] = v[i];
}

void CheckpointDir::get(const Loaded& l, const std::string& prefix, std::vector<at::Tensor>& v) {
  at::NoGradGuard ng;
  for (size_t i = 0; i < v.size(); ++i) {
    const auto it = l.tensors.find(fmt::format("{}/{:05d}", prefix, i));
    JNAS_CHECK_IO(it != l.tensors.end() && it->second.sizes() == v[i].sizes(),
                  "{}: tensor {}/{:05d} missing or of another shape (a checkpoint of another run?)", l.tensors_path,
                  prefix, i);
    v[i].copy_(it->second);
  }
}

void check_finite(const at::Tensor& loss, int64_t step, const char* phase,
                  const std::vector<std::pair<std::string, at::Tensor>>& params, const std::string& checkpoint_dir) {
  if (at::isfinite(loss.detach()).all().item<bool>()) return;
  std::string culprit = "none of the parameters or gradients (the activations overflowed)";
  for (const auto& [name, p] : params) {
    if (!at::isfinite(p.detach()).all().item<bool>()) {
      culprit = fmt::format("parameter '{}'", name);
      break;
    }
    if (p.grad().defined() && !at::isfinite(p.grad()).all().item<bool>()) {
      culprit = fmt::format("the gradient of '{}'", name);
      break;
    }
  }
  const at::Tensor l = loss.detach().to(at::kCPU).to(at::kDouble).reshape({-1});
  std::string values;
  for (int64_t i = 0; i < l.numel(); ++i) values += fmt::format("{}{}", i ? ", " : "", l[i].item<double>());
  throw Error(fmt::format("{} step {}: the loss is not finite ([{}]); first non-finite tensor: {}", phase, step,
                          values, culprit),
              checkpoint_dir.empty()
                  ? "lower the learning rate or use float32 (--dtype float32) and run again"
                  : fmt::format("the last checkpoint in {} is intact: lower the learning rate or use float32 and run "
                                "the same command again to resume from it",
                                checkpoint_dir));
}

}  // namespace jointnas::search
