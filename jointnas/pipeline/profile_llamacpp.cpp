// The `profile` stage for runtime llama.cpp; see profile_stage.h and docs/llamacpp.md.
#include "jointnas/core/error.h"
#include "jointnas/pipeline/profile_stage.h"

namespace jointnas::pipeline {

Json run_profile_llamacpp(const ProfileStageOptions&) {
  throw ConfigError("profile --runtime llama.cpp is being built (issue 25)", "use --runtime jointnas for now");
}

}  // namespace jointnas::pipeline
