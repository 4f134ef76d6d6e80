// Config validation by schema-of-defaults: default_train_json() lists every key with a default of
// the right JSON type, so "unknown key" and "wrong type" checks are one recursive walk; ranges are
// checked afterwards, key by key, with the allowed interval in the message.
#include "train/config.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace bfcn {

using nlohmann::json;

json default_train_json() {
  return json{
      {"optimizer", "sgd"},
      {"lr", 0.01},
      {"momentum", 0.9},
      {"nesterov", false},
      {"weight_decay", 1e-4},
      {"wd_exclude_bn_bias", true},
      {"betas", {0.9, 0.999}},
      {"eps", 1e-8},
      {"iterations", 0},
      {"epochs", 0},
      {"batch", 8},
      {"lr_schedule",
       {{"type", "poly"},
        {"power", 0.9},
        {"step", 1000},
        {"gamma", 0.1},
        {"warmup_iters", 0},
        {"warmup_factor", 0.1}}},
      {"grad_clip", 0.0},
      {"eval_interval", 0},
      {"eval_at_start", false},
      {"log_interval", 10},
      {"checkpoint_interval", 0},
      {"keep_last", 3},
      {"seed", 1},
      {"threads", 0},
      {"sync_bn", false},
      {"calibrate_batches", 0},
      {"bn_recalib_end_batches", 0},
      {"teacher", ""},
      {"distill", {{"loss", "kl"}, {"weight", 1.0}, {"temperature", 2.0}}},
  };
}

json load_json_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  BFCN_CHECK_IO(in.good(), file.string(), ": cannot open config file (does it exist?)");
  try {
    return json::parse(in, nullptr, true, /*ignore_comments=*/true);
  } catch (const json::parse_error& e) {
    throw ConfigError(file.string() + ": invalid JSON: " + e.what());
  }
}

namespace {

const char* type_word(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

std::string known_keys(const json& schema) {
  std::string s;
  for (auto it = schema.begin(); it != schema.end(); ++it) s += (s.empty() ? "" : ", ") + it.key();
  return s;
}

// Does `v` fit where `like` is expected? Integers fit number slots; floats do not fit integers.
bool same_kind(const json& v, const json& like) {
  if (like.is_number_integer()) return v.is_number_integer();
  if (like.is_number()) return v.is_number();
  if (like.is_array()) {
    if (!v.is_array() || v.size() != like.size()) return false;
    for (size_t i = 0; i < v.size(); ++i)
      if (!same_kind(v[i], like[i])) return false;
    return true;
  }
  return v.type() == like.type();
}

std::string expect_word(const json& like) {
  if (like.is_array()) return "an array of " + std::to_string(like.size()) + " numbers";
  return type_word(like);
}

// user keys ⊆ schema keys with matching kinds; fills missing keys from the schema.
void merge_checked(json& user, const json& schema, const std::string& path,
                   const std::string& source) {
  BFCN_CHECK_CONFIG(user.is_object(), source, ": ", path, ": expected an object, but got ",
                    type_word(user));
  for (auto it = user.begin(); it != user.end(); ++it) {
    const std::string p = path + "." + it.key();
    BFCN_CHECK_CONFIG(schema.contains(it.key()), source, ": ", p,
                      ": unknown key (known: ", known_keys(schema), ")");
    const json& like = schema.at(it.key());
    if (like.is_object()) {
      merge_checked(it.value(), like, p, source);
    } else {
      BFCN_CHECK_CONFIG(same_kind(it.value(), like), source, ": ", p, ": expected ",
                        expect_word(like), ", but got ", type_word(it.value()), " (",
                        it.value().dump(), ")");
    }
  }
  for (auto it = schema.begin(); it != schema.end(); ++it)
    if (!user.contains(it.key())) user[it.key()] = it.value();
}

struct RangeCheck {
  const json& t;
  const std::string& source;
  void num(const char* key, double lo, double hi, bool lo_open, bool hi_open,
           const json* sub = nullptr, const char* prefix = "train.") const {
    const json& v = (sub ? *sub : t).at(key);
    const double x = v.get<double>();
    const bool ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
    BFCN_CHECK_CONFIG(ok, source, ": ", prefix, key, ": expected a value in ", lo_open ? "(" : "[",
                      lo, ", ", hi, hi_open ? ")" : "]", ", but got ", v.dump());
  }
  void one_of(const char* key, const std::vector<std::string>& allowed, const json* sub = nullptr,
              const char* prefix = "train.") const {
    const std::string v = (sub ? *sub : t).at(key).get<std::string>();
    std::string list;
    for (const auto& a : allowed) {
      if (a == v) return;
      list += (list.empty() ? "" : ", ") + a;
    }
    throw ConfigError(source + ": " + prefix + key + ": expected one of " + list + ", but got '" +
                      v + "'");
  }
};

void check_ranges(const json& t, const std::string& source) {
  const RangeCheck c{t, source};
  const double big = 1e18;
  c.one_of("optimizer", {"sgd", "adam", "adamw"});
  c.num("lr", 0, 10, true, false);
  c.num("momentum", 0, 1, false, true);
  c.num("weight_decay", 0, 1, false, false);
  c.num("eps", 0, 1, true, false);
  for (int i = 0; i < 2; ++i) {
    const double b = t.at("betas")[i].get<double>();
    BFCN_CHECK_CONFIG(b >= 0 && b < 1, source, ": train.betas[", i,
                      "]: expected a value in [0, 1), but got ", b);
  }
  c.num("iterations", 0, big, false, false);
  c.num("epochs", 0, big, false, false);
  BFCN_CHECK_CONFIG((t.at("iterations").get<int64_t>() > 0) != (t.at("epochs").get<int64_t>() > 0),
                    source,
                    ": train: expected exactly one of train.iterations or train.epochs to be > 0, "
                    "but got iterations=",
                    t.at("iterations").dump(), ", epochs=", t.at("epochs").dump());
  c.num("batch", 1, 4096, false, false);
  const json& s = t.at("lr_schedule");
  c.one_of("type", {"poly", "step", "cosine", "constant"}, &s, "train.lr_schedule.");
  c.num("power", 0, 100, false, false, &s, "train.lr_schedule.");
  c.num("step", 1, big, false, false, &s, "train.lr_schedule.");
  c.num("gamma", 0, 1, true, false, &s, "train.lr_schedule.");
  c.num("warmup_iters", 0, big, false, false, &s, "train.lr_schedule.");
  c.num("warmup_factor", 0, 1, false, false, &s, "train.lr_schedule.");
  c.num("grad_clip", 0, big, false, false);
  c.num("eval_interval", 0, big, false, false);
  c.num("log_interval", 1, big, false, false);
  c.num("checkpoint_interval", 0, big, false, false);
  c.num("keep_last", 1, 1000000, false, false);
  c.num("seed", 0, 9.2e18, false, false);
  c.num("threads", 0, 1024, false, false);
  c.num("calibrate_batches", 0, 100000, false, false);
  c.num("bn_recalib_end_batches", 0, 100000, false, false);
  const json& d = t.at("distill");
  c.one_of("loss", {"kl", "mse"}, &d, "train.distill.");
  c.num("weight", 0, 1000, false, false, &d, "train.distill.");
  c.num("temperature", 0, 100, true, false, &d, "train.distill.");
  BFCN_CHECK_CONFIG(!t.at("nesterov").get<bool>() || t.at("momentum").get<double>() > 0, source,
                    ": train.nesterov: Nesterov momentum needs train.momentum > 0, but got ",
                    t.at("momentum").dump());
}

}  // namespace

void apply_set(json& cfg, const std::string& expr, const std::string& source) {
  const size_t eq = expr.find('=');
  BFCN_CHECK_CONFIG(eq != std::string::npos && eq > 0, "--set '", expr,
                    "': expected key.path=value (e.g. train.lr=0.005)");
  const std::string path = expr.substr(0, eq);
  const std::string text = expr.substr(eq + 1);
  json* node = &cfg;
  std::stringstream ss(path);
  std::string part, walked;
  while (std::getline(ss, part, '.')) {
    walked += (walked.empty() ? "" : ".") + part;
    BFCN_CHECK_CONFIG(node->is_object() && node->contains(part), "--set ", path, ": ", source,
                      " has no key '", walked, "' (--set only overrides existing keys)");
    node = &(*node)[part];
  }
  json value;
  try {
    value = json::parse(text);
  } catch (const json::parse_error&) {
    value = text;  // bare words are strings: --set train.optimizer=adam
  }
  BFCN_CHECK_CONFIG(same_kind(value, *node) || (node->is_number() && value.is_number_integer()),
                    "--set ", path, ": expected ", expect_word(*node), " (like the current ",
                    node->dump(), "), but got ", type_word(value), " (", text, ")");
  if (node->is_number_float() && value.is_number_integer()) value = value.get<double>();
  *node = value;
}

json resolve_config(const json& user, const std::vector<std::string>& sets,
                    const std::string& source) {
  BFCN_CHECK_CONFIG(user.is_object(), source, ": expected a JSON object at the top level");
  json cfg = user;
  static const json top = {{"model", json::object()},
                           {"data", json::object()},
                           {"train", json::object()},
                           {"init_from", ""},
                           {"name", ""},
                           {"description", ""}};
  for (auto it = cfg.begin(); it != cfg.end(); ++it) {
    BFCN_CHECK_CONFIG(top.contains(it.key()), source, ": ", it.key(),
                      ": unknown key (known: ", known_keys(top), ")");
    BFCN_CHECK_CONFIG(same_kind(it.value(), top.at(it.key())), source, ": ", it.key(),
                      ": expected ", type_word(top.at(it.key())), ", but got ",
                      type_word(it.value()));
  }
  BFCN_CHECK_CONFIG(cfg.contains("model"), source, ": missing the \"model\" section");
  BFCN_CHECK_CONFIG(cfg.contains("data"), source, ": missing the \"data\" section");
  if (!cfg.contains("train")) cfg["train"] = json::object();
  if (!cfg.contains("init_from")) cfg["init_from"] = "";
  merge_checked(cfg["train"], default_train_json(), "train", source);
  for (const auto& s : sets) apply_set(cfg, s, source);
  merge_checked(cfg["train"], default_train_json(), "train", source);  // re-check after --set
  check_ranges(cfg.at("train"), source);
  return cfg;
}

TrainConfig parse_train_config(const json& t) {
  TrainConfig c;
  c.optim.type = t.at("optimizer").get<std::string>();
  c.optim.momentum = t.at("momentum").get<double>();
  c.optim.nesterov = t.at("nesterov").get<bool>();
  c.optim.weight_decay = t.at("weight_decay").get<double>();
  c.optim.wd_exclude_bn_bias = t.at("wd_exclude_bn_bias").get<bool>();
  c.optim.beta1 = t.at("betas")[0].get<double>();
  c.optim.beta2 = t.at("betas")[1].get<double>();
  c.optim.eps = t.at("eps").get<double>();
  c.lr = t.at("lr").get<double>();
  c.iterations = t.at("iterations").get<int64_t>();
  c.epochs = t.at("epochs").get<int64_t>();
  c.batch = t.at("batch").get<int>();
  const json& s = t.at("lr_schedule");
  c.schedule.type = s.at("type").get<std::string>();
  c.schedule.power = s.at("power").get<double>();
  c.schedule.step = s.at("step").get<int64_t>();
  c.schedule.gamma = s.at("gamma").get<double>();
  c.schedule.warmup_iters = s.at("warmup_iters").get<int64_t>();
  c.schedule.warmup_factor = s.at("warmup_factor").get<double>();
  c.grad_clip = t.at("grad_clip").get<double>();
  c.eval_interval = t.at("eval_interval").get<int64_t>();
  c.eval_at_start = t.at("eval_at_start").get<bool>();
  c.log_interval = t.at("log_interval").get<int64_t>();
  c.checkpoint_interval = t.at("checkpoint_interval").get<int64_t>();
  c.keep_last = t.at("keep_last").get<int>();
  c.seed = t.at("seed").get<uint64_t>();
  c.threads = t.at("threads").get<int>();
  c.sync_bn = t.at("sync_bn").get<bool>();
  c.calibrate_batches = t.at("calibrate_batches").get<int>();
  c.bn_recalib_end_batches = t.at("bn_recalib_end_batches").get<int>();
  c.teacher = t.at("teacher").get<std::string>();
  c.distill_mse = t.at("distill").at("loss").get<std::string>() == "mse";
  c.distill_weight = t.at("distill").at("weight").get<double>();
  c.distill_temperature = t.at("distill").at("temperature").get<double>();
  return c;
}

}  // namespace bfcn
