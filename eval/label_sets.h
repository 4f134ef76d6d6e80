// The evaluation label sets: VOC (21 classes, palette indices) and Cityscapes (19 trainIds scored
// against gtFine labelIds through the official labels.py table, ignoreInEval → ignored). The table
// is restated here because it *is* the evaluation protocol; tests check it against the loader's.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/palette.h"

namespace bfcn {

enum class EvalDataset { voc, cityscapes };

EvalDataset parse_eval_dataset(const std::string& name);  // "voc" | "cityscapes", else Error
const char* eval_dataset_name(EvalDataset d);

struct EvalLabelSet {
  EvalDataset dataset;
  std::vector<std::string> class_names;  // index = class (VOC index, Cityscapes trainId)
  Palette palette;                       // 256 entries, class index → colour (255 = ignore)
};
EvalLabelSet eval_label_set(EvalDataset d);

inline constexpr int kCityscapesNumLabelIds = 34;  // labelIds 0..33 appear in gtFine PNGs
inline constexpr int kCityscapesNumTrainIds = 19;

// labelId → trainId (255 for the ignoreInEval labels); index 0..33.
const std::array<uint8_t, kCityscapesNumLabelIds>& cityscapes_eval_label_to_train();
// trainId → labelId, for writing predictions the official servers accept; index 0..18.
const std::array<uint8_t, kCityscapesNumTrainIds>& cityscapes_eval_train_to_label();

}  // namespace bfcn
