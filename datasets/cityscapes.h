// Cityscapes gtFine layout: leftImg8bit/<split>/<city>/<stem>_leftImg8bit.png with
// gtFine/<split>/<city>/<stem>_gtFine_labelIds.png mapped to the 19 trainIds by the official
// labels.py table (others → 255), as the official evaluation does; optionally the
// *_gtFine_labelTrainIds.png files instead (they differ on ~0.3-0.6 % of boundary pixels).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace bfcn {

// labelId (0..33) → trainId (0..18, 255 = ignore), index = labelId.
const std::array<uint8_t, 34>& cityscapes_label_to_train();
// trainId (0..18) → labelId.
const std::array<uint8_t, 19>& cityscapes_train_to_label();
const std::vector<std::string>& cityscapes_class_names();  // 19, by trainId

class CityscapesDataset : public SegDataset {
 public:
  // Scans leftImg8bit/<split>/*/ (sorted city/stem); every image must have its gtFine label.
  CityscapesDataset(const std::filesystem::path& root, const std::string& split,
                    bool use_train_ids = false);
  size_t size() const override { return ids_.size(); }
  RawSample load(size_t index) const override;
  const std::string& id(size_t index) const override { return ids_.at(index); }
  const std::vector<std::string>& class_names() const override { return cityscapes_class_names(); }
  const Palette& palette() const override { return palette_; }
  std::string describe() const override;

 private:
  std::filesystem::path label_path(size_t index) const;
  std::filesystem::path root_;
  std::string split_;
  bool use_train_ids_;
  std::vector<std::string> ids_;               // "<city>/<stem>"
  std::vector<std::filesystem::path> images_;  // same order
  Palette palette_;
};

}  // namespace bfcn
