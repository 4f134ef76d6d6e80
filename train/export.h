// Export of a trained SegmentationModel to the .bfcn deploy format (runtime/format.h,
// docs/format.md). Bit convs are stored as packed weight bit planes with BN, the weight scale E and
// 1/((2^M-1)(2^K-1)) folded into one per-channel multiply/add; the stem and score convs stay FP32
// with BN folded. Supported: resnet18/34 (BasicBlock) backbones with fcn32s/16s/8s heads.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "runtime/format.h"

namespace bfcn {

class SegmentationModel;

struct ExportSummary {
  int bit_layers = 0, fp32_layers = 0;
  uint64_t bytes = 0;             // .bfcn file size
  uint64_t fp32_param_bytes = 0;  // 4 bytes per parameter and buffer of the model
};

// The header and blobs of `model` (eval-mode values). `config` is the resolved training config
// (its "data" section gives the input mean/std, class names and palette). Throws bfcn::Error
// naming the layer for anything the runtime cannot execute (e.g. a bit conv fed FP activations).
void build_export(const SegmentationModel& model, const nlohmann::json& config,
                  nlohmann::json& header, std::vector<rt::BlobData>& blobs);

// Checkpoint (file or training dir) -> .bfcn file.
ExportSummary export_checkpoint(const std::filesystem::path& ckpt,
                                const std::filesystem::path& out);

}  // namespace bfcn
