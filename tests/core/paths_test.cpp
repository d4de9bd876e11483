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
  fs::path dir = fs::temp_directory_path() / "jnas_paths_test";
  ASSERT_TRUE(jointnas::remove_tree(dir.string()));
  fs::create_directories(dir / "m");
  std::ofstream(dir / "outside.bin") << "x";
  fs::create_symlink(dir / "outside.bin", dir / "m" / "link.safetensors");
  EXPECT_THROW(join_inside((dir / "m").string(), "link.safetensors", "idx"), IoError);
  // remove_tree does not follow the link: the target outside survives until its own turn.
  ASSERT_TRUE(jointnas::remove_tree((dir / "m").string()));
  EXPECT_TRUE(fs::exists(dir / "outside.bin"));
  ASSERT_TRUE(jointnas::remove_tree(dir.string()));
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_TRUE(jointnas::remove_tree(dir.string()));  // missing path: fine
}
