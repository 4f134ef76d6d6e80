// PASCAL VOC 2012 layout: ImageSets/Segmentation/<split>.txt lists ids, images are
// JPEGImages/<id>.jpg and labels <label_dir>/<id>.png (palette PNGs read as indices, or the
// grayscale SegmentationClassAug). A dataset.json in the root (written by the fashion-seg
// generator) overrides the 21 VOC class names and palette, so VOC-layout datasets load unchanged.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace bfcn {

const std::vector<std::string>& voc_class_names();  // 21: background, aeroplane, ..., tvmonitor

// Ids of a split list file, one per line (blank lines skipped, whitespace trimmed).
std::vector<std::string> read_split_list(const std::filesystem::path& file);

class VocDataset : public SegDataset {
 public:
  // Checks the root, the split list (non-empty) and that every id has its image and label.
  VocDataset(const std::filesystem::path& root, const std::string& split,
             const std::string& label_dir = "SegmentationClass");
  size_t size() const override { return ids_.size(); }
  RawSample load(size_t index) const override;
  const std::string& id(size_t index) const override { return ids_.at(index); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  const Palette& palette() const override { return palette_; }
  std::string describe() const override;

 private:
  std::filesystem::path root_;
  std::string split_, label_dir_;
  std::vector<std::string> ids_, classes_;
  Palette palette_;
};

}  // namespace bfcn
