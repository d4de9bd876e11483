// Checked JSON getters: wrong types and malformed documents are IoErrors naming the source.
#include <cstdint>
#include <limits>
#include <vector>

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

// Found by fuzz/fuzz_arch_json: {"format": 1} reached nlohmann's value("format", ""), which throws
// type_error 302 (an uncaught exception, exit 1) instead of the "not a jointnas file" error.
TEST(JsonUtil, FormatTagsAndLenientStringsNeverThrow) {
  EXPECT_TRUE(has_format_tag(parse_json(R"({"format": "jointnas-arch"})", "t"), "jointnas-arch"));
  for (const char* doc : {R"({"format": 1})", R"({"format": null})", R"({"format": ["jointnas-arch"]})", "[1]", "3",
                          R"({"formats": "jointnas-arch"})"}) {
    EXPECT_FALSE(has_format_tag(parse_json(doc, "t"), "jointnas-arch")) << doc;
    EXPECT_EQ(string_or(parse_json(doc, "t"), "format", "?"), "?") << doc;
  }
  EXPECT_FALSE(has_format_tag(parse_json(R"({"format": "jointnas-arch2"})", "t"), "jointnas-arch"));
  EXPECT_EQ(string_or(parse_json(R"({"type": "BPE"})", "t"), "type", ""), "BPE");
}

TEST(JsonUtil, NumberListsAreFiniteNumbersOrErrors) {
  EXPECT_EQ(get_numbers(parse_json(R"({"k": [1, 2.5]})", "t"), "k", "t"), (std::vector<double>{1, 2.5}));
  EXPECT_TRUE(get_numbers(parse_json(R"({"j": 1})", "t"), "k", "t").empty());
  EXPECT_THROW(get_numbers(parse_json(R"({"k": 1})", "t"), "k", "t"), IoError);
  EXPECT_THROW(get_numbers(parse_json(R"({"k": [1, "2"]})", "t"), "k", "t"), IoError);
  const Json inf = {{"k", Json::array({1.0, std::numeric_limits<double>::infinity()})}};
  EXPECT_THROW(get_numbers(inf, "k", "t"), IoError);
}

// Found by fuzz/fuzz_config (a layer spec with "head_dim": 184467440737095516158, an integer beyond
// uint64 that nlohmann stores as a double): the integral-float path cast the double to int64
// before knowing it fits, which is undefined behaviour (UBSan report).
TEST(JsonUtil, IntegralFloatsOutsideInt64AreErrors) {
  Json j = parse_json(R"({"big": 1e300, "neg": -1e300, "edge": 9223372036854775808.0,
                          "min": -9223372036854775808.0, "half": 2.5})", "t");
  EXPECT_THROW(get_int(j, "big", "t"), IoError);
  EXPECT_THROW(get_int(j, "neg", "t"), IoError);
  EXPECT_THROW(get_int(j, "edge", "t"), IoError);  // 2^63 is one past INT64_MAX
  EXPECT_EQ(*get_int(j, "min", "t"), INT64_MIN);   // -2^63 is exactly representable
  EXPECT_THROW(get_int(j, "half", "t"), IoError);
}

// nlohmann parses deep nesting iteratively, but dump() / copies recurse: a 200 KB config.json of
// nested brackets overflowed the stack in the error message naming the bad value (ASan
// stack-overflow through fuzz/fuzz_config). parse_json now refuses more than 128 levels.
TEST(JsonUtil, DeepNestingIsAnError) {
  const size_t deep = 100000;
  const std::string text = "{\"vocab_size\": " + std::string(deep, '[') + std::string(deep, ']') + "}";
  try {
    parse_json(text, "config.json");
    FAIL() << "no throw";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("nested deeper than 128"), std::string::npos) << e.what();
  }
  const std::string ok = std::string(127, '[') + std::string(127, ']');
  EXPECT_NO_THROW(parse_json("{\"a\": " + ok + "}", "t"));  // 128 levels with the object
  // Brackets inside strings are text, not nesting.
  EXPECT_NO_THROW(parse_json("{\"a\": \"" + std::string(1000, '[') + "\\\"{\"}", "t"));
}

TEST(JsonUtil, FindInvalidUtf8) {
  EXPECT_EQ(find_invalid_utf8("plain ascii"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("h\xc3\xa9llo \xe6\x97\xa5 \xf0\x9f\x98\x80"), std::nullopt);
  EXPECT_EQ(find_invalid_utf8("ab\xff"), 2u);
  EXPECT_EQ(find_invalid_utf8("a\xc3"), 1u);              // truncated sequence
  EXPECT_EQ(find_invalid_utf8("\xc0\xaf"), 0u);          // overlong '/'
  EXPECT_EQ(find_invalid_utf8("x\xed\xa0\x80"), 1u);     // UTF-16 surrogate
  EXPECT_EQ(find_invalid_utf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
}
