// HF directory loading (single file or sharded index) and saving.
#include "jointnas/model/checkpoint.h"

#include <ATen/ATen.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/model/llama2c.h"

namespace jointnas::model {
namespace fs = std::filesystem;
namespace {

at::ScalarType to_scalar_type(StDtype d, const std::string& where) {
  switch (d) {
    case StDtype::F64: return at::kDouble;
    case StDtype::F32: return at::kFloat;
    case StDtype::F16: return at::kHalf;
    case StDtype::BF16: return at::kBFloat16;
    case StDtype::I64: return at::kLong;
    case StDtype::I32: return at::kInt;
    case StDtype::I16: return at::kShort;
    case StDtype::I8: return at::kChar;
    case StDtype::U8: return at::kByte;
    case StDtype::BOOL: return at::kBool;
    case StDtype::F8_E4M3: return at::kFloat8_e4m3fn;
    case StDtype::F8_E5M2: return at::kFloat8_e5m2;
    default: break;
  }
  throw IoError(fmt::format("{}: dtype {} is not supported by the runtime", where, st_dtype_name(d)));
}

StDtype to_st_dtype(at::ScalarType t) {
  switch (t) {
    case at::kDouble: return StDtype::F64;
    case at::kFloat: return StDtype::F32;
    case at::kHalf: return StDtype::F16;
    case at::kBFloat16: return StDtype::BF16;
    case at::kLong: return StDtype::I64;
    case at::kInt: return StDtype::I32;
    case at::kShort: return StDtype::I16;
    case at::kChar: return StDtype::I8;
    case at::kByte: return StDtype::U8;
    case at::kBool: return StDtype::BOOL;
    case at::kFloat8_e4m3fn: return StDtype::F8_E4M3;
    case at::kFloat8_e5m2: return StDtype::F8_E5M2;
    default: break;
  }
  throw Error(fmt::format("cannot write dtype {} to safetensors", c10::toString(t)));
}

void add_file(Checkpoint& ck, const std::string& path, const std::set<std::string>* wanted) {
  auto st = SafetensorsFile::open(path);
  for (const auto& [name, e] : st->entries()) {
    if (wanted != nullptr && wanted->count(name) == 0) continue;
    JNAS_CHECK_IO(ck.tensors.count(name) == 0, "{}: tensor '{}' also appears in {}", path, name,
                  ck.tensor_source[name]);
    ck.tensors[name] = tensor_from_entry(st, e);
    ck.tensor_source[name] = path;
  }
}

// Every tensor of an HF directory must be one the model reads (or one transformers itself skips):
// a config.json with 4 layers over an 8-layer checkpoint loaded and ran a 4-layer model, ignoring
// 36 tensors without a word (issue 26). Names are checked, not shapes (from_checkpoint does that):
// the embedding, the final norm, lm_head (ignored by transformers too when the embeddings are
// tied), and per layer l < num_hidden_layers its two norms, the seven linears (float weights or
// packed weight / weight_scale / weight_zero) and the legacy rotary_emb.inv_freq buffer.
void check_every_tensor_used(const Checkpoint& ck) {
  static const std::set<std::string> kLayerNames = [] {
    std::set<std::string> n = {"input_layernorm.weight", "post_attention_layernorm.weight"};
    for (const char* lin : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"}) {
      for (const char* part : {".weight", ".weight_scale", ".weight_zero"}) n.insert(std::string(lin) + part);
    }
    return n;
  }();
  const int64_t L = ck.config.num_hidden_layers;
  std::vector<std::string> unused;
  int64_t max_layer = -1;  // the highest layer index the names hold
  for (const auto& [name, t] : ck.tensors) {
    if (name == "model.embed_tokens.weight" || name == "model.norm.weight" || name == "lm_head.weight" ||
        name.ends_with("rotary_emb.inv_freq")) {
      continue;  // rotary_emb.inv_freq: a buffer older exports saved, recomputed by every runtime
    }
    constexpr std::string_view kLayers = "model.layers.";
    if (name.starts_with(kLayers)) {
      const size_t dot = name.find('.', kLayers.size());
      const std::string idx = name.substr(kLayers.size(), dot == std::string::npos ? 0 : dot - kLayers.size());
      if (!idx.empty() && idx.size() <= 6 && idx.find_first_not_of("0123456789") == std::string::npos) {
        const int64_t l = std::stoll(idx);
        max_layer = std::max(max_layer, l);
        if (l < L && kLayerNames.count(name.substr(dot + 1)) != 0) continue;
      }
    }
    unused.push_back(name);
  }
  if (unused.empty()) return;
  std::vector<std::string> shown(unused.begin(), unused.begin() + std::min<size_t>(unused.size(), 4));
  const std::string fix =
      max_layer >= L
          ? fmt::format("the weights hold layers 0 to {} but num_hidden_layers is {}: set num_hidden_layers "
                        "(and jointnas_layer_specs) to match the weights, or use the config.json that came "
                        "with them",
                        max_layer, L)
          : "config.json and the weights disagree (a tensor of another architecture, e.g. a bias the model "
            "has no place for): use the config.json and weights of one Llama model";
  throw IoError(fmt::format("{}: {} tensor{} of the checkpoint would not be used by the model config.json "
                            "describes ({} layers): '{}'{}",
                            ck.config_source, unused.size(), unused.size() == 1 ? "" : "s", L,
                            fmt::join(shown, "', '"), unused.size() > shown.size() ? ", ..." : ""),
                fix);
}

}  // namespace

at::Tensor tensor_from_entry(const std::shared_ptr<SafetensorsFile>& file, const StEntry& e) {
  auto dtype = to_scalar_type(e.dtype, file->path() + ": tensor '" + e.name + "'");
  // from_blob never writes; the mapping is PROT_READ, so a stray in-place op would fault rather
  // than corrupt the file. The deleter keeps the mapping alive as long as any view exists.
  std::shared_ptr<SafetensorsFile> keep = file;
  return at::from_blob(const_cast<uint8_t*>(file->data(e)), e.shape,
                       [keep](void*) mutable { keep.reset(); },
                       at::TensorOptions().dtype(dtype).device(at::kCPU));
}

Checkpoint load_hf_directory(const std::string& dir) {
  Checkpoint ck;
  ck.format = "hf";
  ck.config_source = (fs::path(dir) / "config.json").string();
  JNAS_CHECK_IO(file_exists(ck.config_source), "{}: no config.json in the model directory", dir);
  ck.config = LlamaConfig::from_file(ck.config_source);
  const std::string single = (fs::path(dir) / "model.safetensors").string();
  const std::string index = (fs::path(dir) / "model.safetensors.index.json").string();
  if (file_exists(index)) {
    const auto shards = read_safetensors_index(read_json_file(index), dir, index);
    for (const auto& [path, names] : shards) {
      JNAS_CHECK_IO(file_exists(path), "{}: shard '{}' listed in the index does not exist", index,
                    fs::path(path).filename().string());
      add_file(ck, path, &names);
      for (const auto& n : names) {
        JNAS_CHECK_IO(ck.tensors.count(n) != 0, "{}: tensor '{}' is listed for shard '{}' but is not in it",
                      index, n, fs::path(path).filename().string());
      }
    }
  } else if (file_exists(single)) {
    add_file(ck, single, nullptr);
  } else {
    throw IoError(fmt::format("{}: no model.safetensors or model.safetensors.index.json", dir),
                  "jointnas reads safetensors checkpoints (PyTorch .bin pickles are never loaded: "
                  "they can execute code)");
  }
  check_every_tensor_used(ck);
  return ck;
}

std::optional<std::string> first_non_finite(const Checkpoint& ckpt) {
  for (const auto& [name, t] : ckpt.tensors) {
    if (!t.is_floating_point() || at::isfinite(t).all().item<bool>()) continue;
    const auto src = ckpt.tensor_source.find(name);
    return src == ckpt.tensor_source.end() ? name : fmt::format("{} ({})", name, src->second);
  }
  return std::nullopt;
}

Checkpoint load_checkpoint(const std::string& path) {
  if (dir_exists(path)) return load_hf_directory(path);
  if (file_exists(path)) {
    if (path.size() > 4 && path.substr(path.size() - 4) == ".bin") return load_llama2c(path);
    throw IoError(fmt::format("'{}' is a file, not a model directory", path),
                  "pass an HF model directory (config.json + *.safetensors) or a llama2.c .bin");
  }
  throw IoError(fmt::format("model path '{}' does not exist", path),
                "pass an HF model directory (config.json + *.safetensors) or a llama2.c .bin");
}

void save_hf_directory(const Checkpoint& ck, const std::string& dir, const std::string& dtype_name) {
  at::ScalarType dt = dtype_name == "bfloat16" ? at::kBFloat16
                      : dtype_name == "float16" ? at::kHalf
                      : dtype_name == "float32" ? at::kFloat
                                                : at::ScalarType::Undefined;
  JNAS_CHECK_CONFIG(dt != at::ScalarType::Undefined,
                    "unknown dtype '{}': expected float32, bfloat16 or float16", dtype_name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  JNAS_CHECK_IO(!ec, "cannot create output directory '{}': {}", dir, ec.message());
  std::vector<at::Tensor> keep;
  std::vector<StWriteTensor> out;
  for (const auto& [name, t] : ck.tensors) {
    // Float weights take the requested dtype; packed data and quantization scales (whose dtype
    // is part of their format, docs/formats.md) are written as they are.
    const bool float_weight = (t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16 ||
                               t.scalar_type() == at::kHalf) &&
                              !name.ends_with("_scale");
    at::Tensor c = t.to(at::kCPU, float_weight ? dt : t.scalar_type()).contiguous();
    keep.push_back(c);
    out.push_back({name, to_st_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr(),
                   static_cast<size_t>(c.nbytes())});
  }
  write_safetensors((fs::path(dir) / "model.safetensors").string(), out, {{"format", "pt"}});
  LlamaConfig cfg = ck.config;
  cfg.torch_dtype = dtype_name;
  write_file_atomic((fs::path(dir) / "config.json").string(), cfg.to_json().dump(2) + "\n");
}

void save_tensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors) {
  std::vector<at::Tensor> keep;
  std::vector<StWriteTensor> out;
  for (const auto& [name, t] : tensors) {
    at::Tensor c = t.detach().to(at::kCPU).contiguous();
    keep.push_back(c);
    out.push_back({name, to_st_dtype(c.scalar_type()), c.sizes().vec(), c.data_ptr(), static_cast<size_t>(c.nbytes())});
  }
  write_safetensors(path, out, {{"format", "jointnas-state"}});
}

std::map<std::string, at::Tensor> load_tensors(const std::string& path) {
  auto st = SafetensorsFile::open(path);
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, e] : st->entries()) out[name] = tensor_from_entry(st, e).clone();
  return out;
}

}  // namespace jointnas::model
