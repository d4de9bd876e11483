// GGUF v3 serialization (see gguf_file.h; ggml/src/gguf.cpp is the reader it must satisfy).
#include "jointnas/export/gguf_file.h"

#include <cstring>
#include <stdexcept>

#include "jointnas/core/error.h"

namespace jointnas::exporting {
namespace {

template <class T>
void put(std::string& s, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
  s.append(b, sizeof(T));
}

void put_string(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}

std::string typed(GgufValueType t) {
  std::string s;
  put<uint32_t>(s, static_cast<uint32_t>(t));
  return s;
}

template <class T>
std::string array_of(GgufValueType elem, const std::vector<T>& v) {
  std::string s = typed(GgufValueType::kArray);
  put<uint32_t>(s, static_cast<uint32_t>(elem));
  put<uint64_t>(s, v.size());
  for (const T& x : v) put<T>(s, x);
  return s;
}

uint64_t padded(uint64_t n) {
  return (n + GgufFile::kAlignment - 1) / GgufFile::kAlignment * GgufFile::kAlignment;
}

}  // namespace

void GgufFile::add_raw(const std::string& key, std::string encoded) {
  JNAS_CHECK_CONFIG(!has_key(key), "GGUF: key '{}' written twice", key);
  kv_.emplace_back(key, std::move(encoded));
}

bool GgufFile::has_key(const std::string& key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return true;
  }
  return false;
}

void GgufFile::add_u32(const std::string& key, uint32_t v) {
  std::string s = typed(GgufValueType::kUint32);
  put(s, v);
  add_raw(key, s);
}
void GgufFile::add_i32(const std::string& key, int32_t v) {
  std::string s = typed(GgufValueType::kInt32);
  put(s, v);
  add_raw(key, s);
}
void GgufFile::add_f32(const std::string& key, float v) {
  std::string s = typed(GgufValueType::kFloat32);
  put(s, v);
  add_raw(key, s);
}
void GgufFile::add_bool(const std::string& key, bool v) {
  std::string s = typed(GgufValueType::kBool);
  put<uint8_t>(s, v ? 1 : 0);
  add_raw(key, s);
}
void GgufFile::add_string(const std::string& key, const std::string& v) {
  std::string s = typed(GgufValueType::kString);
  put_string(s, v);
  add_raw(key, s);
}
void GgufFile::add_array_u32(const std::string& key, const std::vector<uint32_t>& v) {
  add_raw(key, array_of(GgufValueType::kUint32, v));
}
void GgufFile::add_array_i32(const std::string& key, const std::vector<int32_t>& v) {
  add_raw(key, array_of(GgufValueType::kInt32, v));
}
void GgufFile::add_array_f32(const std::string& key, const std::vector<float>& v) {
  add_raw(key, array_of(GgufValueType::kFloat32, v));
}
void GgufFile::add_array_string(const std::string& key, const std::vector<std::string>& v) {
  std::string s = typed(GgufValueType::kArray);
  put<uint32_t>(s, static_cast<uint32_t>(GgufValueType::kString));
  put<uint64_t>(s, v.size());
  for (const std::string& x : v) put_string(s, x);
  add_raw(key, s);
}

void GgufFile::add_tensor(const std::string& name, uint32_t ggml_type, std::vector<int64_t> ne,
                          std::vector<uint8_t> data) {
  for (const Tensor& t : tensors_) {
    JNAS_CHECK_CONFIG(t.name != name, "GGUF: tensor '{}' written twice", name);
  }
  JNAS_CHECK_CONFIG(!ne.empty() && ne.size() <= 4, "GGUF: tensor '{}' has {} dimensions (1 to 4)",
                    name, ne.size());
  tensors_.push_back({name, ggml_type, std::move(ne), std::move(data)});
}

std::string GgufFile::serialize() const {
  std::string s;
  s += "GGUF";
  put<uint32_t>(s, 3);
  put<uint64_t>(s, tensors_.size());
  put<uint64_t>(s, kv_.size());
  for (const auto& [k, v] : kv_) {
    put_string(s, k);
    s += v;
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(s, t.name);
    put<uint32_t>(s, static_cast<uint32_t>(t.ne.size()));
    for (int64_t n : t.ne) put<uint64_t>(s, static_cast<uint64_t>(n));
    put<uint32_t>(s, t.type);
    put<uint64_t>(s, offset);
    offset += padded(t.data.size());
  }
  s.resize(padded(s.size()), '\0');
  for (const Tensor& t : tensors_) {
    s.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    s.resize(padded(s.size()), '\0');
  }
  return s;
}

}  // namespace jointnas::exporting
