// fashion-seg: the default demo dataset. Real Fashion-MNIST items (IDX gzip files, Debian package
// dataset-fashion-mnist) are composed into RGB scenes on a textured, non-uniform background:
// 1-4 items per scene, each scaled to 24-64 px, tinted, possibly occluding each other. Label =
// 1 + item class where the item is ink, 0 background, 255 on a 1-pixel band along every label
// border (as VOC has). Written in VOC layout + dataset.json, so VocDataset reads it unchanged.
// Every scene draws from its own Rng forked from (seed, split, index): same seed → same bytes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.h"
#include "datasets/dataset.h"

namespace bfcn {

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// One IDX split: n images of rows x cols (uint8, row-major) and their labels 0..9.
struct IdxSet {
  int n = 0, rows = 0, cols = 0;
  std::vector<uint8_t> images;  // [n, rows, cols]
  std::vector<uint8_t> labels;  // [n]
};
// Reads <dir>/<prefix>-images-idx3-ubyte.gz and <prefix>-labels-idx1-ubyte.gz ("train" or
// "t10k") with zlib; IoError naming the file on a missing file, bad magic or short data.
IdxSet read_idx_split(const std::filesystem::path& dir, const std::string& prefix);

const std::vector<std::string>& fashion_seg_class_names();  // 11: background + 10 items

struct FashionSegOptions {
  std::filesystem::path out;
  int n_train = 2000, n_val = 200;
  int size = 128;  // scene side in pixels
  uint64_t seed = 1;
  std::filesystem::path source = kFashionMnistDir;
};

inline constexpr int kFashionInkThreshold = 64;  // item grey level counted as ink (label)

// One scene from `items` (the split's source items). Deterministic given rng's state.
RawSample make_fashion_scene(const IdxSet& items, int size, Rng& rng, const std::string& id);

// Writes the whole dataset under o.out (created; existing files are overwritten). Train scenes
// use only the train split's items, val scenes only t10k's. `progress` (may be null) is called
// with the number of scenes done.
void make_fashion_seg(const FashionSegOptions& o, void (*progress)(int done, int total) = nullptr);

}  // namespace bfcn
