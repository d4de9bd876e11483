// Fuzz target: model.safetensors.index.json of a sharded checkpoint (read_safetensors_index).
// The model directory holds real shards, a subdirectory and symlinks that lead out of it
// (`up` -> .., `root` -> /) or nowhere (`loop`); every path the index is allowed to name must
// stay inside the directory once symlinks are resolved.
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "jointnas/core/json_util.h"
#include "jointnas/model/safetensors.h"

using namespace jointnas;

namespace {

struct ModelDir {
  fuzz::ScratchDir scratch;
  std::string dir, real_dir;
  ModelDir() {
    dir = scratch.path() + "/model";
    ::mkdir(dir.c_str(), 0755);
    ::mkdir((dir + "/sub").c_str(), 0755);
    scratch.write("model/model-00001-of-00002.safetensors", "x");
    scratch.write("model/model-00002-of-00002.safetensors", "x");
    scratch.write("model/sub/model.safetensors", "x");
    scratch.write("outside.safetensors", "x");
    (void)::symlink("..", (dir + "/up").c_str());
    (void)::symlink("/", (dir + "/root").c_str());
    (void)::symlink("loop", (dir + "/loop").c_str());
    (void)::symlink("sub", (dir + "/inner").c_str());
    char buf[PATH_MAX];
    if (::realpath(dir.c_str(), buf) == nullptr) std::abort();
    real_dir = buf;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const ModelDir md;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::expect_accept_or_reject([&] {
    const Json j = parse_json(text, "model.safetensors.index.json");
    const auto shards = model::read_safetensors_index(j, md.dir, "model.safetensors.index.json");
    if (shards.empty()) fuzz::fail("an accepted index without shards");
    for (const auto& [path, names] : shards) {
      if (names.empty()) fuzz::fail("shard without tensor names: " + path);
      if (path.compare(0, md.dir.size() + 1, md.dir + "/") != 0) fuzz::fail("shard path outside: " + path);
      char real[PATH_MAX];
      if (::realpath(path.c_str(), real) != nullptr) {
        const std::string r(real);
        if (r.size() <= md.real_dir.size() || r.compare(0, md.real_dir.size() + 1, md.real_dir + "/") != 0) {
          fuzz::fail("shard '" + path + "' resolves outside the model directory: " + r);
        }
      }
    }
  });
  return 0;
}
