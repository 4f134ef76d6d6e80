// `bfcn eval`: mIoU under the official protocols, in two modes.
//   --pred-dir P --gt-dir G --dataset voc|cityscapes : score saved label PNGs (eval/pred_folder.h)
//   --checkpoint CKPT [--config C.json] [--split val] : run a trained model over a dataset split
//     (eval/evaluate.h) with whole-image or sliding-window inference and optional flip/scale TTA.
// Both print the per-class table and write --json / --markdown.
#include <omp.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "autograd/var.h"
#include "cli/command.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "eval/evaluate.h"
#include "eval/pred_folder.h"
#include "layers/model.h"
#include "train/checkpoint.h"
#include "train/config.h"

namespace {

namespace fs = std::filesystem;

std::vector<float> parse_scales(const std::string& text) {
  std::vector<float> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    float v = 0;
    try {
      v = std::stof(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    BFCN_CHECK(used == item.size() && used > 0 && v > 0.0f && v <= 8.0f,
               "eval: --scales expects positive numbers like 0.75,1,1.25, got '", text, "'");
    out.push_back(v);
  }
  BFCN_CHECK(!out.empty(), "eval: --scales is empty");
  return out;
}

void write_text(const fs::path& file, const std::string& text) {
  if (file.has_parent_path()) fs::create_directories(file.parent_path());
  std::ofstream f(file);
  f << text;
  BFCN_CHECK_IO(f.good(), "eval: cannot write ", file.string());
}

void report(const bfcn::cli::Args& args, const bfcn::Metrics& m,
            const std::vector<std::string>& names, nlohmann::json j) {
  std::cout << bfcn::metrics_table(m, names);
  nlohmann::json mj = bfcn::metrics_to_json(m, names);
  for (auto it = j.begin(); it != j.end(); ++it) mj[it.key()] = it.value();
  if (args.has("json")) write_text(args.get("json"), mj.dump(2) + "\n");
  if (args.has("markdown")) write_text(args.get("markdown"), bfcn::metrics_markdown(m, names));
}

int eval_pred_dir(const bfcn::cli::Args& args) {
  bfcn::FolderEvalOptions o;
  o.dataset = bfcn::parse_eval_dataset(args.require("dataset"));
  o.pred_format = bfcn::parse_pred_format(args.get("pred-format", "auto"));
  o.split = args.get("split", "val");
  BFCN_CHECK(o.dataset == bfcn::EvalDataset::cityscapes || !args.has("pred-format"),
             "eval: --pred-format applies to Cityscapes only");
  const fs::path pred = args.require("pred-dir"), gt = args.require("gt-dir");
  bfcn::FolderEvalResult r = bfcn::evaluate_prediction_folder(pred, gt, o);
  std::cout << "eval: " << r.n_images << " images, " << bfcn::eval_dataset_name(o.dataset)
            << " protocol; " << r.note << "\n";
  if (r.n_extra_predictions > 0)
    std::cout << "eval: " << r.n_extra_predictions
              << " prediction files match no ground truth and were not scored\n";
  report(args, r.metrics, r.class_names,
         {{"mode", "pred-dir"},
          {"dataset", bfcn::eval_dataset_name(o.dataset)},
          {"pred_dir", pred.string()},
          {"gt_dir", gt.string()},
          {"n_images", r.n_images},
          {"pred_format", bfcn::pred_format_name(r.pred_format)},
          {"note", r.note}});
  return 0;
}

int eval_checkpoint(const bfcn::cli::Args& args) {
  const fs::path ckpt = args.require("checkpoint");
  // Inference flags first, so a typo fails before the model and data are loaded.
  bfcn::EvaluateOptions o;
  o.inference.flip = args.has("flip");
  o.inference.sliding = args.has("sliding");
  if (args.has("window")) {
    auto [h, w] = args.get_hw("window");
    o.inference.window_h = h;
    o.inference.window_w = w;
  }
  o.inference.overlap = static_cast<float>(args.get_double("overlap", 1.0 / 3));
  if (args.has("scales")) o.inference.scales = parse_scales(args.get("scales"));
  if (args.has("save-pred")) o.save_pred_dir = args.get("save-pred");
  o.max_images = static_cast<size_t>(args.get_int("max-images"));

  nlohmann::json override_cfg;
  std::string source = bfcn::resolve_checkpoint(ckpt).string();
  if (args.has("config")) {
    source = args.get("config");
    override_cfg = bfcn::resolve_config(bfcn::load_json_file(source), {}, source);
  }
  bfcn::LoadedModel lm =
      bfcn::load_model_from_checkpoint(ckpt, args.has("config") ? &override_cfg : nullptr);
  const nlohmann::json& cfg = args.has("config") ? override_cfg : lm.config;
  BFCN_CHECK_CONFIG(cfg.contains("data"), source, ": the config has no \"data\" section");
  nlohmann::json data_j = cfg.at("data");
  if (args.has("data-root")) data_j["root"] = args.get("data-root");
  const bfcn::DataConfig dc = bfcn::DataConfig::from_json(data_j, source + ": data");
  const std::string split = args.get("split", dc.val_split);
  std::unique_ptr<bfcn::SegDataset> ds = bfcn::make_dataset(dc, split);
  if (args.has("threads")) omp_set_num_threads(args.get_int("threads"));
  o.mean = dc.mean;
  o.std = dc.std;
  o.inference.pad_multiple = args.get_int("pad-multiple", std::max(32, lm.model->output_stride()));
  o.cityscapes_label_ids = dc.dataset == "cityscapes";

  std::shared_ptr<bfcn::SegmentationModel> model = lm.model;
  bfcn::LogitsFn fn = [model](const bfcn::Tensor& x) {
    bfcn::NoGradGuard no_grad;
    return model->forward(bfcn::Var(x)).value();
  };
  std::cout << "eval: " << ds->describe() << ", checkpoint " << bfcn::resolve_checkpoint(ckpt)
            << (o.inference.sliding ? ", sliding windows" : ", whole image")
            << (o.inference.flip ? " + flip" : "") << ", " << o.inference.scales.size()
            << " scale(s)\n";
  bfcn::EvaluateResult r = bfcn::evaluate_dataset(*ds, fn, o);
  std::cout << "eval: " << r.n_images << " images in " << r.seconds << " s\n";
  nlohmann::json scales = o.inference.scales;
  report(args, r.metrics, r.class_names,
         {{"mode", "checkpoint"},
          {"checkpoint", bfcn::resolve_checkpoint(ckpt).string()},
          {"dataset", dc.dataset},
          {"split", split},
          {"n_images", r.n_images},
          {"seconds", r.seconds},
          {"inference",
           {{"sliding", o.inference.sliding},
            {"window", {o.inference.window_h, o.inference.window_w}},
            {"overlap", o.inference.overlap},
            {"flip", o.inference.flip},
            {"scales", scales},
            {"pad_multiple", o.inference.pad_multiple}}}});
  if (!o.save_pred_dir.empty())
    std::cout << "eval: predictions, colour masks and panels in " << o.save_pred_dir.string()
              << "\n";
  return 0;
}

int run_eval(const bfcn::cli::Args& args) {
  const bool folder = args.has("pred-dir"), ckpt = args.has("checkpoint");
  BFCN_CHECK(folder != ckpt,
             "eval: give either --pred-dir (with --gt-dir, --dataset) or --checkpoint; see --help");
  if (folder) {
    for (const char* f : {"config", "data-root", "save-pred", "flip", "scales", "sliding", "window",
                          "overlap", "pad-multiple", "max-images"})
      BFCN_CHECK(!args.has(f), "eval: --", f, " applies to --checkpoint, not --pred-dir");
    return eval_pred_dir(args);
  }
  for (const char* f : {"gt-dir", "dataset", "pred-format"})
    BFCN_CHECK(!args.has(f), "eval: --", f, " applies to --pred-dir, not --checkpoint");
  return eval_checkpoint(args);
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("eval", "mIoU of a checkpoint or of saved predictions (VOC, Cityscapes)")
        .describe("mIoU under the VOC / Cityscapes protocols, of saved predictions (--pred-dir) or "
                  "of a checkpoint (--checkpoint).")
        .usage("bfcn eval --checkpoint CKPT [--config C.json] [--split val] [flags]\n"
               "       bfcn eval --pred-dir DIR --gt-dir DIR --dataset voc|cityscapes [flags]")
        .with_flags(
            {bfcn::cli::text("pred-dir", "DIR",
                             "saved prediction PNGs to score (with --gt-dir, --dataset)"),
             bfcn::cli::text("gt-dir", "DIR",
                             "ground truth: VOC2012 root or SegmentationClass folder; Cityscapes "
                             "gtFine (or a split/city folder in it)"),
             bfcn::cli::text("dataset", "NAME", "voc | cityscapes (protocol for --pred-dir)"),
             bfcn::cli::text("pred-format", "FMT",
                             "Cityscapes predictions: auto (default, decided per folder) | "
                             "trainIds | labelIds"),
             bfcn::cli::text("checkpoint", "CKPT", "trained model (.h5, or a training output DIR)"),
             bfcn::cli::text("config", "FILE",
                             "config to use instead of the one stored in the checkpoint"),
             bfcn::cli::text("data-root", "DIR", "override the config's data.root"),
             bfcn::cli::text("split", "NAME",
                             "dataset split (default: the config's val split; VOC list name for "
                             "--pred-dir, default val)"),
             bfcn::cli::text("save-pred", "DIR",
                             "write raw label PNGs (VOC palette / Cityscapes labelIds), colour "
                             "masks, panels"),
             bfcn::cli::boolean("flip", "add horizontally flipped inference (TTA)"),
             bfcn::cli::text("scales", "LIST", "multi-scale TTA, e.g. 0.75,1,1.25 (default 1)"),
             bfcn::cli::boolean("sliding", "sliding-window inference instead of whole image"),
             bfcn::cli::size("window", "sliding window size (default 512x1024)"),
             bfcn::cli::number("overlap", "F", "sliding window overlap fraction (default 1/3)")
                 .range_open(0, 1),
             bfcn::cli::integer("pad-multiple", "N",
                                "pad inputs to a multiple of N (default max(32, output stride))")
                 .at_least(1),
             bfcn::cli::integer("max-images", "N", "evaluate only the first N images (0 = all)")
                 .at_least(0)
                 .defaults("0"),
             bfcn::cli::integer("threads", "N", "OpenMP threads").at_least(1),
             bfcn::cli::text("json", "FILE", "write metrics (miou, per_class_iou, ...) as JSON"),
             bfcn::cli::text("markdown", "FILE", "write the per-class table as markdown")})
        .example(
            "bfcn eval --pred-dir preds/ --gt-dir VOCdevkit/VOC2012 --dataset voc --json m.json")
        .example(
            "bfcn eval --pred-dir results/ --gt-dir cityscapes/gtFine/val --dataset cityscapes")
        .example("bfcn eval --checkpoint runs/w1a2 --split val --save-pred out/ --flip")
        .example("bfcn eval --checkpoint city.h5 --sliding --window 512x1024 --scales 0.75,1,1.25")
        .runs(run_eval));
