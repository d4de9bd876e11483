// The one assertion helper for tensors: on failure it reports shape/dtype, max abs and rel error,
// the worst index with both values, and how many elements are out of tolerance.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <gtest/gtest.h>

namespace jointnas::testing {

// |actual - expected| <= atol + rtol * |expected| elementwise (NaN never passes).
::testing::AssertionResult all_close(const at::Tensor& actual, const at::Tensor& expected,
                                     double atol, double rtol = 0.0);

// Path helpers: files under ../shared (tests skip when absent) and the repo's fixtures.
std::string shared_path(const std::string& rel);
std::string fixture_path(const std::string& rel);
std::string repo_path(const std::string& rel);

}  // namespace jointnas::testing

#define JNAS_EXPECT_CLOSE(a, e, atol, rtol) EXPECT_TRUE(::jointnas::testing::all_close(a, e, atol, rtol))

// Skips the test when a needed file is absent (e.g. ../shared on a machine without it).
#define JNAS_REQUIRE_FILE(path)                                  \
  do {                                                           \
    if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << (path); \
  } while (0)
