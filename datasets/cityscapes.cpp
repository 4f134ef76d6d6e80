#include "datasets/cityscapes.h"

#include <algorithm>

#include "core/error.h"

namespace bfcn {

namespace fs = std::filesystem;

const std::array<uint8_t, 34>& cityscapes_label_to_train() {
  static const std::array<uint8_t, 34> lut{255, 255, 255, 255, 255, 255, 255, 0,  1,  255, 255, 2,
                                           3,   4,   255, 255, 255, 5,   255, 6,  7,  8,   9,   10,
                                           11,  12,  13,  14,  15,  255, 255, 16, 17, 18};
  return lut;
}

const std::array<uint8_t, 19>& cityscapes_train_to_label() {
  static const std::array<uint8_t, 19> lut{7,  8,  11, 12, 13, 17, 19, 20, 21, 22,
                                           23, 24, 25, 26, 27, 28, 31, 32, 33};
  return lut;
}

const std::vector<std::string>& cityscapes_class_names() {
  static const std::vector<std::string> names{
      "road",         "sidewalk",   "building", "wall",       "fence",  "pole",  "traffic light",
      "traffic sign", "vegetation", "terrain",  "sky",        "person", "rider", "car",
      "truck",        "bus",        "train",    "motorcycle", "bicycle"};
  return names;
}

namespace {
constexpr const char* kImageSuffix = "_leftImg8bit.png";
}

CityscapesDataset::CityscapesDataset(const fs::path& root, const std::string& split,
                                     bool use_train_ids)
    : root_(root),
      split_(split),
      use_train_ids_(use_train_ids),
      palette_(cityscapes_train_palette()) {
  std::error_code ec;
  BFCN_CHECK_IO(
      fs::is_directory(root, ec), root.string(),
      ": Cityscapes root not found; expected the folder holding leftImg8bit/ and gtFine/");
  const fs::path img_dir = root / "leftImg8bit" / split;
  BFCN_CHECK_IO(fs::is_directory(img_dir, ec), img_dir.string(), ": split '", split,
                "' not found (expected leftImg8bit/<split>/<city>/*", kImageSuffix, ")");
  std::vector<std::pair<std::string, fs::path>> found;
  for (const auto& city : fs::directory_iterator(img_dir)) {
    if (!city.is_directory()) continue;
    for (const auto& f : fs::directory_iterator(city.path())) {
      const std::string name = f.path().filename().string();
      const size_t n = std::char_traits<char>::length(kImageSuffix);
      if (name.size() <= n || name.compare(name.size() - n, n, kImageSuffix) != 0) continue;
      found.emplace_back(city.path().filename().string() + "/" + name.substr(0, name.size() - n),
                         f.path());
    }
  }
  std::sort(found.begin(), found.end());
  BFCN_CHECK_IO(!found.empty(), img_dir.string(), ": split '", split, "' is empty (no *",
                kImageSuffix, " under its city folders)");
  for (auto& [id, path] : found) {
    ids_.push_back(id);
    images_.push_back(path);
  }
  for (size_t i = 0; i < ids_.size(); ++i) {
    const fs::path lab = label_path(i);
    BFCN_CHECK_IO(fs::is_regular_file(lab, ec), lab.string(), ": label of image ",
                  images_[i].string(), " not found");
  }
}

fs::path CityscapesDataset::label_path(size_t index) const {
  const std::string& id = ids_.at(index);
  return root_ / "gtFine" / split_ /
         (id + (use_train_ids_ ? "_gtFine_labelTrainIds.png" : "_gtFine_labelIds.png"));
}

RawSample CityscapesDataset::load(size_t index) const {
  RawSample s;
  s.id = ids_.at(index);
  const fs::path lab = label_path(index);
  s.image = read_image_rgb(images_[index]);
  s.label = read_label_png(lab);
  if (!use_train_ids_) {
    const auto& lut = cityscapes_label_to_train();
    for (uint8_t& v : s.label.data) {
      BFCN_CHECK_IO(v < lut.size(), lab.string(), ": labelId ", int(v),
                    " is outside 0..33; is this really a *_gtFine_labelIds.png?");
      v = lut[v];
    }
  }
  check_sample(s.image, s.label, n_classes(), lab);
  return s;
}

std::string CityscapesDataset::describe() const {
  return "cityscapes '" + split_ + "' (" + std::to_string(ids_.size()) + " samples, 19 classes, " +
         (use_train_ids_ ? "labelTrainIds" : "labelIds mapped to trainIds") + ") at " +
         root_.string();
}

}  // namespace bfcn
