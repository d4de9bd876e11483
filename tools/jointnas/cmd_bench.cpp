// `jointnas bench`: placeholder registration, filled in below.
#include "common.h"
namespace jointnas::cli {
void register_bench(CLI::App& app) { (void)app; }
}  // namespace jointnas::cli
