// The git SHA of the checkout this binary was built from ("-dirty" with uncommitted changes to
// tracked files, "unknown" outside a checkout). Stamped at build time (cmake/git_sha.cmake), not at
// configure time: latency tables are reused only under the same code.
#pragma once

namespace jointnas::profile {

const char* git_sha();

}  // namespace jointnas::profile
