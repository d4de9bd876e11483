// Fuzz target: a whole safetensors file (u64 header length, JSON header, data buffer), parsed in
// memory by parse_safetensors_header. Accepted files must have every entry inside the buffer
// (read here, so ASan sees any escape) and must survive write_safetensors -> open unchanged.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "jointnas/model/safetensors.h"

using namespace jointnas;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fuzz::ScratchDir scratch;
  fuzz::expect_accept_or_reject([&] {
    const model::StHeader h = model::parse_safetensors_header(data, size, "fuzz.safetensors");
    if (h.data_start > size) fuzz::fail("data_start past the end of the file");
    std::vector<model::StWriteTensor> out;
    uint64_t checksum = 0, total = 0;
    for (const auto& [name, e] : h.entries) {
      if (e.begin > e.end || e.end > size - h.data_start) fuzz::fail("entry '" + name + "' out of bounds");
      const uint8_t* p = data + h.data_start + e.begin;
      for (uint64_t i = 0; i < e.end - e.begin; ++i) checksum += p[i];
      if (static_cast<uint64_t>(e.numel()) * model::st_dtype_size(e.dtype) != e.end - e.begin) {
        fuzz::fail("entry '" + name + "': numel x dtype size != byte range");
      }
      out.push_back({name, e.dtype, e.shape, p, static_cast<size_t>(e.end - e.begin)});
      total += e.end - e.begin;
    }
    (void)checksum;
    // Round trip through the writer: what we accept, we can write and read back identically.
    const std::string path = scratch.path() + "/rt.safetensors";
    model::write_safetensors(path, out, h.metadata);
    const auto back = model::SafetensorsFile::open(path);
    if (back->entries().size() != h.entries.size() || back->metadata() != h.metadata) {
      fuzz::fail("round trip changed the entries or the metadata");
    }
    for (const auto& [name, e] : h.entries) {
      const model::StEntry* b = back->find(name);
      if (b == nullptr || b->dtype != e.dtype || b->shape != e.shape ||
          b->end - b->begin != e.end - e.begin ||
          std::memcmp(back->data(*b), data + h.data_start + e.begin, e.end - e.begin) != 0) {
        fuzz::fail("round trip changed tensor '" + name + "'");
      }
    }
    (void)total;
  });
  return 0;
}
