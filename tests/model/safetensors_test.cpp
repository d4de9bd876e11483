// safetensors: round trip, and every corrupt-header case gives an IoError naming the file.
#include <cstring>
#include <filesystem>
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "jointnas/core/paths.h"

#include "jointnas/core/error.h"
#include "jointnas/model/checkpoint.h"
#include "jointnas/model/safetensors.h"

using namespace jointnas;
using namespace jointnas::model;
namespace fs = std::filesystem;

namespace {

fs::path tmp_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("jnas_st_" + name);
  jointnas::remove_tree(fs::path(d).string());
  fs::create_directories(d);
  return d;
}

// Writes a raw safetensors file from a header string and `data_bytes` bytes of data.
std::string write_raw(const fs::path& p, const std::string& header, size_t data_bytes,
                      int64_t declared_len = -1) {
  std::ofstream f(p, std::ios::binary);
  uint64_t n = declared_len >= 0 ? static_cast<uint64_t>(declared_len) : header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header;
  std::string data(data_bytes, '\x01');
  f << data;
  return p.string();
}

void expect_io_error(const std::string& path, const std::string& needle) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "accepted " << path;
  } catch (const IoError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
}

}  // namespace

TEST(Safetensors, RoundTrip) {
  auto d = tmp_dir("rt");
  at::Tensor a = at::arange(12, at::kFloat).view({3, 4});
  at::Tensor b = at::arange(5, at::kLong);
  at::Tensor c = a.to(at::kBFloat16);
  write_safetensors((d / "x.safetensors").string(),
                    {{"a", StDtype::F32, {3, 4}, a.data_ptr(), (size_t)a.nbytes()},
                     {"b", StDtype::I64, {5}, b.data_ptr(), (size_t)b.nbytes()},
                     {"c", StDtype::BF16, {3, 4}, c.data_ptr(), (size_t)c.nbytes()}},
                    {{"format", "pt"}});
  auto f = SafetensorsFile::open((d / "x.safetensors").string());
  ASSERT_EQ(f->entries().size(), 3u);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_TRUE(at::equal(tensor_from_entry(f, *f->find("a")), a));
  EXPECT_TRUE(at::equal(tensor_from_entry(f, *f->find("b")), b));
  EXPECT_TRUE(at::equal(tensor_from_entry(f, *f->find("c")), c));
  EXPECT_FALSE(fs::exists(d / "x.safetensors.tmp"));
}

TEST(Safetensors, RejectsCorruptFiles) {
  auto d = tmp_dir("bad");
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  EXPECT_NO_THROW(SafetensorsFile::open(write_raw(d / "ok.st", ok, 16)));
  // Shorter than the 8-byte length prefix.
  {
    std::ofstream f(d / "tiny.st", std::ios::binary);
    f << "abc";
  }
  expect_io_error((d / "tiny.st").string(), "truncated");
  // Header length runs past the end of the file.
  expect_io_error(write_raw(d / "hlen.st", ok, 16, 1 << 20), "header length");
  // Data truncated: offsets run past the data.
  expect_io_error(write_raw(d / "trunc.st", ok, 8), "run past");
  // Header not JSON / not an object.
  expect_io_error(write_raw(d / "notjson.st", "{\"a\": [1,", 0), "malformed JSON");
  expect_io_error(write_raw(d / "array.st", "[1,2]", 0), "JSON object");
  // Unknown dtype, negative shape, size mismatch, overlapping tensors, bad offsets.
  expect_io_error(write_raw(d / "dtype.st", R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,2]}})", 2),
                  "unknown dtype");
  expect_io_error(write_raw(d / "neg.st", R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
                  "non-negative");
  expect_io_error(write_raw(d / "size.st", R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
                  "needs 12");
  expect_io_error(
      write_raw(d / "overlap.st",
                R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12),
      "overlap");
  expect_io_error(write_raw(d / "off.st", R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
                  "run past");
  expect_io_error(write_raw(d / "huge.st",
                            R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
                  "larger than the file");
  expect_io_error(write_raw(d / "nooff.st", R"({"a":{"dtype":"F32","shape":[2]}})", 8), "data_offsets");
  expect_io_error((d / "does-not-exist.st").string(), "cannot open");
}

// parse_safetensors_header is what open() runs on the mapping and what fuzz/fuzz_safetensors
// drives in memory: same checks, same messages, no file needed.
TEST(Safetensors, ParsesFromMemory) {
  const std::string header = R"({"a":{"dtype":"I8","shape":[2],"data_offsets":[0,2]},"__metadata__":{"k":"v"}})";
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(bytes.data(), &n, 8);
  bytes += header + "xy";
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const StHeader h = parse_safetensors_header(p, bytes.size(), "mem.st");
  EXPECT_EQ(h.data_start, 8 + n);
  ASSERT_EQ(h.entries.count("a"), 1u);
  EXPECT_EQ(h.entries.at("a").end, 2u);
  EXPECT_EQ(h.metadata.at("k"), "v");
  EXPECT_THROW(parse_safetensors_header(p, bytes.size() - 1, "mem.st"), IoError);  // data cut short
  EXPECT_THROW(parse_safetensors_header(p, 7, "mem.st"), IoError);
}

// Shard names of a sharded index: plain relative names inside the directory, also after symlinks.
TEST(Safetensors, IndexShardNamesStayInside) {
  fs::path d = tmp_dir("index");
  fs::create_directories(d / "model" / "sub");
  fs::create_directory_symlink("..", d / "model" / "up");
  const std::string dir = (d / "model").string();
  auto index = [](const std::string& shard) {
    return Json{{"weight_map", {{"a", "model-1.safetensors"}, {"b", shard}}}};
  };
  const auto ok = read_safetensors_index(index("sub/model-2.safetensors"), dir, "index.json");
  ASSERT_EQ(ok.size(), 2u);
  EXPECT_EQ(ok.begin()->first, dir + "/model-1.safetensors");
  EXPECT_EQ(ok.begin()->second, std::set<std::string>{"a"});
  fs::create_directories(d / "outside");
  std::ofstream(d / "outside" / "x.safetensors") << "x";
  for (const char* bad : {"../outside/x.safetensors", "/etc/passwd", "./model-1.safetensors",
                          "sub//x.safetensors", "up/outside/x.safetensors", ""}) {
    try {
      read_safetensors_index(index(bad), dir, "index.json");
      FAIL() << "accepted shard name '" << bad << "'";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find("refusing file name"), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(read_safetensors_index(Json{{"weight_map", Json::object()}}, dir, "index.json"), IoError);
  EXPECT_THROW(read_safetensors_index(Json{{"weight_map", {{"a", 3}}}}, dir, "index.json"), IoError);
}
