# Locates LibTorch 2.11 and exposes it as the target jnas::torch.
# CPU builds link only torch_cpu + c10 straight from the pip wheel (no find_package(Torch), which
# would pull in the CUDA toolkit on machines that have nvcc but no GPU). CUDA builds
# (JNAS_WITH_CUDA=ON) use the wheel's own TorchConfig via torch.utils.cmake_prefix_path.
find_package(Python3 REQUIRED COMPONENTS Interpreter)

# LibTorch bundles fmt (12.x) in its include directory, and its headers win over the system's
# fmt. To keep one fmt version in every translation unit (no ODR mix), all of jointnas uses
# that bundled copy header-only, through jnas::fmt, instead of Debian's libfmt.
function(jnas_add_fmt include_dir)
  if(NOT EXISTS "${include_dir}/fmt/format.h")
    message(FATAL_ERROR "no fmt headers in ${include_dir}")
  endif()
  add_library(jnas_fmt INTERFACE)
  target_include_directories(jnas_fmt SYSTEM INTERFACE "${include_dir}")
  target_compile_definitions(jnas_fmt INTERFACE FMT_HEADER_ONLY=1)
  add_library(jnas::fmt ALIAS jnas_fmt)
endfunction()

if(JNAS_WITH_CUDA)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import torch.utils; print(torch.utils.cmake_prefix_path)"
    OUTPUT_VARIABLE _jnas_torch_prefix OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "JNAS_WITH_CUDA=ON needs a Python with torch 2.11 (CUDA build) importable")
  endif()
  list(APPEND CMAKE_PREFIX_PATH "${_jnas_torch_prefix}")
  find_package(Torch REQUIRED)
  add_library(jnas_torch INTERFACE)
  target_link_libraries(jnas_torch INTERFACE ${TORCH_LIBRARIES})
  target_include_directories(jnas_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
  target_compile_definitions(jnas_torch INTERFACE JNAS_WITH_CUDA=1)
  add_library(jnas::torch ALIAS jnas_torch)
  list(GET TORCH_INCLUDE_DIRS 0 _jnas_torch_inc)
  jnas_add_fmt("${_jnas_torch_inc}")
  return()
endif()

execute_process(
  COMMAND ${Python3_EXECUTABLE} -c
    "import importlib.util as u; s=u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')"
  OUTPUT_VARIABLE _jnas_torch_dir OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT _jnas_torch_dir OR NOT EXISTS "${_jnas_torch_dir}/lib/libtorch_cpu.so")
  message(FATAL_ERROR "LibTorch not found: run scripts/setup.sh (pip install torch==2.11.0)")
endif()
file(READ "${_jnas_torch_dir}/version.py" _jnas_torch_version_py)
string(REGEX MATCH "__version__ = '([0-9.]+)" _m "${_jnas_torch_version_py}")
if(NOT CMAKE_MATCH_1 VERSION_EQUAL "2.11.0")
  message(FATAL_ERROR "expected torch 2.11.0, found '${CMAKE_MATCH_1}' at ${_jnas_torch_dir}; "
                      "fix: pip install torch==2.11.0")
endif()
message(STATUS "LibTorch (CPU, torch_cpu + c10): ${_jnas_torch_dir}")
add_library(jnas_torch INTERFACE)
target_include_directories(jnas_torch SYSTEM INTERFACE
  "${_jnas_torch_dir}/include" "${_jnas_torch_dir}/include/torch/csrc/api/include")
target_link_libraries(jnas_torch INTERFACE
  "${_jnas_torch_dir}/lib/libtorch_cpu.so" "${_jnas_torch_dir}/lib/libc10.so")
target_link_options(jnas_torch INTERFACE "-Wl,-rpath,${_jnas_torch_dir}/lib")
add_library(jnas::torch ALIAS jnas_torch)
jnas_add_fmt("${_jnas_torch_dir}/include")
