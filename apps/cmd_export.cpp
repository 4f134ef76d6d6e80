// `bfcn export --checkpoint CKPT --out MODEL.bfcn`: a trained checkpoint (file or training dir)
// to the bit-packed deploy format of the runtime (docs/format.md).
#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "train/export.h"

namespace {

int run_export(const bfcn::cli::Args& args) {
  const std::string ckpt = args.require("checkpoint"), out = args.require("out");
  const bfcn::ExportSummary s = bfcn::export_checkpoint(ckpt, out);
  std::cout << "wrote " << out << ": " << s.bit_layers << " bit-conv layers, " << s.fp32_layers
            << " FP32 layers, " << s.bytes << " bytes (FP32 parameters " << s.fp32_param_bytes
            << " bytes, 1/" << (s.bytes ? double(s.fp32_param_bytes) / double(s.bytes) : 0.0)
            << ")\n";
  return 0;
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("export", "checkpoint -> bit-packed .bfcn deploy model")
        .describe("Writes a trained model as a bit-packed .bfcn file for `bfcn infer` and `bfcn "
                  "bench runtime`.")
        .usage("bfcn export --checkpoint CKPT --out MODEL.bfcn")
        .with_flags({bfcn::cli::text("checkpoint", "CKPT", "checkpoint .h5 or training output dir")
                         .needed(),
                     bfcn::cli::text("out", "FILE", "the .bfcn model to write").needed()})
        .example("bfcn export --checkpoint runs/w1a2/best.h5 --out w1a2.bfcn")
        .runs(run_export));
