// Latency-table keys read back; see table_key.h.
#include "jointnas/profile/table_key.h"

#include <algorithm>
#include <cctype>

#include "jointnas/core/error.h"
#include "jointnas/quant/format.h"

namespace jointnas::profile {

ParsedKey parse_key(const std::string& key) {
  ParsedKey p;
  size_t start = 0;
  bool first = true;
  while (start <= key.size()) {
    const size_t end = std::min(key.find('/', start), key.size());
    const std::string part = key.substr(start, end - start);
    if (first) {
      p.op = part;
      first = false;
    } else if (part == "qx") {
      p.quantized_input = true;
    } else if (std::any_of(quant::formats().begin(), quant::formats().end(),
                           [&](const quant::QuantFormat& f) { return part == f.name; })) {
      p.format = part;  // before the dimensions: the format "f16" reads like one (f = 16)
    } else if (!part.empty() && std::isalpha(static_cast<unsigned char>(part[0])) && part.size() > 1 &&
               std::all_of(part.begin() + (part.rfind("kv", 0) == 0 ? 2 : 1), part.end(), ::isdigit)) {
      const bool kv = part.rfind("kv", 0) == 0;
      p.v[kv ? 'K' : part[0]] = std::stoll(part.substr(kv ? 2 : 1));
    } else {
      p.format = part;
    }
    start = end + 1;
  }
  return p;
}

int64_t need(const ParsedKey& p, char c, const std::string& key) {
  auto it = p.v.find(c);
  JNAS_CHECK_CONFIG(it != p.v.end(), "malformed latency-table key '{}' (no '{}')", key, c);
  return it->second;
}

}  // namespace jointnas::profile
