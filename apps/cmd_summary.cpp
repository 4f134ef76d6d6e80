// `bfcn summary --config C.json [--input HxW] [--json F]`: the layer table of a model config
// (name, type, output shape, w/a bits, params, MACs) and totals. Accepts a full training config
// (with a "model" section) or a bare model section; shapes and MACs are computed analytically.
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "layers/model.h"
#include "layers/summary.h"
#include "train/config.h"

namespace {

int run_summary(const bfcn::cli::Args& args) {
  const std::string file = args.require("config");
  auto [h, w] = args.get_hw("input");
  nlohmann::json cfg = bfcn::load_json_file(file);
  BFCN_CHECK_CONFIG(cfg.is_object(), file, ": expected a JSON object, but got ", cfg.dump());
  const nlohmann::json& model_cfg = cfg.contains("model") ? cfg["model"] : cfg;
  std::shared_ptr<bfcn::SegmentationModel> model;
  try {
    model = bfcn::build_model(model_cfg, 0, "model");
  } catch (const bfcn::ConfigError& e) {
    throw bfcn::ConfigError(file + ": " + e.what());
  }
  const nlohmann::json& r = model->config();
  const nlohmann::json& q = r["quant"];
  std::string bits = q["w_bits"].get<int>() >= 32 && q["a_bits"].get<int>() >= 32
                         ? std::string("FP32")
                         : "W" + std::to_string(q["w_bits"].get<int>()) + "A" +
                               std::to_string(q["a_bits"].get<int>()) +
                               (q["first_last_fp"].get<bool>() ? " (first/last FP)" : "");
  std::string title = file + ": " + r["backbone"].get<std::string>() + " + " +
                      r["head"].get<std::string>() + ", " +
                      std::to_string(r["n_classes"].get<int>()) + " classes, output stride " +
                      std::to_string(r["output_stride"].get<int>()) + ", " + bits + ", input 1x" +
                      std::to_string(r["in_channels"].get<int>()) + "x" + std::to_string(h) + "x" +
                      std::to_string(w);
  std::vector<bfcn::LayerInfo> rows = model->summary(h, w);
  std::cout << bfcn::format_summary(rows, title);
  if (args.has("json")) {
    nlohmann::json j = bfcn::summary_json(rows);
    j["config"] = file;
    j["model"] = r;
    j["input"] = {h, w};
    std::ofstream out(args.get("json"));
    BFCN_CHECK_IO(out.good(), args.get("json"), ": cannot write (does the folder exist?)");
    out << j.dump(2) << "\n";
    BFCN_CHECK_IO(out.good(), args.get("json"), ": write failed");
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("summary", "layer table of a model config: shapes, bits, params, MACs")
        .describe("Layer table of a model (name, type, output shape, w/a bits, params, MACs) and "
                  "totals.")
        .usage("bfcn summary --config C.json [--input HxW] [--json FILE]")
        .with_flags({bfcn::cli::text("config", "FILE", "model or training config (JSON)").needed(),
                     bfcn::cli::size("input", "input size").defaults("512x512"),
                     bfcn::cli::text("json", "FILE", "also write the table as JSON")})
        .example("bfcn summary --config configs/voc12_fcn8s_r18_w1a2.json --input 512x512")
        .runs(run_summary));
