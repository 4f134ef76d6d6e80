// Evaluation of a folder of saved prediction PNGs against ground truth laid out as on disk, like
// the official scripts: VOC `<id>.png` vs SegmentationClass palette PNGs; Cityscapes
// `<city>_<seq>_<frame>*.png` (recursive) vs gtFine `*_gtFine_labelIds.png` (recursive).
// Each pair is accumulated as a joint histogram of raw (GT value, predicted value), so the
// Cityscapes prediction format (trainIds or labelIds) can be decided once for the whole folder
// after reading it, and every value is mapped through the official table only at the end.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "eval/confusion.h"
#include "eval/label_sets.h"

namespace bfcn {

enum class PredFormat { auto_detect, train_ids, label_ids };
PredFormat parse_pred_format(const std::string& s);  // "auto" | "trainIds" | "labelIds"
const char* pred_format_name(PredFormat f);

struct FolderEvalOptions {
  EvalDataset dataset = EvalDataset::voc;
  PredFormat pred_format = PredFormat::auto_detect;  // Cityscapes only; VOC is always class indices
  // VOC: when gt_dir is a VOC2012 root with ImageSets/Segmentation/<split>.txt, evaluate that list;
  // otherwise every PNG of the SegmentationClass folder.
  std::string split = "val";
  int list_missing = 5;  // how many missing ids to name in the error
};

struct FolderEvalResult {
  Metrics metrics;
  ConfusionMatrix cm{1};
  std::vector<std::string> class_names;
  int n_images = 0;
  int n_extra_predictions = 0;  // prediction files that matched no ground truth (not scored)
  PredFormat pred_format = PredFormat::train_ids;  // the format used (after auto-detection)
  std::string note;                                // how the format was decided, etc.
};

FolderEvalResult evaluate_prediction_folder(const std::filesystem::path& pred_dir,
                                            const std::filesystem::path& gt_dir,
                                            const FolderEvalOptions& opts);

// The Cityscapes frame id "<city>_<seq>_<frame>" at the start of a file name, or "" if none.
std::string cityscapes_frame_id(const std::string& filename);

}  // namespace bfcn
