// What one linear contributes to a cost, shared by predict(), expected_cost() and required_keys()
// so that the discrete and the expected model and the profiler's key list agree term by term.
#pragma once

#include <cstdint>
#include <string>

#include "jointnas/profile/latency_table.h"

namespace jointnas::profile {

// Weight bytes the runtime holds for one N x K linear in `format`, from the registry row: the
// packed format, and on the CPU (`cpu`) also the dequantized copy in the compute dtype that
// QuantLinear keeps of a weight-only format (its CPU GEMM runs on that copy), so a weight-only
// format costs more memory there than bf16, not less.
int64_t linear_bytes(int64_t n, int64_t k, const std::string& format, int64_t dtype_bytes, bool cpu);

// Whether the runtime hands a linear of `format` its input quantized by the producer (RMSNorm,
// SiLU * up), the rule of LlamaModel::block: on a table measured on CUDA, bf16 activations.
bool fed_quantized(const std::string& format, bool cpu_table);

// The table's latency of y = x W^T over m rows, K -> N, in format f.
double linear_ms(const LatencyTable& t, int64_t m, int64_t k, int64_t n, const std::string& f,
                 bool quantized_input);

}  // namespace jointnas::profile
