// One linear's terms of the cost model (see linear_cost.h).
#include "jointnas/profile/linear_cost.h"

#include <c10/core/ScalarType.h>

#include "jointnas/quant/format.h"
#include "jointnas/quant/quantizing_producers.h"

namespace jointnas::profile {

int64_t linear_bytes(int64_t n, int64_t k, const std::string& format, int64_t dtype_bytes, bool cpu) {
  const quant::QuantFormat& f = quant::find_format(format);
  if (!f.quantized()) return n * k * dtype_bytes;
  // The CPU runtime keeps a dequantized copy of weight-only and ggml formats (quant/qlinear.h).
  const bool cpu_cache = cpu && (f.weight_only() || f.weight == quant::WeightType::kGgml);
  return f.weight_bytes(n, k) + (cpu_cache ? n * k * dtype_bytes : 0);
}

bool fed_quantized(const std::string& format, bool cpu_table) {
  return quant::producer_quantizes_input(quant::find_format(format), cpu_table ? c10::kCPU : c10::kCUDA,
                                         at::kBFloat16);
}

double linear_ms(const LatencyTable& t, int64_t m, int64_t k, int64_t n, const std::string& f,
                 bool quantized_input) {
  return t.ms(LatencyTable::linear_key(m, k, n, f, quantized_input));
}

}  // namespace jointnas::profile
