// safetensors reading (memory-mapped, every offset bounds-checked) and writing. The parser is
// torch-free so that it can be fuzzed cheaply; tensor_store.h turns entries into at::Tensors.
// Format: u64 little-endian header length N, N bytes of JSON, then the data buffer; each tensor
// has dtype, shape and [begin, end) offsets relative to the data buffer.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "jointnas/core/json_util.h"
#include "jointnas/core/mapped_file.h"

namespace jointnas::model {

enum class StDtype { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL, F8_E4M3, F8_E5M2, U16, U32, U64 };

// Bytes per element; the dtype's safetensors name ("BF16").
size_t st_dtype_size(StDtype d);
const char* st_dtype_name(StDtype d);

struct StEntry {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // offsets into the data buffer (after the header)
  uint64_t end = 0;
  int64_t numel() const;
};

// The parsed header of a safetensors file: where the data buffer starts (8 + header length) and
// every entry, its offsets checked against the data buffer.
struct StHeader {
  uint64_t data_start = 0;
  std::map<std::string, StEntry> entries;
  std::map<std::string, std::string> metadata;
};

// Parses and validates the `size` bytes of a whole safetensors file at `data` (in memory, so that
// it can be fuzzed without a file); `source` names the file in errors. Throws IoError as
// SafetensorsFile::open documents.
StHeader parse_safetensors_header(const uint8_t* data, uint64_t size, const std::string& source);

class SafetensorsFile {
 public:
  // Maps and validates `path` (parse_safetensors_header). Throws IoError naming the file and the
  // offending tensor for: a file shorter than its header, a header that is not a JSON object,
  // unknown dtypes, negative or overflowing shapes, offsets past the end of the file, sizes that
  // disagree with dtype x shape, and overlapping tensors.
  static std::shared_ptr<SafetensorsFile> open(const std::string& path);

  const std::string& path() const { return file_->path(); }
  const std::map<std::string, StEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const StEntry* find(const std::string& name) const;
  // Pointer to the first byte of an entry (valid while this object lives).
  const uint8_t* data(const StEntry& e) const { return file_->data() + data_start_ + e.begin; }
  const std::shared_ptr<MappedFile>& mapping() const { return file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  uint64_t data_start_ = 0;
  std::map<std::string, StEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// A sharded checkpoint's index (model.safetensors.index.json, already parsed from `source`):
// shard path -> the tensor names the index assigns to it. Each shard name is joined to `dir` with
// join_inside, so a name that is absolute, contains "..", or leads out of `dir` through a symlink
// is an IoError (an index must not make us open files outside the model directory). Whether the
// shards exist is left to the caller.
std::map<std::string, std::set<std::string>> read_safetensors_index(const Json& index,
                                                                     const std::string& dir,
                                                                     const std::string& source);

// Raw tensor for writing: name, dtype, shape, bytes (row-major, little-endian).
struct StWriteTensor {
  std::string name;
  StDtype dtype = StDtype::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  size_t nbytes = 0;
};

// Writes a safetensors file (tensors sorted by name, header padded to 8 bytes). The file is
// written to `path + ".tmp"`, fsync'ed and renamed, so a killed process leaves the old file.
void write_safetensors(const std::string& path, const std::vector<StWriteTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace jointnas::model
