// The timing plan behind `jointnas bench` and the profile's calibration: the call-count and
// time floors both hold (issue 8: too few eager prefills of a small model gave medians 1.75x apart).
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "jointnas/core/error.h"
#include "jointnas/profile/git_sha.h"
#include "jointnas/profile/timing.h"
#include "tensor_assert.h"

namespace jointnas::profile {
namespace {

using Clock = std::chrono::steady_clock;

TEST(TimingPlan, CountFloorsAloneBehaveAsBefore) {
  int calls = 0;
  const TimingStats st = time_ms(c10::Device(c10::kCPU), [&] { ++calls; }, /*warmup=*/3, /*repeats=*/7);
  EXPECT_EQ(calls, 10);
  EXPECT_EQ(st.samples, 7);
  EXPECT_LE(st.p10, st.median);
  EXPECT_LE(st.median, st.p90);
}

TEST(TimingPlan, TimeFloorsExtendWarmUpAndMeasurement) {
  // Each call sleeps 1 ms, so 2 warm-up calls cannot fill 30 ms of warm-up and 3 repeats cannot add
  // up to 40 ms of samples: the time floors must add calls.
  TimingPlan p;
  p.warmup = 2;
  p.repeats = 3;
  p.warmup_ms = 30;
  p.measure_ms = 40;
  std::vector<Clock::time_point> starts;
  const auto t0 = Clock::now();
  const TimingStats st = time_ms(c10::Device(c10::kCPU), [&] {
    starts.push_back(Clock::now());
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }, p);
  const auto t1 = Clock::now();
  ASSERT_GE(st.samples, p.repeats);
  ASSERT_LT(st.samples, static_cast<int>(starts.size()));
  const Clock::time_point first_timed = starts[starts.size() - static_cast<size_t>(st.samples)];
  auto ms = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  EXPECT_GE(static_cast<int>(starts.size()) - st.samples, p.warmup);
  EXPECT_GE(ms(t0, first_timed), p.warmup_ms);
  EXPECT_GE(ms(first_timed, t1), p.measure_ms);
  EXPECT_GE(st.median, 1.0);  // a sample is at least its 1 ms sleep
  // The loop stops once the samples reach the floor: with every sample >= 1 ms, no more than
  // measure_ms + 1 of them (and a chunk of `repeats` at most beyond that).
  EXPECT_LE(st.samples, static_cast<int>(p.measure_ms) + p.repeats);
}

TEST(TimingPlan, RejectsAPlanWithoutRepeats) {
  TimingPlan p;
  p.repeats = 0;
  EXPECT_THROW(time_ms(c10::Device(c10::kCPU), [] {}, p), ConfigError);
}


// Latency tables are reused only under the same code: the stamp is the checkout's HEAD at build
// time (popen of git here; a tree without git gives "unknown" on both sides).
TEST(GitSha, StampIsTheCheckoutsHead) {
  const std::string stamp = git_sha();
  ASSERT_FALSE(stamp.empty());
  std::string head;
  if (FILE* p = popen(("git -C '" + testing::repo_path("") + "' rev-parse --short=12 HEAD 2>/dev/null").c_str(), "r")) {
    char buf[64] = {};
    if (fgets(buf, sizeof buf, p) != nullptr) head = buf;
    pclose(p);
  }
  while (!head.empty() && (head.back() == '\n' || head.back() == '\r')) head.pop_back();
  if (head.empty()) {
    EXPECT_EQ(stamp, "unknown");
  } else {
    // A commit made after this test binary was built would differ: rebuild, which restamps.
    EXPECT_EQ(stamp.substr(0, head.size()), head);
  }
}

}  // namespace
}  // namespace jointnas::profile
