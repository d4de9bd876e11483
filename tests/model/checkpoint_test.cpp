// Checkpoint loading: sharded HF directories, llama2.c files, zero-copy mapping, and every
// bad-input case (missing/corrupt files, config-weight disagreements, escaping shard names).
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/core/paths.h"

#include "jointnas/core/error.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/llama.h"
#include "jointnas/model/llama2c.h"
#include "tensor_assert.h"
#include "tiny_llama.h"

using namespace jointnas;
using namespace jointnas::model;
using jointnas::testing::fixture_path;
using jointnas::testing::repo_path;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_ck_" + name);
  jointnas::remove_tree(fs::path(d).string());
  fs::create_directories(d);
  return d;
}

// Copies the tiny llama3 fixture (sharded) into a scratch directory to corrupt it.
fs::path copy_tiny(const std::string& name) {
  fs::path d = fresh_dir(name);
  for (const auto& e : fs::directory_iterator(fixture_path("model/tiny_llama3"))) {
    fs::copy_file(e.path(), d / e.path().filename());
  }
  return d;
}

void write_text(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

// Loads checkpoint + runtime; returns the IoError message (empty if it loaded).
std::string load_error(const std::string& path) {
  try {
    Checkpoint ck = load_checkpoint(path);
    LlamaModel::from_checkpoint(ck, {});
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Checkpoint, LoadsShardedIndexZeroCopy) {
  Checkpoint ck = load_checkpoint(fixture_path("model/tiny_llama3"));
  EXPECT_EQ(ck.config.head_dim, 32);
  EXPECT_EQ(ck.config.rope.rope_type, "llama3");
  EXPECT_GT(ck.tensors.size(), 10u);
  // The mapped tensors are views of the file: reading them costs no second copy in RAM.
  std::set<std::string> shards;
  for (const auto& [n, src] : ck.tensor_source) shards.insert(src);
  EXPECT_GT(shards.size(), 1u);
  const at::Tensor& t = ck.tensors.at("model.layers.0.mlp.up_proj.weight");
  auto st = SafetensorsFile::open(ck.tensor_source.at("model.layers.0.mlp.up_proj.weight"));
  EXPECT_EQ(t.scalar_type(), at::kFloat);
  // An fp32 runtime on the CPU keeps non-fused weights as the very same mapped memory.
  LlamaModel m = LlamaModel::from_checkpoint(ck, {});
  EXPECT_EQ(m.state_dict().at("model.embed_tokens.weight").data_ptr(),
            ck.tensors.at("model.embed_tokens.weight").data_ptr());
}

TEST(Checkpoint, Llama2cV1EqualsLegacy) {
  const std::string legacy = repo_path("models/stories260K/stories260K.bin");
  const std::string v1 = repo_path("models/stories260K/stories260K_v1.bin");
  Checkpoint a = load_checkpoint(legacy), b = load_checkpoint(v1);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (const auto& [name, t] : a.tensors) {
    ASSERT_TRUE(b.tensors.count(name)) << name;
    EXPECT_TRUE(at::equal(t, b.tensors.at(name))) << name;
  }
  EXPECT_EQ(a.config.to_json(), b.config.to_json());
  EXPECT_EQ(a.config.num_key_value_heads, 4);
  EXPECT_EQ(a.config.intermediate_size, 172);
}

TEST(Checkpoint, RotaryPermutationMatchesHfRowOrder) {
  // Head of 8 dims: interleaved rows (0,1),(2,3),(4,5),(6,7) -> rotate-half order 0,2,4,6,1,3,5,7.
  at::Tensor w = at::arange(8, at::kFloat).view({8, 1});
  at::Tensor p = permute_rotary_rows(w, 1);
  EXPECT_TRUE(at::equal(p.view({-1}), at::tensor({0.f, 2.f, 4.f, 6.f, 1.f, 3.f, 5.f, 7.f})));
}

TEST(CheckpointBadInput, NonexistentPath) {
  EXPECT_NE(load_error("/nonexistent/model").find("does not exist"), std::string::npos);
}

TEST(CheckpointBadInput, MissingAndMalformedConfig) {
  fs::path d = copy_tiny("cfg");
  write_text(d / "config.json", "{\"hidden_size\": 64,,}");
  EXPECT_NE(load_error(d.string()).find("malformed JSON in"), std::string::npos);
  fs::remove(d / "config.json");
  EXPECT_NE(load_error(d.string()).find("no config.json"), std::string::npos);
}

TEST(CheckpointBadInput, ShapeDisagreesWithConfig) {
  fs::path d = copy_tiny("shape");
  Json c = read_json_file((d / "config.json").string());
  c["intermediate_size"] = 128;
  write_text(d / "config.json", c.dump());
  const std::string msg = load_error(d.string());
  EXPECT_NE(msg.find("has shape"), std::string::npos) << msg;
  EXPECT_NE(msg.find("mlp"), std::string::npos) << msg;
}

TEST(CheckpointBadInput, DtypeDisagreesWithConfig) {
  fs::path d = copy_tiny("dtype");
  Json c = read_json_file((d / "config.json").string());
  c["torch_dtype"] = "bfloat16";
  write_text(d / "config.json", c.dump());
  EXPECT_NE(load_error(d.string()).find("config.json says dtype"), std::string::npos);
}

TEST(CheckpointBadInput, MissingTensor) {
  fs::path d = copy_tiny("missing");
  Json idx = read_json_file((d / "model.safetensors.index.json").string());
  // A config claiming a third layer: its tensors are nowhere.
  Json c = read_json_file((d / "config.json").string());
  c["num_hidden_layers"] = 3;
  write_text(d / "config.json", c.dump());
  EXPECT_NE(load_error(d.string()).find("missing tensor 'model.layers.2."), std::string::npos);
}

TEST(CheckpointBadInput, ShardNamesStayInside) {
  fs::path d = copy_tiny("escape");
  Json idx = read_json_file((d / "model.safetensors.index.json").string());
  idx["weight_map"]["model.norm.weight"] = "../../etc/passwd";
  write_text(d / "model.safetensors.index.json", idx.dump());
  EXPECT_NE(load_error(d.string()).find("refusing file name"), std::string::npos);
  idx["weight_map"]["model.norm.weight"] = "/etc/passwd";
  write_text(d / "model.safetensors.index.json", idx.dump());
  EXPECT_NE(load_error(d.string()).find("refusing file name"), std::string::npos);
  idx["weight_map"]["model.norm.weight"] = "model-99999-of-99999.safetensors";
  write_text(d / "model.safetensors.index.json", idx.dump());
  EXPECT_NE(load_error(d.string()).find("does not exist"), std::string::npos);
}

TEST(CheckpointBadInput, TruncatedShard) {
  fs::path d = copy_tiny("trunc");
  for (const auto& e : fs::directory_iterator(d)) {
    if (e.path().extension() == ".safetensors") {
      fs::resize_file(e.path(), fs::file_size(e.path()) - 100);
      break;
    }
  }
  EXPECT_NE(load_error(d.string()).find("run past"), std::string::npos);
}

TEST(CheckpointBadInput, NoWeights) {
  fs::path d = fresh_dir("noweights");
  fs::copy_file(fixture_path("model/tiny_llama3/config.json"), d / "config.json");
  EXPECT_NE(load_error(d.string()).find("no model.safetensors"), std::string::npos);
}

TEST(CheckpointBadInput, TruncatedLlama2c) {
  fs::path d = fresh_dir("l2c");
  fs::copy_file(repo_path("models/stories260K/stories260K.bin"), d / "s.bin");
  fs::resize_file(d / "s.bin", 500000);
  EXPECT_NE(load_error((d / "s.bin").string()).find("truncated llama2.c"), std::string::npos);
  write_text(d / "junk.bin", std::string(64, '\xff'));
  EXPECT_NE(load_error((d / "junk.bin").string()).find("not a llama2.c checkpoint"), std::string::npos);
}
