// The dataset interface the trainer and evaluator see: random-access raw samples (RGB image +
// index label, both checked), class names and palette; plus the data config that picks and
// parameterises a dataset. Datasets are immutable after construction, so load() is thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/image_io.h"
#include "datasets/palette.h"

namespace bfcn {

struct RawSample {
  std::string id;
  ImageRGB image;  // [H,W,3]
  LabelMap label;  // [H,W], values in {0..C-1, 255}
};

class SegDataset {
 public:
  virtual ~SegDataset() = default;
  virtual size_t size() const = 0;
  // Reads and validates sample `index` (label size == image size, values in {0..C-1, 255});
  // throws IoError naming the file on any problem. Thread-safe.
  virtual RawSample load(size_t index) const = 0;
  virtual const std::string& id(size_t index) const = 0;
  virtual const std::vector<std::string>& class_names() const = 0;
  virtual const Palette& palette() const = 0;  // 256 entries
  int n_classes() const { return static_cast<int>(class_names().size()); }
  virtual std::string describe() const = 0;  // "voc 'train' (1464 samples) at /data/VOC2012"
};

struct AugmentConfig {
  float scale_min = 0.5f, scale_max = 2.0f;  // random scale range (1,1 = off)
  std::array<int, 2> crop{512, 512};         // [H,W] random crop (padded if smaller); 0,0 = off
  bool flip = true;                          // random horizontal flip
  float jitter = 0.0f;                       // brightness/contrast/saturation ±jitter; 0 = off
};

struct DataConfig {
  std::string dataset = "voc";  // voc | cityscapes | folder
  std::string root;
  std::string train_split = "train", val_split = "val";
  std::string label_dir = "SegmentationClass";  // voc: SegmentationClass | SegmentationClassAug
  std::string cityscapes_labels = "labelIds";   // labelIds (mapped) | labelTrainIds
  AugmentConfig augment;
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // on [0,1] RGB
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  int workers = 2;   // loader threads; 0 = load on the caller's thread
  int prefetch = 4;  // batches prepared ahead

  // Strict: unknown keys, wrong types and bad ranges throw ConfigError naming `path` + the key
  // ("c.json: data.augment.crop: expected [H, W] ..."). Missing keys keep their defaults; an
  // absent root is allowed here and rejected by make_dataset().
  static DataConfig from_json(const nlohmann::json& j, const std::string& path);
  nlohmann::json to_json() const;
};

// Builds the dataset named by cfg.dataset for `split`; throws IoError for a missing root, split
// list, image or label, or an empty split.
std::unique_ptr<SegDataset> make_dataset(const DataConfig& cfg, const std::string& split);

// Shared validation used by every loader: sizes match and every label value is < n_classes or
// 255. `label_file` is named in the error.
void check_sample(const ImageRGB& img, const LabelMap& label, int n_classes,
                  const std::filesystem::path& label_file);

// Class names and palette from a dataset.json ({"classes": [...], "palette": [[r,g,b], ...]}) when
// the file exists; returns false (outputs untouched) when it does not. Bad content throws.
bool read_dataset_json(const std::filesystem::path& file, std::vector<std::string>& classes,
                       Palette& palette);

}  // namespace bfcn
