// Config validation by schema-of-defaults: default_train_json() lists every key with a default of
// the right JSON type, so "unknown key" and "wrong type" checks are one recursive walk; ranges are
// checked afterwards, key by key, with the allowed interval in the message.
#include "train/config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/json_read.h"

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
      {"grad_overlap", true},
      {"grad_bucket_mb", 4.0},
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
  return json_type_word(like);
}

std::vector<std::string> keys_of(const json& schema) {
  std::vector<std::string> keys;
  for (auto it = schema.begin(); it != schema.end(); ++it) keys.push_back(it.key());
  return keys;
}

// user keys ⊆ schema keys with matching kinds; fills missing keys from the schema.
void merge_checked(json& user, const json& schema, const std::string& path,
                   const std::string& source) {
  BFCN_CHECK_CONFIG(user.is_object(), source, ": ", path, ": expected an object, but got ",
                    json_type_word(user));
  for (auto it = user.begin(); it != user.end(); ++it) {
    const std::string p = path + "." + it.key();
    BFCN_CHECK_CONFIG(schema.contains(it.key()), source, ": ", p, ": ",
                      json_unknown_key(it.key(), keys_of(schema)));
    const json& like = schema.at(it.key());
    if (like.is_object()) {
      merge_checked(it.value(), like, p, source);
    } else {
      BFCN_CHECK_CONFIG(same_kind(it.value(), like), source, ": ", p, ": ",
                        json_type_mismatch(expect_word(like).c_str(), it.value()));
    }
  }
  for (auto it = schema.begin(); it != schema.end(); ++it)
    if (!user.contains(it.key())) user[it.key()] = it.value();
}

// A number in an interval, open or closed at each end: "<file>: train.lr: expected a value in
// (0, 10], but got 0".
void num(const JsonObject& o, const char* key, double lo, double hi, bool lo_open = false,
         bool hi_open = false) {
  const double x = o.get_number(key, -HUGE_VAL, HUGE_VAL);
  const bool ok = (lo_open ? x > lo : x >= lo) && (hi_open ? x < hi : x <= hi);
  if (!ok)
    o.fail(key, detail::concat("expected a value in ", lo_open ? "(" : "[", lo, ", ", hi,
                               hi_open ? ")" : "]", ", but got ", o.value().at(key).dump()));
}

void check_ranges(const json& train, const std::string& source) {
  const JsonObject t(train, "train", {source, false, ""});
  const double big = 1e18;
  t.get_choice("optimizer", {"sgd", "adam", "adamw"});
  num(t, "lr", 0, 10, true, false);
  num(t, "momentum", 0, 1, false, true);
  num(t, "weight_decay", 0, 1);
  num(t, "eps", 0, 1, true, false);
  for (int i = 0; i < 2; ++i) {
    const double b = train.at("betas")[i].get<double>();
    if (!(b >= 0 && b < 1))
      t.fail(detail::concat("betas[", i, "]"),
             detail::concat("expected a value in [0, 1), but got ", b));
  }
  num(t, "iterations", 0, big);
  num(t, "epochs", 0, big);
  if ((train.at("iterations").get<int64_t>() > 0) == (train.at("epochs").get<int64_t>() > 0))
    t.fail("",
           "expected exactly one of train.iterations or train.epochs to be > 0, but got "
           "iterations=" +
               train.at("iterations").dump() + ", epochs=" + train.at("epochs").dump());
  num(t, "batch", 1, 4096);
  const JsonObject s = t.get_object("lr_schedule");
  s.get_choice("type", {"poly", "step", "cosine", "constant"});
  num(s, "power", 0, 100);
  num(s, "step", 1, big);
  num(s, "gamma", 0, 1, true, false);
  num(s, "warmup_iters", 0, big);
  num(s, "warmup_factor", 0, 1);
  num(t, "grad_clip", 0, big);
  num(t, "eval_interval", 0, big);
  num(t, "log_interval", 1, big);
  num(t, "checkpoint_interval", 0, big);
  num(t, "keep_last", 1, 1000000);
  num(t, "seed", 0, 9.2e18);
  num(t, "threads", 0, 1024);
  num(t, "grad_bucket_mb", 0, 4096, true, false);
  num(t, "calibrate_batches", 0, 100000);
  num(t, "bn_recalib_end_batches", 0, 100000);
  const JsonObject d = t.get_object("distill");
  d.get_choice("loss", {"kl", "mse"});
  num(d, "weight", 0, 1000);
  num(d, "temperature", 0, 100, true, false);
  if (t.get_bool("nesterov") && !(train.at("momentum").get<double>() > 0))
    t.fail("nesterov",
           "Nesterov momentum needs train.momentum > 0, but got " + train.at("momentum").dump());
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
                    node->dump(), "), but got ", json_type_word(value), " (", text, ")");
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
    BFCN_CHECK_CONFIG(top.contains(it.key()), source, ": ", it.key(), ": ",
                      json_unknown_key(it.key(), keys_of(top)));
    BFCN_CHECK_CONFIG(same_kind(it.value(), top.at(it.key())), source, ": ", it.key(), ": ",
                      json_type_mismatch(json_type_word(top.at(it.key())), it.value()));
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
  c.grad_overlap = t.at("grad_overlap").get<bool>();
  c.grad_bucket_mb = t.at("grad_bucket_mb").get<double>();
  c.calibrate_batches = t.at("calibrate_batches").get<int>();
  c.bn_recalib_end_batches = t.at("bn_recalib_end_batches").get<int>();
  c.teacher = t.at("teacher").get<std::string>();
  c.distill_mse = t.at("distill").at("loss").get<std::string>() == "mse";
  c.distill_weight = t.at("distill").at("weight").get<double>();
  c.distill_temperature = t.at("distill").at("temperature").get<double>();
  return c;
}

}  // namespace bfcn
