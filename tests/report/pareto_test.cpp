// Fronts and headline numbers of `jointnas pareto` against values derived by hand.
#include <cmath>

#include <gtest/gtest.h>

#include "jointnas/report/pareto.h"

namespace jointnas::report {
namespace {

TEST(ParetoFront, KeepsOnlyNonDominatedPointsSortedByCost) {
  const auto f = front({{3, 5, "c"}, {1, 9, "a"}, {2, 9, "dominated by a"}, {2, 6, "b"}, {4, 5, "dominated by c"},
                        {5, 4, "d"}, {NAN, 1, "nan"}, {0, 1, "zero cost"}, {6, INFINITY, "inf"}});
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0].id, "a");
  EXPECT_EQ(f[1].id, "b");
  EXPECT_EQ(f[2].id, "c");
  EXPECT_EQ(f[3].id, "d");
}

TEST(ParetoFront, InterpolatesLinearlyInLogCost) {
  const std::vector<Point> f{{1, 10, ""}, {100, 4, ""}};
  // log10 x = 1 is halfway between 0 and 2.
  EXPECT_NEAR(*loss_at(f, 10), 7.0, 1e-12);
  EXPECT_NEAR(*cost_at(f, 7.0), 10.0, 1e-9);
  EXPECT_NEAR(*cost_at(f, 10.0), 1.0, 1e-12);
  EXPECT_FALSE(loss_at(f, 0.5).has_value());  // no extrapolation
  EXPECT_FALSE(loss_at(f, 101).has_value());
  EXPECT_FALSE(cost_at(f, 3.9).has_value());
  EXPECT_FALSE(cost_at(f, 10.1).has_value());
}

TEST(ParetoCompare, AFrontTwiceAsFastGivesTwoEverywhere) {
  // b is a with every cost doubled: interpolation in log cost keeps the ratio exactly 2.
  const std::vector<Point> a{{1, 10, ""}, {2, 6, ""}, {4, 5, ""}}, b{{2, 10, ""}, {4, 6, ""}, {8, 5, ""}};
  const Comparison c = compare(a, b);
  ASSERT_TRUE(c.speedup_max && c.speedup_median);
  EXPECT_NEAR(*c.speedup_max, 2.0, 1e-9);
  EXPECT_NEAR(*c.speedup_median, 2.0, 1e-9);
  // Equal cost over [2, 4]: at 2, a has 6 and b 10 (gain 4); at 4, 5 against 6 (gain 1).
  ASSERT_TRUE(c.gain_max && c.gain_median);
  EXPECT_NEAR(*c.gain_max, 4.0, 1e-9);
  EXPECT_NEAR(c.gain_at_x, 2.0, 1e-9);
  EXPECT_GT(*c.gain_median, 1.0);
  EXPECT_LT(*c.gain_median, 4.0);
  // The other way round the numbers flip: b is slower and worse.
  const Comparison r = compare(b, a);
  EXPECT_NEAR(*r.speedup_max, 0.5, 1e-9);
  EXPECT_LT(*r.gain_max, 0.0);
}

TEST(ParetoCompare, NoOverlapGivesNoNumber) {
  const std::vector<Point> a{{1, 10, ""}, {2, 9, ""}}, b{{3, 5, ""}, {4, 4, ""}};
  const Comparison c = compare(a, b);
  EXPECT_FALSE(c.speedup_max.has_value());  // losses 9..10 against 4..5
  EXPECT_FALSE(c.gain_max.has_value());     // costs 1..2 against 3..4
  EXPECT_FALSE(compare({}, b).speedup_max.has_value());
}

}  // namespace
}  // namespace jointnas::report
