# Finds the llama.cpp that scripts/setup_llama_cpp.sh builds (pinned, CPU only) and exposes it as
# jnas::ggml (libggml-base + libggml-cpu + libggml) and jnas::llama (libllama). The tests link it,
# and so does the tool through jointnas/llamacpp (issue 25: `bench` / `quantize --runtime
# llama.cpp`); jointnas writes GGUF and ggml's formats with its own code. Absent, the tests that
# need it skip with a message and the llama.cpp commands exit 2 (JNAS_HAVE_LLAMA_CPP=0).
set(JNAS_LLAMA_CPP_VERSION "0.3.36")
set(JNAS_LLAMA_CPP_DIR "$ENV{HOME}/.cache/jointnas/llama.cpp-${JNAS_LLAMA_CPP_VERSION}" CACHE PATH
    "Where scripts/setup_llama_cpp.sh installed llama.cpp (for the GGUF tests)")
set(JNAS_HAVE_LLAMA_CPP OFF)
if(EXISTS "${JNAS_LLAMA_CPP_DIR}/.jointnas-stamp" AND EXISTS "${JNAS_LLAMA_CPP_DIR}/include/llama.h")
  find_library(JNAS_GGML_BASE_LIB ggml-base PATHS "${JNAS_LLAMA_CPP_DIR}/lib" NO_DEFAULT_PATH)
  find_library(JNAS_GGML_CPU_LIB ggml-cpu PATHS "${JNAS_LLAMA_CPP_DIR}/lib" NO_DEFAULT_PATH)
  find_library(JNAS_GGML_LIB ggml PATHS "${JNAS_LLAMA_CPP_DIR}/lib" NO_DEFAULT_PATH)
  find_library(JNAS_LLAMA_LIB llama PATHS "${JNAS_LLAMA_CPP_DIR}/lib" NO_DEFAULT_PATH)
  if(JNAS_GGML_BASE_LIB AND JNAS_GGML_CPU_LIB AND JNAS_GGML_LIB AND JNAS_LLAMA_LIB)
    set(JNAS_HAVE_LLAMA_CPP ON)
    add_library(jnas_ggml INTERFACE)
    target_include_directories(jnas_ggml SYSTEM INTERFACE "${JNAS_LLAMA_CPP_DIR}/include")
    target_link_libraries(jnas_ggml INTERFACE ${JNAS_GGML_LIB} ${JNAS_GGML_CPU_LIB} ${JNAS_GGML_BASE_LIB})
    # DT_RPATH (not RUNPATH): libllama finds libggml through it too.
    target_link_options(jnas_ggml INTERFACE "-Wl,--disable-new-dtags,-rpath,${JNAS_LLAMA_CPP_DIR}/lib")
    add_library(jnas::ggml ALIAS jnas_ggml)
    add_library(jnas_llama INTERFACE)
    target_link_libraries(jnas_llama INTERFACE ${JNAS_LLAMA_LIB} jnas_ggml)
    add_library(jnas::llama ALIAS jnas_llama)
  endif()
endif()
message(STATUS "llama.cpp ${JNAS_LLAMA_CPP_VERSION} (GGUF tests, --runtime llama.cpp): ${JNAS_HAVE_LLAMA_CPP} (${JNAS_LLAMA_CPP_DIR})")
