#include "datasets/voc.h"

#include <fstream>

#include "core/error.h"

namespace bfcn {

namespace fs = std::filesystem;

const std::vector<std::string>& voc_class_names() {
  static const std::vector<std::string> names{
      "background", "aeroplane", "bicycle",     "bird",  "boat",        "bottle", "bus",
      "car",        "cat",       "chair",       "cow",   "diningtable", "dog",    "horse",
      "motorbike",  "person",    "pottedplant", "sheep", "sofa",        "train",  "tvmonitor"};
  return names;
}

std::vector<std::string> read_split_list(const fs::path& file) {
  std::ifstream f(file);
  BFCN_CHECK_IO(f.good(), file.string(), ": cannot open split list");
  std::vector<std::string> ids;
  std::string line;
  while (std::getline(f, line)) {
    const auto b = line.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) continue;
    const auto e = line.find_last_not_of(" \t\r\n");
    ids.push_back(line.substr(b, e - b + 1));
  }
  return ids;
}

VocDataset::VocDataset(const fs::path& root, const std::string& split, const std::string& label_dir)
    : root_(root), split_(split), label_dir_(label_dir) {
  std::error_code ec;
  BFCN_CHECK_IO(fs::is_directory(root, ec), root.string(),
                ": VOC root not found; expected the VOCdevkit/VOC2012 folder (with JPEGImages/, ",
                label_dir, "/ and ImageSets/Segmentation/)");
  const fs::path lists = root / "ImageSets" / "Segmentation";
  const fs::path list = lists / (split + ".txt");
  if (!fs::is_regular_file(list, ec)) {
    std::string known;
    if (fs::is_directory(lists, ec))
      for (const auto& e : fs::directory_iterator(lists))
        if (e.path().extension() == ".txt")
          known += (known.empty() ? "" : ", ") + e.path().stem().string();
    throw IoError(list.string() +
                  ": split list not found (splits here: " + (known.empty() ? "none" : known) + ")");
  }
  ids_ = read_split_list(list);
  BFCN_CHECK_IO(!ids_.empty(), list.string(), ": split '", split, "' is empty");
  for (const auto& id : ids_) {
    const fs::path img = root / "JPEGImages" / (id + ".jpg");
    const fs::path lab = root / label_dir / (id + ".png");
    BFCN_CHECK_IO(fs::is_regular_file(img, ec), img.string(), ": image of id '", id,
                  "' (listed in ", list.string(), ") not found");
    BFCN_CHECK_IO(fs::is_regular_file(lab, ec), lab.string(), ": label of id '", id,
                  "' (listed in ", list.string(), ") not found");
  }
  if (!read_dataset_json(root / "dataset.json", classes_, palette_)) {
    classes_ = voc_class_names();
    palette_ = voc_palette();
  }
}

RawSample VocDataset::load(size_t index) const {
  RawSample s;
  s.id = ids_.at(index);
  const fs::path lab = root_ / label_dir_ / (s.id + ".png");
  s.image = read_image_rgb(root_ / "JPEGImages" / (s.id + ".jpg"));
  s.label = read_label_png(lab);
  check_sample(s.image, s.label, n_classes(), lab);
  return s;
}

std::string VocDataset::describe() const {
  return "voc '" + split_ + "' (" + std::to_string(ids_.size()) + " samples, " +
         std::to_string(classes_.size()) + " classes, labels " + label_dir_ + ") at " +
         root_.string();
}

}  // namespace bfcn
