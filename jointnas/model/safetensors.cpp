// safetensors parser and writer with bounds checks on every field of the (untrusted) header.
#include "jointnas/model/safetensors.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "jointnas/core/atomic_file.h"
#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"
#include "jointnas/core/paths.h"

namespace jointnas::model {
namespace {

struct DtypeRow {
  StDtype dtype;
  const char* name;
  size_t size;
};
// One row per dtype (ggml-style table, not an if-chain).
constexpr DtypeRow kDtypes[] = {
    {StDtype::F64, "F64", 8},   {StDtype::F32, "F32", 4},         {StDtype::F16, "F16", 2},
    {StDtype::BF16, "BF16", 2}, {StDtype::I64, "I64", 8},         {StDtype::I32, "I32", 4},
    {StDtype::I16, "I16", 2},   {StDtype::I8, "I8", 1},           {StDtype::U8, "U8", 1},
    {StDtype::BOOL, "BOOL", 1}, {StDtype::F8_E4M3, "F8_E4M3", 1}, {StDtype::F8_E5M2, "F8_E5M2", 1},
    {StDtype::U16, "U16", 2},   {StDtype::U32, "U32", 4},         {StDtype::U64, "U64", 8},
};

// A header above this is not a tensor index but an attack or a corrupt file (real 8B shards
// carry headers of tens of KB).
constexpr uint64_t kMaxHeaderBytes = uint64_t(100) << 20;

}  // namespace

size_t st_dtype_size(StDtype d) {
  for (const auto& r : kDtypes) {
    if (r.dtype == d) return r.size;
  }
  return 0;
}

const char* st_dtype_name(StDtype d) {
  for (const auto& r : kDtypes) {
    if (r.dtype == d) return r.name;
  }
  return "?";
}

int64_t StEntry::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

StHeader parse_safetensors_header(const uint8_t* data, uint64_t size, const std::string& path) {
  StHeader st;
  const std::string hint = "the file is truncated or not a safetensors file; re-export or re-copy it";
  if (size < 8) {
    throw IoError(fmt::format("{}: truncated safetensors file ({} bytes, need at least 8)", path, size),
                  hint);
  }
  uint64_t n = 0;
  std::memcpy(&n, data, 8);  // little-endian on every platform we build for
  if (n > kMaxHeaderBytes || n > size - 8) {
    throw IoError(fmt::format("{}: header length {} runs past the file ({} bytes)", path, n, size),
                  hint);
  }
  st.data_start = 8 + n;
  const uint64_t data_size = size - st.data_start;
  std::string header(reinterpret_cast<const char*>(data + 8), n);
  Json j = parse_json(header, path + " (safetensors header)");
  JNAS_CHECK_IO(j.is_object(), "{}: safetensors header must be a JSON object", path);

  std::vector<const StEntry*> by_offset;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const Json& v = it.value();
    if (name == "__metadata__") {
      JNAS_CHECK_IO(v.is_object(), "{}: __metadata__ must be an object", path);
      for (auto m = v.begin(); m != v.end(); ++m) {
        JNAS_CHECK_IO(m.value().is_string(), "{}: __metadata__ values must be strings", path);
        st.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    JNAS_CHECK_IO(v.is_object(), "{}: tensor '{}': entry must be an object", path, name);
    StEntry e;
    e.name = name;
    JNAS_CHECK_IO(v.contains("dtype") && v["dtype"].is_string(), "{}: tensor '{}': missing dtype",
                  path, name);
    const std::string dt = v["dtype"].get<std::string>();
    bool known = false;
    for (const auto& r : kDtypes) {
      if (dt == r.name) {
        e.dtype = r.dtype;
        known = true;
      }
    }
    JNAS_CHECK_IO(known, "{}: tensor '{}': unknown dtype '{}'", path, name, dt);
    JNAS_CHECK_IO(v.contains("shape") && v["shape"].is_array() && v["shape"].size() <= 8,
                  "{}: tensor '{}': shape must be an array of at most 8 dims", path, name);
    // numel * elem bytes must fit in the data buffer; check each product against it to rule out
    // overflow before it happens.
    uint64_t bytes = st_dtype_size(e.dtype);
    for (const auto& d : v["shape"]) {
      JNAS_CHECK_IO(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                    "{}: tensor '{}': shape entries must be non-negative integers", path, name);
      uint64_t dim = d.get<uint64_t>();
      JNAS_CHECK_IO(dim <= size && (dim == 0 || bytes <= size / dim),
                    "{}: tensor '{}': shape {} is larger than the file", path, name, v["shape"].dump());
      bytes *= dim;
      e.shape.push_back(static_cast<int64_t>(dim));
    }
    const Json& off = v.contains("data_offsets") ? v["data_offsets"] : Json();
    JNAS_CHECK_IO(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                      off[1].is_number_unsigned(),
                  "{}: tensor '{}': data_offsets must be two non-negative integers", path, name);
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end || e.end > data_size) {
      throw IoError(fmt::format("{}: tensor '{}': offsets [{}, {}) run past the data ({} bytes)", path,
                                name, e.begin, e.end, data_size),
                    hint);
    }
    JNAS_CHECK_IO(e.end - e.begin == bytes,
                  "{}: tensor '{}': {} bytes at [{}, {}) but dtype {} x shape {} needs {}", path,
                  name, e.end - e.begin, e.begin, e.end, dt, v["shape"].dump(), bytes);
    st.entries[name] = std::move(e);
  }
  for (const auto& [name, e] : st.entries) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](const StEntry* a, const StEntry* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const StEntry* a = by_offset[i - 1];
    const StEntry* b = by_offset[i];
    // Zero-sized tensors may share an offset with anything.
    if (a->end > b->begin && a->end != a->begin && b->end != b->begin) {
      throw IoError(fmt::format("{}: tensors '{}' [{}, {}) and '{}' [{}, {}) overlap", path, a->name,
                                a->begin, a->end, b->name, b->begin, b->end),
                    hint);
    }
  }
  return st;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto st = std::make_shared<SafetensorsFile>();
  st->file_ = MappedFile::open(path);
  StHeader h = parse_safetensors_header(st->file_->data(), st->file_->size(), path);
  st->data_start_ = h.data_start;
  st->entries_ = std::move(h.entries);
  st->metadata_ = std::move(h.metadata);
  return st;
}

const StEntry* SafetensorsFile::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

std::map<std::string, std::set<std::string>> read_safetensors_index(const Json& j,
                                                                     const std::string& dir,
                                                                     const std::string& index) {
  JNAS_CHECK_IO(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(),
                "{}: missing 'weight_map' object", index);
  std::map<std::string, std::set<std::string>> by_shard;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    JNAS_CHECK_IO(it.value().is_string(), "{}: weight_map['{}'] must be a file name", index,
                  it.key());
    by_shard[it.value().get<std::string>()].insert(it.key());
  }
  JNAS_CHECK_IO(!by_shard.empty(), "{}: weight_map is empty", index);
  std::map<std::string, std::set<std::string>> by_path;
  for (auto& [shard, names] : by_shard) {
    // Two spellings of one file ("a.safetensors", "./a.safetensors") cannot reach join_inside
    // (it refuses "." components), so paths stay one-to-one with shard names.
    by_path[join_inside(dir, shard, index)] = std::move(names);
  }
  return by_path;
}

void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<const StWriteTensor*> sorted;
  for (const auto& t : tensors) sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const StWriteTensor* a, const StWriteTensor* b) { return a->name < b->name; });
  Json header = Json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto* t : sorted) {
    uint64_t expect = st_dtype_size(t->dtype);
    for (int64_t s : t->shape) expect *= static_cast<uint64_t>(s);
    if (expect != t->nbytes) {
      throw Error(fmt::format("write_safetensors: tensor '{}' has {} bytes, shape needs {}", t->name,
                              t->nbytes, expect));
    }
    header[t->name] = {{"dtype", st_dtype_name(t->dtype)},
                       {"shape", t->shape},
                       {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string h = header.dump();
  while (h.size() % 8 != 0) h.push_back(' ');  // keep the data buffer 8-byte aligned
  AtomicFile f(path);
  const uint64_t n = h.size();
  f.write(&n, 8);
  f.write(h.data(), h.size());
  for (const auto* t : sorted) f.write(t->data, t->nbytes);
  f.commit();
}

}  // namespace jointnas::model
