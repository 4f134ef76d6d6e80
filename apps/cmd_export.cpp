// `bfcn export --checkpoint CKPT --out MODEL.bfcn [--verify N]`: a trained checkpoint (file or
// training dir) to the bit-packed deploy format of the runtime (docs/format.md). --verify runs the
// written file in the runtime and the checkpoint in the training engine on the first N images of
// the config's val split and reports their label agreement (the deployability check of
// docs/quantization.md: >= 99.9 %, else exit 3).
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "autograd/var.h"
#include "cli/command.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "datasets/dataset.h"
#include "eval/evaluate.h"
#include "layers/model.h"
#include "runtime/engine.h"
#include "train/checkpoint.h"
#include "train/export.h"
#include "train/export_verify.h"

namespace {

// --verify's value: a count of val images (0 = off) or "all" (the whole split, the images the
// mIoU is measured on).
size_t verify_images(const bfcn::cli::Args& args) {
  const std::string v = args.get("verify", "0");
  if (v == "all") return std::numeric_limits<size_t>::max();
  int n = -1;
  const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < 0)
    throw bfcn::cli::UsageError(
        "bfcn export: --verify: expected a count of images >= 0 or 'all', got '" + v + "'");
  return size_t(n);
}

// Training engine (eval mode, quantized forward) vs the exported runtime model on the first
// n_images val images (train/export_verify.h).
bfcn::EngineComparison verify_export(const std::string& ckpt, const std::string& model_file,
                                     size_t n_images, const bfcn::cli::Args& args) {
  const bfcn::LoadedModel lm = bfcn::load_model_from_checkpoint(ckpt);
  const std::string source = bfcn::resolve_checkpoint(ckpt).string();
  BFCN_CHECK_CONFIG(lm.config.contains("data"), source,
                    ": the checkpoint's config has no \"data\" section (needed by --verify)");
  nlohmann::json data_j = lm.config.at("data");
  if (args.has("data-root")) data_j["root"] = args.get("data-root");
  const bfcn::DataConfig dc = bfcn::DataConfig::from_json(data_j, source + ": data");
  const std::unique_ptr<bfcn::SegDataset> ds = bfcn::make_dataset(dc, dc.val_split);
  const bfcn::rt::Model rtm = bfcn::rt::Model::load(model_file);
  lm.model->eval();
  bfcn::EngineComparison c;
  const size_t n = std::min(ds->size(), n_images);
  for (size_t i = 0; i < n; ++i) {
    const bfcn::RawSample s = ds->load(i);
    bfcn::compare_engines_on_image(*lm.model, rtm, bfcn::image_to_tensor(s.image, dc.mean, dc.std),
                                   c);
  }
  BFCN_CHECK(c.pixels > 0, "export --verify: the val split of ", ds->describe(), " is empty");
  std::printf("verify: %zu %s images of %s: %s", n, dc.val_split.c_str(), dc.dataset.c_str(),
              bfcn::describe(c).c_str());
  return c;
}

int run_export(const bfcn::cli::Args& args) {
  const std::string ckpt = args.require("checkpoint"), out = args.require("out");
  const size_t n = verify_images(args);  // a bad value stops before any work
  if (args.has("threads")) omp_set_num_threads(args.get_int("threads"));
  const bfcn::ExportSummary s = bfcn::export_checkpoint(ckpt, out);
  std::cout << "wrote " << out << ": " << s.bit_layers << " bit-conv layers, " << s.fp32_layers
            << " FP32 layers, " << s.bytes << " bytes (FP32 parameters " << s.fp32_param_bytes
            << " bytes, 1/" << (s.bytes ? double(s.fp32_param_bytes) / double(s.bytes) : 0.0) << ")"
            << std::endl;
  bfcn::EngineComparison a;
  if (n > 0) a = verify_export(ckpt, out, n, args);
  if (args.has("json")) {
    nlohmann::json j = {{"checkpoint", ckpt},         {"model", out},
                        {"bit_layers", s.bit_layers}, {"fp32_layers", s.fp32_layers},
                        {"bytes", s.bytes},           {"fp32_param_bytes", s.fp32_param_bytes},
                        {"verify", nullptr}};
    if (n > 0)
      j["verify"] = {{"images", a.images},
                     {"label_agreement", a.agreement()},
                     {"worst_image_agreement", a.worst_image},
                     {"max_logit_diff", a.max_logit_diff},
                     {"codes", a.codes()},
                     {"codes_differ", a.differ()},
                     {"codes_differ_at_ties", a.ties()},
                     {"label_agreement_ties_resolved", a.agreement_ties_resolved()}};
    const std::string text = j.dump(2) + "\n", file = args.get("json");
    bfcn::write_file_atomically(
        file,
        [&](const std::filesystem::path& tmp) {
          std::ofstream f(tmp);
          f << text;
          BFCN_CHECK_IO(f.good(), "export: cannot write ", file);
        },
        bfcn::Durability::rename_only);
  }
  if (n > 0 && a.differ() > a.ties()) {
    std::cerr << "export --verify: " << a.differ() - a.ties()
              << " activation codes differ away from any rounding tie: " << out
              << " does not compute what " << ckpt << " computes (first: " << a.first_non_tie
              << ")\n";
    return 3;  // distinct from bad input (1): the file was written, the check failed
  }
  if (n > 0 && a.agreement() < 0.999) {
    std::cerr << "export --verify: the runtime's labels agree with the training engine's on only "
              << 100.0 * a.agreement() << " % of the pixels (< 99.9 %): " << out
              << " does not reproduce " << ckpt;
    if (a.differ() == a.ties() && !a.quantizers.empty())
      std::cerr << " (every differing code is at a rounding tie: the model amplifies single-code "
                   "flips; see docs/accuracy.md)";
    std::cerr << "\n";
    return 3;
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("export", "checkpoint -> bit-packed .bfcn deploy model")
        .describe("Writes a trained model as a bit-packed .bfcn file for `bfcn infer` and `bfcn "
                  "bench runtime`. With --verify N, runs the file in the runtime and the "
                  "checkpoint in the training engine on the first N val images (all: the whole "
                  "split, the images the mIoU is measured on) and reports their label agreement "
                  "and, quantizer by quantizer, which activation codes differ and "
                  "whether each sits at a float rounding tie (exit 3 below 99.9 % agreement or on "
                  "any code that differs elsewhere).")
        .usage("bfcn export --checkpoint CKPT --out MODEL.bfcn [--verify N|all] [--json FILE]")
        .with_flags(
            {bfcn::cli::text("checkpoint", "CKPT", "checkpoint .h5 or training output dir")
                 .needed(),
             bfcn::cli::text("out", "FILE", "the .bfcn model to write").needed(),
             bfcn::cli::text("verify", "N|all",
                             "compare runtime and training engine on N val images (0 = off; all: "
                             "the whole val split)")
                 .defaults("0"),
             bfcn::cli::text("data-root", "DIR", "override the config's data.root for --verify"),
             bfcn::cli::text("json", "FILE", "write the export summary (and --verify's result)"),
             bfcn::cli::integer("threads", "N", "OpenMP threads").at_least(1)})
        .example("bfcn export --checkpoint runs/w1a2/best.h5 --out w1a2.bfcn")
        .example("bfcn export --checkpoint runs/w1a2/best.h5 --out w1a2.bfcn --verify all")
        .runs(run_export));
