// Read-only memory mapping of a whole file: checkpoints are read in place, never copied into a
// second buffer in host RAM.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace jointnas {

class MappedFile {
 public:
  // Maps `path` read-only. Throws IoError naming the path when it is missing, unreadable or not a
  // regular file (saying what it is: a directory, a FIFO, ...; a FIFO is never blocked on). An empty file maps to size() == 0 and data() == nullptr.
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Reads a whole (small) file into a string; throws IoError naming the path, and saying what it is
// when it is not a regular file (a FIFO is never opened for reading: it would block). Files above
// `max_bytes` are refused before anything is allocated: configs, JSON and tokenizer files are
// read whole, so a hostile 50 GB "config" must not be.
inline constexpr size_t kMaxWholeFileBytes = size_t(1) << 30;
std::string read_text_file(const std::string& path, size_t max_bytes = kMaxWholeFileBytes);

}  // namespace jointnas
