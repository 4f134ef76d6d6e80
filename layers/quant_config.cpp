// QuantConfig (see layers/quant_config.h): strict parsing, every error is a ConfigError that names
// the JSON path (and the layer for overrides), the expectation and the value found.
#include "layers/quant_config.h"

#include <algorithm>

#include "core/error.h"

namespace bfcn {

namespace {
using nlohmann::json;

// Where an error is reported: "model.quant" or "model.quant.overrides.layer4: layer 'layer4'".
struct Where {
  std::string path, layer;
  std::string str() const { return layer.empty() ? path : path + ": layer '" + layer + "'"; }
};

void check_keys(const json& j, const std::vector<std::string>& known, const Where& w) {
  for (const auto& [key, value] : j.items()) {
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    throw ConfigError(detail::concat(w.str(), ": unknown key '", key, "' (known: ", list, ")"));
  }
}

int read_bits(const json& v, const char* key, const Where& w) {
  BFCN_CHECK_CONFIG(v.is_number_integer(), w.str(), ": ", key, " must be an integer, got ",
                    v.dump());
  const auto bits = v.get<int64_t>();
  BFCN_CHECK_CONFIG((bits >= 1 && bits <= 8) || bits == 32, w.str(), ": ", key,
                    " must be 1..8 or 32, got ", bits);
  return static_cast<int>(bits);
}

bool read_scale(const json& v, const Where& w) {
  BFCN_CHECK_CONFIG(v.is_string() && (v == "layer" || v == "channel"), w.str(),
                    ": w_scale must be \"layer\" or \"channel\", got ", v.dump());
  return v == "channel";
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
  const Where top{path, ""};
  BFCN_CHECK_CONFIG(j.is_object(), path,
                    ": expected an object like {\"w_bits\": 1, \"a_bits\": 2}, got ", j.dump());
  check_keys(j,
             {"w_bits", "a_bits", "g_bits", "w_scale", "first_last_fp", "overrides", "residual",
              "downsample", "score", "act_clip"},
             top);
  auto read_choice = [&](const char* key, const std::vector<std::string>& allowed,
                         std::string& dst) {
    if (!j.contains(key)) return;
    const json& v = j[key];
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
    BFCN_CHECK_CONFIG(v.is_string() && std::find(allowed.begin(), allowed.end(),
                                                 v.get<std::string>()) != allowed.end(),
                      path, ": ", key, " must be one of ", list, ", got ", v.dump());
    dst = v.get<std::string>();
  };
  std::string residual = "quantized";
  read_choice("residual", {"quantized", "fp"}, residual);
  c.residual_fp_ = residual == "fp";
  read_choice("downsample", {"quant", "fp32", "w8"}, c.downsample_);
  read_choice("score", {"fp32", "w8"}, c.score_);
  read_choice("act_clip", {"fixed", "learned"}, c.act_clip_);
  if (j.contains("w_bits")) c.default_.w_bits = read_bits(j["w_bits"], "w_bits", top);
  if (j.contains("a_bits")) c.default_.a_bits = read_bits(j["a_bits"], "a_bits", top);
  if (j.contains("g_bits")) c.default_.g_bits = read_bits(j["g_bits"], "g_bits", top);
  if (j.contains("w_scale")) c.default_.w_scale_channel = read_scale(j["w_scale"], top);
  if (j.contains("first_last_fp")) {
    const json& v = j["first_last_fp"];
    BFCN_CHECK_CONFIG(v.is_boolean(), path, ": first_last_fp must be true or false, got ",
                      v.dump());
    c.first_last_fp_ = v.get<bool>();
  }
  if (j.contains("overrides")) {
    const json& ov = j["overrides"];
    BFCN_CHECK_CONFIG(
        ov.is_object(), path,
        ": overrides must be an object {\"<layer or prefix>\": {\"w_bits\": ...}}, got ",
        ov.dump());
    for (const auto& [name, o] : ov.items()) {
      const Where w{path + ".overrides." + name, name};
      BFCN_CHECK_CONFIG(!name.empty(), path, ".overrides: layer names must not be empty");
      BFCN_CHECK_CONFIG(o.is_object(), w.str(),
                        ": expected an object with w_bits, a_bits, g_bits or w_scale, got ",
                        o.dump());
      check_keys(o, {"w_bits", "a_bits", "g_bits", "w_scale"}, w);
      Override r;
      if (o.contains("w_bits")) r.w_bits = read_bits(o["w_bits"], "w_bits", w);
      if (o.contains("a_bits")) r.a_bits = read_bits(o["a_bits"], "a_bits", w);
      if (o.contains("g_bits")) r.g_bits = read_bits(o["g_bits"], "g_bits", w);
      if (o.contains("w_scale")) r.w_scale_channel = read_scale(o["w_scale"], w) ? 1 : 0;
      c.overrides_[name] = r;
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
