// Programmatic dependent launch (PDL, compute capability 9.0+): our decode-path kernels are
// launched so that each may start while its predecessor in the stream is still running. Every such
// kernel triggers its dependents as it starts, prefetches what does not depend on the predecessor
// (its weights), and waits for the predecessor's completion (griddepcontrol.wait) before it reads
// an activation or writes anything; see pdl_cuda.h. This hides the launch and the DRAM ramp of
// each of the ~10 kernels per block of a CUDA-graph decode step.
#pragma once

namespace jointnas::kernels {

// On by default where the device supports it; JNAS_PDL=0 in the environment, or
// set_programmatic_launch(false) before a CUDA graph is captured, turns it off (A/B benchmarks:
// `jointnas bench --no-pdl`). A no-op in CPU builds.
void set_programmatic_launch(bool on);
bool programmatic_launch();

}  // namespace jointnas::kernels
