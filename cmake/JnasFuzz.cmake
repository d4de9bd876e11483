# JNAS_BUILD_FUZZ=ON: every library and the fuzz targets are built with clang's libFuzzer coverage
# (-fsanitize=fuzzer-no-link), AddressSanitizer and UndefinedBehaviorSanitizer; any UB report
# aborts (no recovery), so libFuzzer records it as a crash. Use a build directory of its own
# (scripts/fuzz.sh: build-fuzz); docs/fuzzing.md.
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "JNAS_BUILD_FUZZ=ON needs clang (libFuzzer), got ${CMAKE_CXX_COMPILER_ID}; "
                      "fix: cmake -DCMAKE_CXX_COMPILER=clang++ (apt: clang libclang-rt-14-dev)")
endif()
if(JNAS_WITH_CUDA)
  message(FATAL_ERROR "JNAS_BUILD_FUZZ=ON is a CPU build; configure it without JNAS_WITH_CUDA")
endif()
set(JNAS_SANITIZE_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
    -fno-omit-frame-pointer)
add_compile_options(-fsanitize=fuzzer-no-link ${JNAS_SANITIZE_FLAGS})
add_link_options(-fsanitize=address,undefined)
