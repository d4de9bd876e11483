// Model-level quantization (see quantize_model.h).
#include "jointnas/compress/quantize_model.h"

#include <ATen/ATen.h>

#include <chrono>
#include <random>

#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/quant/pack.h"

namespace jointnas::compress {
namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The float weight of an unquantized linear, [N, K].
at::Tensor float_weight(const quant::QuantLinear& lin, int64_t layer, model::LinearSlot slot) {
  JNAS_CHECK_CONFIG(!lin.format().quantized(),
                    "layer {} {} is already quantized ({}); quantize from the original model",
                    layer, slot_name(slot), lin.format().name);
  return lin.packed().data;
}

bool use_gptq(const QuantizePlan& plan, const quant::QuantFormat& f) {
  return plan.method == "gptq" && f.weight == quant::WeightType::kInt;
}

}  // namespace

QuantizePlan uniform_plan(int64_t num_layers, const std::string& format) {
  quant::find_format(format);
  QuantizePlan p;
  p.formats.assign(static_cast<size_t>(num_layers), {format, format, format, format});
  return p;
}

QuantizePlan plan_from_json(const Json& j, int64_t num_layers, const std::string& default_format,
                            const std::string& src) {
  JNAS_CHECK_CONFIG(j.is_array() && static_cast<int64_t>(j.size()) == num_layers,
                    "{}: expected a list of {} per-layer objects (one per layer)", src, num_layers);
  QuantizePlan p = uniform_plan(num_layers, default_format);
  for (int64_t l = 0; l < num_layers; ++l) {
    const Json& e = j[static_cast<size_t>(l)];
    JNAS_CHECK_CONFIG(e.is_object(), "{}: layer {} must be an object like {{\"qkv\": \"w8a8\"}}", src, l);
    for (const auto& [key, value] : e.items()) {
      int slot = -1;
      for (int s = 0; s < model::kNumSlots; ++s) {
        if (key == slot_name(static_cast<model::LinearSlot>(s))) slot = s;
      }
      JNAS_CHECK_CONFIG(slot >= 0, "{}: layer {}: unknown key '{}' (expected qkv, o, gate_up, down)",
                        src, l, key);
      JNAS_CHECK_CONFIG(value.is_string(), "{}: layer {} {}: format must be a string", src, l, key);
      p.formats[static_cast<size_t>(l)][static_cast<size_t>(slot)] =
          quant::find_format(value.get<std::string>()).name;
    }
  }
  return p;
}

Json QuantizeReport::to_json() const {
  Json ls = Json::array();
  for (const LinearReport& r : linears) {
    ls.push_back({{"layer", r.layer}, {"slot", r.slot}, {"format", r.format}, {"method", r.method},
                  {"out_features", r.out_features}, {"in_features", r.in_features},
                  {"seconds", r.seconds}});
  }
  return Json{{"linears", ls},
              {"weight_bytes_before", bytes_before},
              {"weight_bytes_after", bytes_after},
              {"calibration_tokens", calibration_tokens},
              {"seconds", seconds}};
}

at::Tensor sample_windows(const std::vector<int64_t>& stream, int64_t n, int64_t len, uint64_t seed) {
  const int64_t total = static_cast<int64_t>(stream.size());
  JNAS_CHECK_CONFIG(n > 0 && len > 1, "calibration needs n > 0 windows of len > 1 tokens");
  JNAS_CHECK_CONFIG(total >= len, "calibration text has {} tokens, fewer than one window of {}",
                    total, len);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, total - len);
  at::Tensor w = at::empty({n, len}, at::kLong);
  int64_t* out = w.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t off = pick(rng);
    std::copy(stream.begin() + off, stream.begin() + off + len, out + i * len);
  }
  return w;
}

QuantizeReport quantize_model(model::LlamaModel& m, const QuantizePlan& plan, const at::Tensor& calib,
                              const std::function<void(int64_t, int64_t)>& progress) {
  const auto t_all = Clock::now();
  const int64_t L = m.config().num_hidden_layers;
  JNAS_CHECK_CONFIG(static_cast<int64_t>(plan.formats.size()) == L,
                    "quantization plan has {} layers, the model {}", plan.formats.size(), L);
  JNAS_CHECK_CONFIG(plan.method == "rtn" || plan.method == "gptq",
                    "unknown quantization method '{}' (expected rtn or gptq)", plan.method);
  QuantizeReport rep;
  rep.bytes_before = m.weight_bytes();
  bool any_gptq = false;
  for (int64_t l = 0; l < L; ++l) {
    for (int s = 0; s < model::kNumSlots; ++s) {
      any_gptq |= !m.specs()[l].skip && use_gptq(plan, quant::find_format(plan.formats[l][s]));
    }
  }
  if (any_gptq) {
    JNAS_CHECK_CONFIG(calib.defined() && calib.dim() == 2 && calib.size(0) > 0,
                      "GPTQ needs calibration windows (--calib TEXT)");
    rep.calibration_tokens = calib.numel();
  }
  const c10::Device dev = m.options().device;
  const c10::ScalarType dt = m.options().dtype;
  for (int64_t l = 0; l < L; ++l) {
    if (m.specs()[l].skip) continue;
    // Hessians of this block's GPTQ linears, from the current (partly quantized) model.
    std::array<std::unique_ptr<quant::HessianAccumulator>, model::kNumSlots> hess;
    bool need = false;
    for (int s = 0; s < model::kNumSlots; ++s) {
      if (use_gptq(plan, quant::find_format(plan.formats[l][s]))) {
        hess[s] = std::make_unique<quant::HessianAccumulator>(
            m.linear(l, static_cast<model::LinearSlot>(s)).in_features());
        need = true;
      }
    }
    if (need) {
      model::ForwardHooks hooks;
      hooks.stop_after_layer = l;
      hooks.on_linear_input = [&](int64_t layer, model::LinearSlot slot, const at::Tensor& x) {
        if (layer == l && hess[static_cast<int>(slot)]) hess[static_cast<int>(slot)]->add(x);
      };
      for (int64_t b = 0; b < calib.size(0); b += plan.batch) {
        m.forward(calib.narrow(0, b, std::min(plan.batch, calib.size(0) - b)), nullptr, false, &hooks);
      }
    }
    for (int s = 0; s < model::kNumSlots; ++s) {
      const auto slot = static_cast<model::LinearSlot>(s);
      const quant::QuantFormat& f = quant::find_format(plan.formats[l][s]);
      const quant::QuantLinear& cur = m.linear(l, slot);
      LinearReport r{l, slot_name(slot), f.name, "keep", cur.out_features(), cur.in_features(), 0};
      const auto t0 = Clock::now();
      if (f.quantized()) {
        const at::Tensor w = float_weight(cur, l, slot);
        quant::QuantizedWeight qw;
        if (hess[s]) {
          qw = quant::gptq_quantize(w, hess[s]->hessian(), f, plan.gptq);
          r.method = "gptq";
        } else {
          qw = quant::quantize_ref(w, f);
          r.method = "rtn";
        }
        m.set_linear(l, slot, quant::QuantLinear(quant::pack(qw), dev, dt));
      }
      r.seconds = since(t0);
      rep.linears.push_back(r);
    }
    if (progress) progress(l + 1, L);
  }
  rep.bytes_after = m.weight_bytes();
  rep.seconds = since(t_all);
  return rep;
}

}  // namespace jointnas::compress
