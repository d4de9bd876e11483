// Helpers of the llama.cpp CLI tests: the skip where llama.cpp is absent, and stories260K as an
// HF directory with f16 linears (what the GGUF export and the llama.cpp profile start from).
#pragma once

#include <string>

#include "cli_util.h"
#include "jointnas/llamacpp/llamacpp.h"

namespace jointnas::testing::cli {

#define REQUIRE_LLAMA_CPP()                                                                          \
  do {                                                                                               \
    if (!llamacpp::available()) GTEST_SKIP() << "llama.cpp absent: run scripts/setup_llama_cpp.sh"; \
  } while (0)

// `quantize --precision f16` of the bundled stories260K into D/f16; returns that directory.
inline fs::path tiny_f16_dir(const fs::path& d) {
  const std::string model = repo_path("models/stories260K/stories260K.bin");
  EXPECT_EQ(run("quantize --model " + model + " --precision f16 --out " + (d / "f16").string()).code, 0);
  return d / "f16";
}

}  // namespace jointnas::testing::cli
