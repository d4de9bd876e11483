// Checked JSON getters: wrong types and malformed documents are IoErrors naming the source.
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/json_util.h"

using namespace jointnas;

TEST(JsonUtil, MalformedNamesSource) {
  try {
    parse_json("{\"a\": 1,", "cfg.json");
    FAIL() << "no throw";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("cfg.json"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 3);
  }
}

TEST(JsonUtil, TypedGetters) {
  Json j = parse_json(R"({"i": 3, "f": 2.0, "s": "x", "b": true, "n": null})", "t");
  EXPECT_EQ(*get_int(j, "i", "t"), 3);
  EXPECT_EQ(*get_int(j, "f", "t"), 2);  // integral floats are accepted
  EXPECT_FALSE(get_int(j, "missing", "t").has_value());
  EXPECT_FALSE(get_int(j, "n", "t").has_value());
  EXPECT_THROW(get_int(j, "s", "t"), IoError);
  EXPECT_THROW(get_bool(j, "i", "t"), IoError);
  EXPECT_THROW(get_string(j, "i", "t"), IoError);
  EXPECT_DOUBLE_EQ(*get_number(j, "f", "t"), 2.0);
}
