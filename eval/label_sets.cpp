// Class names, palettes and the Cityscapes labels.py id→trainId table used by evaluation.
#include "eval/label_sets.h"

#include "core/error.h"

namespace bfcn {

EvalDataset parse_eval_dataset(const std::string& name) {
  if (name == "voc" || name == "voc2012") return EvalDataset::voc;
  if (name == "cityscapes") return EvalDataset::cityscapes;
  throw Error("eval: --dataset must be voc or cityscapes, got '" + name + "'");
}

const char* eval_dataset_name(EvalDataset d) {
  return d == EvalDataset::voc ? "voc" : "cityscapes";
}

EvalLabelSet eval_label_set(EvalDataset d) {
  if (d == EvalDataset::voc)
    return {
        d,
        {"background", "aeroplane", "bicycle",     "bird",  "boat",        "bottle", "bus",
         "car",        "cat",       "chair",       "cow",   "diningtable", "dog",    "horse",
         "motorbike",  "person",    "pottedplant", "sheep", "sofa",        "train",  "tvmonitor"},
        voc_palette()};
  return {d,
          {"road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
           "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
           "motorcycle", "bicycle"},
          cityscapes_train_palette()};
}

const std::array<uint8_t, kCityscapesNumLabelIds>& cityscapes_eval_label_to_train() {
  static const std::array<uint8_t, kCityscapesNumLabelIds> t{
      255, 255, 255, 255, 255, 255, 255, 0,  1,  255, 255, 2,  3,   4,   255, 255, 255,
      5,   255, 6,   7,   8,   9,   10,  11, 12, 13,  14,  15, 255, 255, 16,  17,  18};
  return t;
}

const std::array<uint8_t, kCityscapesNumTrainIds>& cityscapes_eval_train_to_label() {
  static const std::array<uint8_t, kCityscapesNumTrainIds> t{7,  8,  11, 12, 13, 17, 19, 20, 21, 22,
                                                             23, 24, 25, 26, 27, 28, 31, 32, 33};
  return t;
}

}  // namespace bfcn
