// llama.cpp as a runtime, in a build without it: every entry point refuses with the fix.
#include "jointnas/llamacpp/llamacpp.h"
#include "jointnas/llamacpp/op_timer.h"

#include "jointnas/core/error.h"

namespace jointnas::llamacpp {
namespace {
[[noreturn]] void absent() {
  throw ConfigError("this jointnas was built without llama.cpp (--runtime llama.cpp needs libllama)",
                    "run scripts/setup_llama_cpp.sh, then reconfigure and rebuild (cmake -S . -B build)");
}
}  // namespace

bool available() { return false; }
std::string version() { return JNAS_LLAMA_CPP_VERSION; }
void init() { absent(); }
struct Model::Impl {};
Model::Model(const std::string&, int) : threads_(0) { absent(); }
Model::~Model() = default;
const std::string& Model::path() const { absent(); }
int64_t Model::params() const { absent(); }
int64_t Model::bytes() const { absent(); }
std::string Model::description() const { absent(); }
int64_t Model::n_ctx_train() const { absent(); }
int64_t Model::n_vocab() const { absent(); }
int64_t Model::bos_id() const { absent(); }
int64_t Model::eos_id() const { absent(); }
bool Model::add_bos() const { absent(); }
std::function<double()> Model::decode_timer(int64_t) { absent(); }
std::function<double()> Model::prefill_timer(int64_t) { absent(); }
std::vector<int32_t> Model::tokenize(const std::string&, bool) const { absent(); }
std::vector<int32_t> Model::tokenize_continuation(const std::string&) const { absent(); }
std::string Model::detokenize(const std::vector<int32_t>&, bool) const { absent(); }
std::vector<float> Model::logits(const std::vector<int32_t>&) const { absent(); }
Model::WindowNll Model::window_nll(int64_t) const { absent(); }
const std::vector<Preset>& presets() { absent(); }
const Preset& find_preset(const std::string&) { absent(); }
int64_t quantize(const std::string&, const std::string&, const std::string&, int) { absent(); }

OpTime summarize(std::vector<double>) { absent(); }
struct OpTimer::Impl {};
OpTimer::OpTimer(int, int64_t, int, int) { absent(); }
OpTimer::~OpTimer() = default;
bool OpTimer::is_ggml_type(const std::string&) { return false; }
OpTime OpTimer::linear(int64_t, int64_t, int64_t, const std::string&) { absent(); }
OpTime OpTimer::attention(int64_t, int64_t, int64_t, int64_t, int64_t) { absent(); }
OpTime OpTimer::block_fixed(int64_t, int64_t, int64_t) { absent(); }
OpTime OpTimer::head(int64_t, int64_t, int64_t) { absent(); }

}  // namespace jointnas::llamacpp
