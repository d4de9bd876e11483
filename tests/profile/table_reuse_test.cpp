// `jointnas profile` extends a table only when it was measured under the same conditions
// (profile/profiler.h: load_reusable_table, stamp_meta).
#include <filesystem>
#include <string>
#include <unistd.h>

#include <gtest/gtest.h>

#include "jointnas/core/paths.h"
#include "jointnas/profile/profiler.h"

namespace jointnas::profile {
namespace {

namespace fs = std::filesystem;

std::string temp_table(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("jnas_reuse_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return (d / name).string();
}

TEST(TableReuse, SameConditionsReuseOthersStartOver) {
  const Json meta{{"device", "cpu"}, {"dtype", "Float"}, {"git_sha", "abc"}};
  const std::string path = temp_table("table.json");
  EXPECT_TRUE(load_reusable_table(path, meta).entries().empty());  // no file yet

  LatencyTable t;
  t.set("head/m1/h32/v64", {0.5, 0.4, 0.6, 3});
  Workload decode;
  decode.context = 8;
  stamp_meta(t, meta, decode);
  EXPECT_EQ(t.meta["workloads"], Json::array({"decode_b1_c8"}));
  t.save(path);

  // Same device, dtype and code: reused, whatever workloads it was measured for.
  LatencyTable again = load_reusable_table(path, meta);
  ASSERT_EQ(again.entries().size(), 1u);
  EXPECT_EQ(again.entries().at("head/m1/h32/v64").ms, 0.5);
  // A second workload joins the list once; the first stays.
  Workload prefill;
  prefill.kind = "prefill";
  prefill.tokens = 16;
  stamp_meta(again, meta, prefill);
  stamp_meta(again, meta, prefill);
  EXPECT_EQ(again.meta["workloads"], Json::array({"decode_b1_c8", "prefill_b1_s16"}));
  EXPECT_EQ(again.meta["git_sha"], "abc");

  // Other code (or device, dtype): a new table.
  Json other = meta;
  other["git_sha"] = "def";
  EXPECT_TRUE(load_reusable_table(path, other).entries().empty());
  remove_tree(fs::path(path).parent_path().string());
}

// Issue 24: ggml's format names in table keys. "f16" reads like a dimension (f = 16); the key
// parser takes registry names as formats first, so linear/m1/k64/n32/f16 times an f16 linear.
TEST(ProfileKeys, GgmlFormatNamesAreFormatsNotDimensions) {
  LatencyTable t;
  ProfileOptions o;
  o.dtype = at::kFloat;
  o.warmup = 1;
  o.repeats = 2;
  o.rotate_bytes = 0;
  const std::vector<std::string> keys = {LatencyTable::linear_key(1, 64, 32, "f16"),
                                         LatencyTable::linear_key(1, 64, 32, "q8_0")};
  profile_keys(t, keys, o);
  for (const std::string& k : keys) EXPECT_GT(t.ms(k), 0.0) << k;
}

}  // namespace
}  // namespace jointnas::profile
