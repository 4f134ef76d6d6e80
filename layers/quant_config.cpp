// QuantConfig (see layers/quant_config.h): strict parsing on core/json_read.h, every error is a
// ConfigError that names the JSON path (the layer's for overrides), the expectation and the value.
#include "layers/quant_config.h"

#include <algorithm>

#include "core/error.h"
#include "core/json_read.h"

namespace bfcn {

namespace {
using nlohmann::json;

// A bit width: 1..8 or 32 (FP32).
int read_bits(const JsonObject& o, const char* key, int fallback) {
  if (!o.has(key)) return fallback;
  const int64_t bits = o.get_int64(key, INT64_MIN, INT64_MAX);
  if (!((bits >= 1 && bits <= 8) || bits == 32))
    o.fail(key, "expected 1..8 or 32, but got " + std::to_string(bits));
  return static_cast<int>(bits);
}

const char* scale_name(bool channel) { return channel ? "channel" : "layer"; }

bool covers(const std::string& key, const std::string& name) {
  return name == key || (name.size() > key.size() && name.compare(0, key.size(), key) == 0 &&
                         name[key.size()] == '.');
}
}  // namespace

QuantConfig QuantConfig::from_json(const json& j, const std::string& path) {
  QuantConfig c;
  c.path_ = path;
  const JsonObject q(j, path, {}, "an object like {\"w_bits\": 1, \"a_bits\": 2}");
  q.check_keys({"w_bits", "a_bits", "g_bits", "w_scale", "first_last_fp", "overrides", "residual",
                "downsample", "score", "act_clip", "w_quantizer"});
  c.residual_fp_ = q.get_choice("residual", {"quantized", "fp"}, "quantized") == "fp";
  c.downsample_ = q.get_choice("downsample", {"quant", "fp32", "w8"}, c.downsample_);
  c.score_ = q.get_choice("score", {"fp32", "w8"}, c.score_);
  c.act_clip_ = q.get_choice("act_clip", {"fixed", "learned"}, c.act_clip_);
  c.default_.w_bits = read_bits(q, "w_bits", c.default_.w_bits);
  c.default_.a_bits = read_bits(q, "a_bits", c.default_.a_bits);
  c.default_.g_bits = read_bits(q, "g_bits", c.default_.g_bits);
  c.default_.w_scale_channel = q.get_choice("w_scale", {"layer", "channel"},
                                            scale_name(c.default_.w_scale_channel)) == "channel";
  c.default_.w_scaled = q.get_choice("w_quantizer", {"dorefa", "scaled"},
                                     c.default_.w_scaled ? "scaled" : "dorefa") == "scaled";
  c.first_last_fp_ = q.get_bool("first_last_fp", c.first_last_fp_);
  if (q.has("overrides")) {
    const JsonObject ov = q.get_object("overrides");
    for (const auto& [name, o] : ov.value().items()) {
      if (name.empty()) ov.fail("", "layer names must not be empty");
      const JsonObject r(o, ov.path_of(name), {},
                         "an object with w_bits, a_bits, g_bits or w_scale");
      r.check_keys({"w_bits", "a_bits", "g_bits", "w_scale"});
      Override x;
      x.w_bits = read_bits(r, "w_bits", 0);
      x.a_bits = read_bits(r, "a_bits", 0);
      x.g_bits = read_bits(r, "g_bits", 0);
      if (r.has("w_scale"))
        x.w_scale_channel = r.get_choice("w_scale", {"layer", "channel"}) == "channel";
      c.overrides_[name] = x;
    }
  }
  return c;
}

QuantSpec QuantConfig::spec_for(const std::string& layer_name) const {
  // Matching keys, shortest first, so longer (more specific) keys overwrite per field.
  std::vector<const std::pair<const std::string, Override>*> hits;
  for (const auto& kv : overrides_)
    if (covers(kv.first, layer_name)) hits.push_back(&kv);
  std::sort(hits.begin(), hits.end(),
            [](const auto* a, const auto* b) { return a->first.size() < b->first.size(); });
  QuantSpec s = default_;
  for (const auto* h : hits) {
    const Override& o = h->second;
    if (o.w_bits) s.w_bits = o.w_bits;
    if (o.a_bits) s.a_bits = o.a_bits;
    if (o.g_bits) s.g_bits = o.g_bits;
    if (o.w_scale_channel >= 0) s.w_scale_channel = o.w_scale_channel == 1;
  }
  return s;
}

QuantSpec QuantConfig::downsample_spec(const std::string& layer_name) const {
  QuantSpec s = spec_for(layer_name);
  if (downsample_ == "fp32") s.w_bits = s.g_bits = 32;
  if (downsample_ == "w8") {
    s.w_bits = 8;
    s.w_symmetric = true;
  }
  return s;
}

std::vector<std::string> QuantConfig::override_keys() const {
  std::vector<std::string> keys;
  for (const auto& kv : overrides_) keys.push_back(kv.first);
  return keys;
}

void QuantConfig::check_overrides_match(const std::vector<std::string>& layer_names) const {
  for (const auto& kv : overrides_) {
    const bool hit = std::any_of(layer_names.begin(), layer_names.end(),
                                 [&](const std::string& n) { return covers(kv.first, n); });
    BFCN_CHECK_CONFIG(hit, path_, ".overrides: key '", kv.first, "' matches no layer");
  }
}

json QuantConfig::to_json() const {
  json j = {{"w_bits", default_.w_bits},
            {"a_bits", default_.a_bits},
            {"g_bits", default_.g_bits},
            {"w_scale", scale_name(default_.w_scale_channel)},
            {"first_last_fp", first_last_fp_}};
  // Policy keys only when they differ from the paper's recipe (resolved configs stay as before).
  if (residual_fp_) j["residual"] = "fp";
  if (downsample_ != "quant") j["downsample"] = downsample_;
  if (score_ != "fp32") j["score"] = score_;
  if (act_clip_ != "fixed") j["act_clip"] = act_clip_;
  if (default_.w_scaled) j["w_quantizer"] = "scaled";
  if (!overrides_.empty()) {
    json ov = json::object();
    for (const auto& [name, o] : overrides_) {
      json e = json::object();
      if (o.w_bits) e["w_bits"] = o.w_bits;
      if (o.a_bits) e["a_bits"] = o.a_bits;
      if (o.g_bits) e["g_bits"] = o.g_bits;
      if (o.w_scale_channel >= 0) e["w_scale"] = scale_name(o.w_scale_channel == 1);
      ov[name] = e;
    }
    j["overrides"] = ov;
  }
  return j;
}

}  // namespace bfcn
