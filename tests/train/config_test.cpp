// Config validation in-process: unknown keys, wrong types, out-of-range values and --set
// overrides are rejected with the JSON path named; defaults are filled.
#include "train/config.h"

#include "core/error.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using nlohmann::json;

namespace {

json base() {
  return json{{"model", {{"arch", "fcn8s"}}},
              {"data", {{"dataset", "voc"}}},
              {"train", {{"lr", 0.01}, {"iterations", 100}}}};
}

std::string error_of(const json& j, std::vector<std::string> sets = {}) {
  try {
    resolve_config(j, sets, "c.json");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("resolve_config fills defaults and applies --set", "[train]") {
  json r = resolve_config(base(), {"train.lr=0.005", "train.optimizer=adam", "model.arch=\"x\""},
                          "c.json");
  CHECK(r["train"]["lr"].get<double>() == 0.005);
  CHECK(r["train"]["optimizer"] == "adam");
  CHECK(r["model"]["arch"] == "x");
  CHECK(r["train"]["lr_schedule"]["power"].get<double>() == 0.9);
  CHECK(r["init_from"] == "");
  TrainConfig t = parse_train_config(r["train"]);
  CHECK(t.iterations == 100);
  CHECK(t.optim.type == "adam");
  // Integers are accepted where a number is expected, and --set converts them.
  r = resolve_config(base(), {"train.lr=1"}, "c.json");
  CHECK(r["train"]["lr"].is_number_float());
}

TEST_CASE("bad configs name the path, the expectation and the value", "[train]") {
  json j = base();
  j["train"]["lrr"] = 1;
  CHECK_THAT(error_of(j), Catch::Contains("c.json: train.lrr: unknown key"));
  j = base();
  j["train"]["batch"] = "8";
  CHECK_THAT(error_of(j), Catch::Contains("train.batch: expected an integer"));
  j = base();
  j["train"]["batch"] = 2.5;
  CHECK_THAT(error_of(j), Catch::Contains("train.batch: expected an integer"));
  j = base();
  j["train"]["lr"] = -1;
  CHECK_THAT(error_of(j), Catch::Contains("train.lr: expected a value in (0, 10]"));
  j = base();
  j["train"]["lr_schedule"] = {{"type", "exp"}};
  CHECK_THAT(error_of(j), Catch::Contains("train.lr_schedule.type: expected one of"));
  j = base();
  j["train"]["lr_schedule"] = {{"warmup_iter", 3}};
  CHECK_THAT(error_of(j), Catch::Contains("train.lr_schedule.warmup_iter: unknown key"));
  j = base();
  j["train"]["betas"] = {0.9};
  CHECK_THAT(error_of(j), Catch::Contains("train.betas: expected an array of 2 numbers"));
  j = base();
  j["trian"] = json::object();
  CHECK_THAT(error_of(j), Catch::Contains("trian: unknown key"));
  j = base();
  j.erase("data");
  CHECK_THAT(error_of(j), Catch::Contains("missing the \"data\" section"));
  j = base();
  j["train"]["epochs"] = 3;
  CHECK_THAT(error_of(j), Catch::Contains("exactly one of train.iterations or train.epochs"));
  j = base();
  j["train"]["nesterov"] = true;
  j["train"]["momentum"] = 0;
  CHECK_THAT(error_of(j), Catch::Contains("train.nesterov"));
}

TEST_CASE("config overrides (--set) reject new keys, wrong types and malformed expressions",
          "[train]") {
  CHECK_THAT(error_of(base(), {"train.foo=1"}), Catch::Contains("has no key 'train.foo'"));
  CHECK_THAT(error_of(base(), {"model.depth=18"}), Catch::Contains("has no key 'model.depth'"));
  CHECK_THAT(error_of(base(), {"train.batch=abc"}),
             Catch::Contains("--set train.batch: expected an integer"));
  CHECK_THAT(error_of(base(), {"train.batch=2.5"}),
             Catch::Contains("--set train.batch: expected an integer"));
  CHECK_THAT(error_of(base(), {"train.nesterov=1"}), Catch::Contains("expected a boolean"));
  CHECK_THAT(error_of(base(), {"train.lr"}), Catch::Contains("expected key.path=value"));
  CHECK_THAT(error_of(base(), {"train.lr=0"}), Catch::Contains("train.lr: expected a value in"));
}

TEST_CASE("every shipped config resolves; quantized fashion-seg configs start from the FP32 run",
          "[train]") {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(test::source_dir() / "configs")) {
    if (e.path().extension() != ".json") continue;
    INFO(e.path().string());
    const json r = resolve_config(load_json_file(e.path()), {}, e.path().string());
    CHECK(parse_train_config(r["train"]).iterations > 0);
    const std::string name = e.path().stem().string();
    if (name.rfind("fashion_seg_", 0) == 0 && name.find("fp32") == std::string::npos) {
      // Every quantized config starts from the FP32 run (W1A2 is no longer staged after the
      // W2A2 recipe, whose scaled 2-bit weights make a worse 1-bit start: docs/accuracy.md).
      CHECK(r["init_from"] == "runs/fashion_seg_fp32/best.h5");
      CHECK(r["train"]["eval_at_start"].get<bool>());
    }
    ++n;
  }
  CHECK(n >= 9);
}
