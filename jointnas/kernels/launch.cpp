#include "jointnas/kernels/launch.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace jointnas::kernels {
namespace {

std::atomic<bool>& flag() {
  static std::atomic<bool> on{[] {
    const char* e = std::getenv("JNAS_PDL");
    return e == nullptr || std::strcmp(e, "0") != 0;
  }()};
  return on;
}

}  // namespace

void set_programmatic_launch(bool on) { flag().store(on); }
bool programmatic_launch() { return flag().load(); }

}  // namespace jointnas::kernels
