// Model config validation: every error names the JSON path, what was expected and what was got.
#include "layers/model.h"

#include <catch2/catch.hpp>

namespace bfcn {
namespace {

using nlohmann::json;

json base() { return {{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 21}}; }

std::string error_of(const json& cfg, const std::string& path = "model") {
  try {
    build_model(cfg, 0, path);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("config: bad backbone name lists the allowed ones", "[models][config]") {
  json c = base();
  c["backbone"] = "resnet19";
  CHECK(error_of(c) ==
        "model.backbone: expected one of resnet18, resnet34, resnet50, resnet18_preact, but got "
        "'resnet19' (did you mean 'resnet18'?)");
  c = base();
  c["head"] = "fcn4s";
  CHECK(error_of(c) ==
        "model.head: expected one of fcn32s, fcn16s, fcn8s, dilated, but got 'fcn4s' (did you "
        "mean 'fcn8s'?)");
}

TEST_CASE("config: unknown key names the key, the closest known one and the known keys",
          "[models][config]") {
  json c = base();
  c["outputstride"] = 8;
  const std::string e = error_of(c);
  CHECK_THAT(e, Catch::StartsWith("model.outputstride: unknown key; did you mean 'output_stride'? "
                                  "(known: backbone, head, "));
  // The path prefix is the caller's.
  CHECK_THAT(error_of(c, "cfg.model"), Catch::StartsWith("cfg.model.outputstride: unknown key"));
  // Unknown keys inside quant are caught too (by QuantConfig, with the quant path).
  c = base();
  c["quant"] = {{"w_bit", 1}};
  CHECK_THAT(error_of(c), Catch::Contains("model.quant") && Catch::Contains("w_bit"));
}

TEST_CASE("config: missing key names it and the required keys", "[models][config]") {
  json c = base();
  c.erase("n_classes");
  CHECK(error_of(c) == "model: missing key 'n_classes' (required: backbone, head, n_classes)");
  c = base();
  c.erase("backbone");
  CHECK(error_of(c) == "model: missing key 'backbone' (required: backbone, head, n_classes)");
}

TEST_CASE("config: wrong types and values", "[models][config]") {
  json c = base();
  c["n_classes"] = "21";
  CHECK(error_of(c) == "model.n_classes: expected an integer, but got a string (\"21\")");
  c = base();
  c["n_classes"] = 0;
  CHECK(error_of(c) == "model.n_classes: expected an integer in [1, 65536], but got 0");
  c = base();
  c["backbone"] = 18;
  CHECK(error_of(c) ==
        "model.backbone: expected one of resnet18, resnet34, resnet50, resnet18_preact, but got "
        "an integer (18)");
  c = base();
  c["output_stride"] = 4;
  CHECK(error_of(c) == "model.output_stride: expected one of 8, 16, 32, but got 4");
  c = base();
  c["output_stride"] = 16.0;
  CHECK(error_of(c) == "model.output_stride: expected an integer, but got a number (16.0)");
  c = base();
  c["quant"] = json::array();
  CHECK(error_of(c) == "model.quant: expected an object, but got an array ([])");
  c = base();
  c["quant"] = {{"w_bits", 0}};
  CHECK_THAT(error_of(c), Catch::Contains("model.quant") && Catch::Contains("w_bits"));
  c = base();
  c["head_channels"] = 64;
  CHECK_THAT(error_of(c), Catch::StartsWith("model.head_channels: only the \"dilated\" head"));
  CHECK(error_of(json::array()) == "model: expected an object, but got an array ([])");
}

TEST_CASE("config: defaults are filled in the resolved config", "[models][config]") {
  json r = resolve_model_config(base());
  CHECK(r["output_stride"] == 32);
  CHECK(r["in_channels"] == 3);
  CHECK(r["head_channels"] == 0);
  CHECK(r["quant"]["w_bits"] == 32);
  CHECK(r["quant"]["first_last_fp"] == true);
  json d = base();
  d["head"] = "dilated";
  CHECK(resolve_model_config(d)["output_stride"] == 8);
}

}  // namespace bfcn
