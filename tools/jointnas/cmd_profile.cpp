// `jointnas profile`: measures the latency table a search space needs on this device, reusing
// (and extending) an existing table when its device, versions and dtype match.
#include <iostream>

#include <fmt/format.h>

#include "common.h"
#include "jointnas/core/error.h"
#include "jointnas/core/log.h"
#include "jointnas/core/paths.h"
#include "jointnas/profile/profiler.h"

namespace jointnas::cli {
namespace {

struct ProfileFlags {
  RunFlags run;
  std::string config, space, out, workload_kind = "decode";
  int64_t batch = 1, context = 512, tokens = 2048;
  int repeats = 20, warmup = 3;
  bool force = false;
};

// The search space as JSON (the YAML search-space config of issue 5 maps onto this):
// {"hidden": [..], "kv_heads": 8, "head_dim": 128, "layers": [{"heads": [..], "intermediate":
// [..], "formats": [..]} | one object for all layers]}.
profile::CostSpace space_from_json(const Json& j, const model::LlamaConfig& c, const std::string& src) {
  profile::CostSpace s;
  auto ints = [&](const Json& o, const char* k, std::vector<int64_t> dflt) {
    if (!o.contains(k)) return dflt;
    JNAS_CHECK_CONFIG(o[k].is_array(), "{}: '{}' must be a list of integers", src, k);
    std::vector<int64_t> v;
    for (const auto& e : o[k]) {
      JNAS_CHECK_CONFIG(e.is_number_integer() && e.get<int64_t>() > 0, "{}: '{}' must hold positive integers", src, k);
      v.push_back(e.get<int64_t>());
    }
    return v;
  };
  s.hidden = ints(j, "hidden", {c.hidden_size});
  s.kv_heads = get_int(j, "kv_heads", src).value_or(c.num_key_value_heads);
  s.head_dim = get_int(j, "head_dim", src).value_or(c.head_dim);
  auto layer = [&](const Json& o) {
    profile::LayerSpace l;
    l.heads = ints(o, "heads", {c.num_attention_heads});
    l.intermediate = ints(o, "intermediate", {c.intermediate_size});
    std::vector<std::string> formats{"bf16"};
    if (o.contains("formats")) {
      formats.clear();
      for (const auto& f : o["formats"]) formats.push_back(quant::find_format(f.get<std::string>()).name);
    }
    l.formats_qkv = l.formats_o = l.formats_gate_up = l.formats_down = formats;
    l.can_skip = o.value("can_skip", false);
    return l;
  };
  const Json lj = j.contains("layers") ? j["layers"] : Json::object();
  if (lj.is_array()) {
    JNAS_CHECK_CONFIG(static_cast<int64_t>(lj.size()) == c.num_hidden_layers,
                      "{}: 'layers' lists {} layers, the model has {}", src, lj.size(), c.num_hidden_layers);
    for (const auto& e : lj) s.layers.push_back(layer(e));
  } else {
    s.layers.assign(static_cast<size_t>(c.num_hidden_layers), layer(lj));
  }
  return s;
}

void run(ProfileFlags& f) {
  model::RuntimeOptions ro = runtime_options(f.run);
  JNAS_CHECK_CONFIG(!f.config.empty(), "profile needs --config CONFIG.json (the model's shapes)");
  const model::LlamaConfig cfg = model::LlamaConfig::from_file(f.config);
  const profile::CostSpace space =
      f.space.empty() ? space_from_json(Json::object(), cfg, "(dense)") : space_from_json(read_json_file(f.space), cfg, f.space);
  profile::Workload w;
  w.kind = f.workload_kind;
  w.batch = f.batch;
  w.context = f.context;
  w.tokens = f.tokens;
  profile::ProfileOptions o;
  o.device = ro.device;
  o.dtype = ro.dtype;
  o.repeats = f.repeats;
  o.warmup = f.warmup;
  o.vocab = cfg.vocab_size;
  o.rms_eps = cfg.rms_norm_eps;
  profile::LatencyTable table;
  Json meta = profile::device_meta(o);
  if (file_exists(f.out)) {
    profile::LatencyTable old = profile::LatencyTable::load(f.out);
    Json om = old.meta;
    om.erase("workloads");
    if (om == meta) {
      table = std::move(old);
      JNAS_LOG_INFO("[profile] reusing {} ({} entries)", f.out, table.entries().size());
    } else {
      JNAS_LOG_WARN("[profile] {} was measured under other conditions ({}); starting a new table",
                    f.out, om.dump());
    }
  }
  const std::vector<std::string> keys = profile::required_keys(cfg, space, w);
  int64_t last_pct = -1;
  profile::profile_keys(table, keys, o, f.force, [&](int64_t done, int64_t total, const std::string& key, double eta) {
    const int64_t pct = 100 * done / total;
    if (pct / 5 != last_pct / 5 || done == total) {
      JNAS_LOG_INFO("[profile] {}/{} ({}%) eta {:.0f} s  {}", done, total, pct, eta, key);
      last_pct = pct;
      table.save(f.out);  // a killed profile keeps what it measured
    }
  });
  Json wl = table.meta.contains("workloads") ? table.meta["workloads"] : Json::array();
  if (std::find(wl.begin(), wl.end(), Json(w.name())) == wl.end()) wl.push_back(w.name());
  meta["workloads"] = wl;
  table.meta = meta;
  table.save(f.out);
  Json j{{"out", f.out}, {"entries", table.entries().size()}, {"required", keys.size()}, {"workload", w.to_json()}};
  emit(f.run.format, j, [&] {
    std::cout << fmt::format("wrote {}: {} entries ({} needed by the space for {})\n", f.out,
                             table.entries().size(), keys.size(), w.name());
  });
}

}  // namespace

void register_profile(CLI::App& app) {
  auto f = std::make_shared<ProfileFlags>();
  auto* sub = app.add_subcommand("profile", "Measure the latency table of a search space on this device");
  add_run_flags(sub, f->run, /*model_required=*/false);
  sub->add_option("--config", f->config, "config.json of the model whose shapes to profile")->required();
  sub->add_option("--space", f->space, "Search space JSON (hidden, heads, intermediate, formats); default: the dense model");
  sub->add_option("--workload", f->workload_kind, "decode | prefill")
      ->check(CLI::IsMember({"decode", "prefill"}))
      ->capture_default_str();
  sub->add_option("--batch", f->batch, "Batch")->capture_default_str();
  sub->add_option("--context", f->context, "Decode context")->capture_default_str();
  sub->add_option("--tokens", f->tokens, "Prefill tokens")->capture_default_str();
  sub->add_option("--repeats", f->repeats, "Timed repeats per entry (median stored)")->capture_default_str();
  sub->add_option("--warmup", f->warmup, "Untimed calls per entry")->capture_default_str();
  sub->add_flag("--force", f->force, "Re-measure entries already in the table");
  sub->add_option("-o,--out", f->out, "Latency table JSON (extended in place when it matches)")->required();
  sub->callback([f] { run(*f); });
}

}  // namespace jointnas::cli
