// A plain folder dataset for users' own data: images/<stem>.{jpg,jpeg,png} with
// labels/<stem>.png (palette or grayscale indices). A split is images/<split>/ + labels/<split>/
// when those folders exist, else the ids of <root>/<split>.txt, else every image. Class names and
// palette come from <root>/dataset.json; without one, n_classes = 1 + the largest label value
// found (every label is scanned once at construction).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace bfcn {

class FolderDataset : public SegDataset {
 public:
  FolderDataset(const std::filesystem::path& root, const std::string& split);
  size_t size() const override { return ids_.size(); }
  RawSample load(size_t index) const override;
  const std::string& id(size_t index) const override { return ids_.at(index); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  const Palette& palette() const override { return palette_; }
  std::string describe() const override;

 private:
  std::filesystem::path root_;
  std::string split_;
  std::vector<std::string> ids_, classes_;
  std::vector<std::filesystem::path> images_, labels_;
  Palette palette_;
};

}  // namespace bfcn
