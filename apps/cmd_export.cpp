// `bfcn export --checkpoint CKPT --out MODEL.bfcn [--verify N]`: a trained checkpoint (file or
// training dir) to the bit-packed deploy format of the runtime (docs/format.md). --verify runs the
// written file in the runtime and the checkpoint in the training engine on the first N images of
// the config's val split and reports their label agreement (the deployability check of
// docs/quantization.md: >= 99.9 %, else exit 3).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
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

namespace {

struct Agreement {
  int64_t images = 0, pixels = 0, same = 0;
  double worst_image = 1.0, max_logit_diff = 0.0;
};

// Training engine (eval mode, quantized forward) vs the exported runtime model on the same
// normalised tensors: labels and logits.
Agreement verify_export(const std::string& ckpt, const std::string& model_file, int n_images,
                        const bfcn::cli::Args& args) {
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
  Agreement a;
  const size_t n = std::min(ds->size(), size_t(n_images));
  for (size_t i = 0; i < n; ++i) {
    const bfcn::RawSample s = ds->load(i);
    const bfcn::Tensor x = bfcn::image_to_tensor(s.image, dc.mean, dc.std);
    const int h = int(x.shape()[2]), w = int(x.shape()[3]);
    bfcn::Tensor ref;
    {
      bfcn::NoGradGuard no_grad;
      ref = lm.model->forward(bfcn::Var(x)).value();
    }
    std::vector<float> logits;
    std::vector<uint8_t> labels;
    rtm.run(x.f32(), h, w, &logits, &labels, /*normalize=*/false);
    const int nc = int(ref.shape()[1]);
    const int64_t pix = int64_t(h) * w;
    const float* r = ref.f32();
    int64_t same = 0;
    for (int64_t p = 0; p < pix; ++p) {
      int best = 0;
      for (int c = 1; c < nc; ++c)
        if (r[c * pix + p] > r[best * pix + p]) best = c;
      same += best == labels[size_t(p)];
    }
    for (int64_t k = 0; k < nc * pix; ++k)
      a.max_logit_diff = std::max(a.max_logit_diff, double(std::abs(r[k] - logits[size_t(k)])));
    ++a.images;
    a.pixels += pix;
    a.same += same;
    a.worst_image = std::min(a.worst_image, double(same) / double(pix));
  }
  BFCN_CHECK(a.pixels > 0, "export --verify: the val split of ", ds->describe(), " is empty");
  std::printf(
      "verify: %zu %s images of %s: label agreement %.4f %% (worst image %.4f %%), max "
      "|logit diff| %.3g\n",
      n, dc.val_split.c_str(), dc.dataset.c_str(), 100.0 * double(a.same) / double(a.pixels),
      100.0 * a.worst_image, a.max_logit_diff);
  return a;
}

int run_export(const bfcn::cli::Args& args) {
  const std::string ckpt = args.require("checkpoint"), out = args.require("out");
  if (args.has("threads")) omp_set_num_threads(args.get_int("threads"));
  const bfcn::ExportSummary s = bfcn::export_checkpoint(ckpt, out);
  std::cout << "wrote " << out << ": " << s.bit_layers << " bit-conv layers, " << s.fp32_layers
            << " FP32 layers, " << s.bytes << " bytes (FP32 parameters " << s.fp32_param_bytes
            << " bytes, 1/" << (s.bytes ? double(s.fp32_param_bytes) / double(s.bytes) : 0.0) << ")"
            << std::endl;
  const int n = args.get_int("verify", 0);
  Agreement a;
  if (n > 0) a = verify_export(ckpt, out, n, args);
  if (args.has("json")) {
    nlohmann::json j = {{"checkpoint", ckpt},         {"model", out},
                        {"bit_layers", s.bit_layers}, {"fp32_layers", s.fp32_layers},
                        {"bytes", s.bytes},           {"fp32_param_bytes", s.fp32_param_bytes},
                        {"verify", nullptr}};
    if (n > 0)
      j["verify"] = {{"images", a.images},
                     {"label_agreement", double(a.same) / double(a.pixels)},
                     {"worst_image_agreement", a.worst_image},
                     {"max_logit_diff", a.max_logit_diff}};
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
  if (n > 0 && double(a.same) < 0.999 * double(a.pixels)) {
    std::cerr << "export --verify: the runtime's labels agree with the training engine's on only "
              << 100.0 * double(a.same) / double(a.pixels) << " % of the pixels (< 99.9 %): " << out
              << " does not reproduce " << ckpt << "\n";
    return 3;  // distinct from bad input (1): the file was written, the check failed
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("export", "checkpoint -> bit-packed .bfcn deploy model")
        .describe("Writes a trained model as a bit-packed .bfcn file for `bfcn infer` and `bfcn "
                  "bench runtime`. With --verify N, runs the file in the runtime and the "
                  "checkpoint in the training engine on the first N val images and reports their "
                  "label agreement (exit 3 below 99.9 %).")
        .usage("bfcn export --checkpoint CKPT --out MODEL.bfcn [--verify N] [--json FILE]")
        .with_flags(
            {bfcn::cli::text("checkpoint", "CKPT", "checkpoint .h5 or training output dir")
                 .needed(),
             bfcn::cli::text("out", "FILE", "the .bfcn model to write").needed(),
             bfcn::cli::integer("verify", "N",
                                "compare runtime and training engine on N val images (0 = off)")
                 .at_least(0)
                 .defaults("0"),
             bfcn::cli::text("data-root", "DIR", "override the config's data.root for --verify"),
             bfcn::cli::text("json", "FILE", "write the export summary (and --verify's result)"),
             bfcn::cli::integer("threads", "N", "OpenMP threads").at_least(1)})
        .example("bfcn export --checkpoint runs/w1a2/best.h5 --out w1a2.bfcn")
        .example("bfcn export --checkpoint runs/w1a2/best.h5 --out w1a2.bfcn --verify 50")
        .runs(run_export));
