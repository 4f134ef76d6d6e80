// Test fixtures for the datasets suite: an in-memory dataset whose image colour encodes the class
// (so alignment survives any geometric transform), and a writer of small VOC-layout folders.
#pragma once

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "datasets/dataset.h"
#include "datasets/image_io.h"
#include "datasets/palette.h"

namespace bfcn::test {

// Class c is painted with colour (c*40, 255-c*40, c*20); samples have varying sizes and a
// blocky label pattern (4x4 cells) so nearest-neighbour scaling keeps interiors intact.
inline std::array<uint8_t, 3> class_colour(int c) {
  return {static_cast<uint8_t>(c * 40), static_cast<uint8_t>(255 - c * 40),
          static_cast<uint8_t>(c * 20)};
}

inline RawSample make_pattern_sample(size_t index, int h, int w, int n_classes) {
  RawSample s;
  s.id = "s" + std::to_string(index);
  s.image.height = s.label.height = h;
  s.image.width = s.label.width = w;
  s.image.data.resize(static_cast<size_t>(h) * w * 3);
  s.label.data.resize(static_cast<size_t>(h) * w);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int c = static_cast<int>((y / 8 * 7 + x / 8 * 3 + index) % n_classes);
      s.label.data[static_cast<size_t>(y) * w + x] = static_cast<uint8_t>(c);
      auto col = class_colour(c);
      for (int k = 0; k < 3; ++k) s.image.data[(static_cast<size_t>(y) * w + x) * 3 + k] = col[k];
    }
  return s;
}

class PatternDataset : public SegDataset {
 public:
  PatternDataset(size_t n, int h, int w, bool vary_size = false, long fail_at = -1)
      : n_(n), h_(h), w_(w), vary_(vary_size), fail_at_(fail_at) {
    for (size_t i = 0; i < n; ++i) ids_.push_back("s" + std::to_string(i));
    for (int c = 0; c < 5; ++c) classes_.push_back("c" + std::to_string(c));
  }
  size_t size() const override { return n_; }
  RawSample load(size_t index) const override {
    if (static_cast<long>(index) == fail_at_)
      throw IoError("/fake/JPEGImages/" + ids_[index] + ".jpg: cannot decode image");
    const int h = vary_ ? h_ + static_cast<int>(index % 3) * 8 : h_;
    return make_pattern_sample(index, h, w_, 5);
  }
  const std::string& id(size_t index) const override { return ids_.at(index); }
  const std::vector<std::string>& class_names() const override { return classes_; }
  const Palette& palette() const override { return palette_; }
  std::string describe() const override { return "pattern"; }

 private:
  size_t n_;
  int h_, w_;
  bool vary_;
  long fail_at_;
  std::vector<std::string> ids_, classes_;
  Palette palette_ = voc_palette();
};

// A VOC-layout folder with `n` samples of h x w (JPEG images, palette PNG labels) and a split
// list `split`.txt holding all ids.
inline void write_voc(const std::filesystem::path& root, int n, int h, int w,
                      const std::string& split = "train", int n_classes = 21) {
  namespace fs = std::filesystem;
  fs::create_directories(root / "JPEGImages");
  fs::create_directories(root / "SegmentationClass");
  fs::create_directories(root / "ImageSets/Segmentation");
  std::ofstream list(root / "ImageSets/Segmentation" / (split + ".txt"));
  Palette pal = voc_palette();
  for (int i = 0; i < n; ++i) {
    RawSample s = make_pattern_sample(static_cast<size_t>(i), h, w, n_classes);
    const std::string id = "id" + std::to_string(i);
    write_image_rgb(root / "JPEGImages" / (id + ".jpg"), s.image);
    write_label_png(root / "SegmentationClass" / (id + ".png"), s.label, &pal);
    list << id << "\n";
  }
}

}  // namespace bfcn::test
