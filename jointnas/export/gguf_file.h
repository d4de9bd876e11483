// A GGUF (version 3) file writer: typed key-value metadata, then tensor infos, then the tensors'
// data, each aligned to general.alignment (32), as ggml's gguf.cpp reads it. Little-endian only.
// The model-level export (which tensors, names, layouts, metadata) is gguf.h.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace jointnas::exporting {

// GGUF metadata value types (gguf.h's enum gguf_type).
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

class GgufFile {
 public:
  static constexpr uint64_t kAlignment = 32;

  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_array_u32(const std::string& key, const std::vector<uint32_t>& v);
  void add_array_i32(const std::string& key, const std::vector<int32_t>& v);
  void add_array_f32(const std::string& key, const std::vector<float>& v);
  void add_array_string(const std::string& key, const std::vector<std::string>& v);

  // A tensor of ggml type `ggml_type` with ggml's dimensions ne (ne[0] innermost: the row length)
  // and its bytes in ggml's layout. Names are unique (checked).
  void add_tensor(const std::string& name, uint32_t ggml_type, std::vector<int64_t> ne,
                  std::vector<uint8_t> data);

  // The whole file in memory (the exporter writes it atomically).
  std::string serialize() const;

  size_t num_tensors() const { return tensors_.size(); }
  bool has_key(const std::string& key) const;

 private:
  struct Tensor {
    std::string name;
    uint32_t type;
    std::vector<int64_t> ne;
    std::vector<uint8_t> data;
  };
  void add_raw(const std::string& key, std::string encoded_type_and_value);

  std::vector<std::pair<std::string, std::string>> kv_;  // key -> encoded (type, value)
  std::vector<Tensor> tensors_;
};

}  // namespace jointnas::exporting
