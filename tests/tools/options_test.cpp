// Options declared once (core/options.h): the visitors that read a config section, write the
// effective options and produce a child stage's arguments agree with each other.
#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/core/options.h"

namespace jointnas::opt {
namespace {

enum class Color : uint8_t { kRed, kBlue };
const Names<Color>& color_names() {
  static const Names<Color> n{{Color::kRed, "red"}, {Color::kBlue, "blue"}};
  return n;
}

struct Inner {
  double rate = 0.5;
};
template <class V>
void fields(V& v, Inner& i) {
  v(Key{"rate", "a rate"}, i.rate, in(0.0, 1.0));
}

struct Demo {
  int64_t steps = 10;
  std::string mode = "a";
  bool flag = false;
  std::vector<std::string> names{"x"};
  Color color = Color::kRed;
  Path file;
  Inner inner;
};
template <class V>
void fields(V& v, Demo& d) {
  v(Key{"steps", "steps", "train-steps"}, d.steps, in<int64_t>(1, 100));
  v(Key{"mode", "mode"}, d.mode, Choices{"a", "b"});
  v(Key{"flag", "flag"}, d.flag);
  v(Key{"names", "names"}, d.names);
  v(Key{"color", "color"}, d.color, color_names());
  v(Key{"file", "file"}, d.file);
  v.section(Key{"inner", "inner"}, d.inner);
}

Demo read_demo(const std::string& json) {
  Demo d;
  read(Json::parse(json), d, Origin{"demo.yaml", ""}, "cfg");
  return d;
}

TEST(Options, ReadsTypedValuesAndResolvesPaths) {
  const Demo d = read_demo(R"({"steps": 3, "mode": "b", "flag": true, "names": ["p", "q"], "color": "blue",
                               "file": "f.txt", "inner": {"rate": 0.25}})");
  EXPECT_EQ(d.steps, 3);
  EXPECT_EQ(d.mode, "b");
  EXPECT_TRUE(d.flag);
  EXPECT_EQ(d.names, (std::vector<std::string>{"p", "q"}));
  EXPECT_EQ(d.color, Color::kBlue);
  EXPECT_EQ(d.file.str(), "cfg/f.txt");
  EXPECT_DOUBLE_EQ(d.inner.rate, 0.25);
  EXPECT_EQ(read_demo("{}").steps, 10);  // absent keys keep the member initializer
}

TEST(Options, EveryBadValueIsAConfigErrorNamingTheKey) {
  for (const char* bad : {R"({"steps": 0})", R"({"steps": "3"})", R"({"mode": "c"})", R"({"flag": 1})",
                          R"({"color": "green"})", R"({"inner": {"rate": 2}})", R"({"inner": {"rat": 1}})",
                          R"({"step": 1})", R"({"names": [{}]})", R"({"inner": 3})"}) {
    EXPECT_THROW(read_demo(bad), ConfigError) << bad;
  }
  try {
    read_demo(R"({"inner": {"rat": 1}})");
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("demo.yaml: unknown key 'inner.rat'"), std::string::npos) << e.what();
    EXPECT_NE(e.hint().find("rate"), std::string::npos) << e.hint();  // the hint lists the known keys
  }
}

TEST(Options, WriterHoldsEveryFieldAndArgsUseTheFlags) {
  const Demo d;
  const Json j = write(d);
  EXPECT_EQ(j["steps"], 10);
  EXPECT_EQ(j["color"], "red");
  EXPECT_EQ(j["inner"]["rate"], 0.5);
  const std::vector<std::string> args = to_args(d);
  const std::vector<std::string> expected{"--train-steps", "10", "--mode", "a", "--flag=false", "--names", "x",
                                          "--color", "red", "--rate", "0.5"};
  EXPECT_EQ(args, expected);  // the empty path is left out
}

// Doubles go to the command line in their shortest form that reads back exactly.
TEST(Options, ArgsRoundTripDoublesExactly) {
  Demo d;
  d.inner.rate = 0.1 + 0.2;
  const auto args = to_args(d);
  const auto it = std::find(args.begin(), args.end(), "--rate");
  ASSERT_NE(it, args.end());
  EXPECT_EQ(std::stod(*(it + 1)), d.inner.rate);
}

}  // namespace
}  // namespace jointnas::opt
