// join_inside refuses every name that could leave the model directory.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/paths.h"

namespace fs = std::filesystem;
using jointnas::IoError;
using jointnas::join_inside;

TEST(JoinInside, AcceptsPlainNames) {
  EXPECT_EQ(join_inside("/m", "model-00001-of-00002.safetensors", "idx"),
            "/m/model-00001-of-00002.safetensors");
  EXPECT_EQ(join_inside("/m", "sub/x.safetensors", "idx"), "/m/sub/x.safetensors");
}

TEST(JoinInside, RejectsEscapes) {
  for (const char* bad : {"../secret", "/etc/passwd", "a/../../b", "", "./x", "a//b"}) {
    EXPECT_THROW(join_inside("/m", bad, "idx"), IoError) << bad;
  }
  EXPECT_THROW(join_inside("/m", std::string("a\0b", 3), "idx"), IoError);
}

TEST(JoinInside, RejectsSymlinkOut) {
  // Created and removed entry by entry: no std::filesystem::remove_all, because in CUDA builds the
  // copy of it that binds is the one exported by the GPU machine's libtorch.so, which segfaulted
  // here (cuda-gdb backtrace in docs/benchmarks.md).
  fs::path dir = fs::temp_directory_path() / "jnas_paths_test";
  std::error_code ec;
  auto cleanup = [&] {
    fs::remove(dir / "m" / "link.safetensors", ec);
    fs::remove(dir / "outside.bin", ec);
    fs::remove(dir / "m", ec);
    fs::remove(dir, ec);
  };
  cleanup();
  fs::create_directories(dir / "m");
  std::ofstream(dir / "outside.bin") << "x";
  fs::create_symlink(dir / "outside.bin", dir / "m" / "link.safetensors");
  EXPECT_THROW(join_inside((dir / "m").string(), "link.safetensors", "idx"), IoError);
  cleanup();
}
