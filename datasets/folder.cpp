#include "datasets/folder.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "datasets/voc.h"

namespace bfcn {

namespace fs = std::filesystem;

namespace {
bool is_image_ext(const fs::path& p) {
  std::string e = p.extension().string();
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e == ".jpg" || e == ".jpeg" || e == ".png";
}
}  // namespace

FolderDataset::FolderDataset(const fs::path& root, const std::string& split)
    : root_(root), split_(split) {
  std::error_code ec;
  fs::path img_dir = root / "images", lab_dir = root / "labels";
  BFCN_CHECK_IO(
      fs::is_directory(img_dir, ec) && fs::is_directory(lab_dir, ec), root.string(),
      ": folder dataset root not found or incomplete; expected images/ and labels/ in it");
  std::map<std::string, fs::path> by_stem;  // sorted, unique stems
  std::vector<std::string> wanted;
  if (fs::is_directory(img_dir / split, ec)) {
    img_dir /= split;
    lab_dir /= split;
  } else if (fs::is_regular_file(root / (split + ".txt"), ec)) {
    wanted = read_split_list(root / (split + ".txt"));
    BFCN_CHECK_IO(!wanted.empty(), (root / (split + ".txt")).string(), ": split '", split,
                  "' is empty");
  }
  for (const auto& f : fs::directory_iterator(img_dir))
    if (f.is_regular_file() && is_image_ext(f.path())) {
      const std::string stem = f.path().stem().string();
      BFCN_CHECK_IO(by_stem.count(stem) == 0, f.path().string(), ": two images share the stem '",
                    stem, "' (", by_stem[stem].string(), ")");
      by_stem[stem] = f.path();
    }
  if (wanted.empty()) {
    for (const auto& [stem, path] : by_stem) wanted.push_back(stem);
    BFCN_CHECK_IO(!wanted.empty(), img_dir.string(), ": split '", split,
                  "' is empty (no .jpg/.jpeg/.png images)");
  }
  for (const auto& stem : wanted) {
    auto it = by_stem.find(stem);
    BFCN_CHECK_IO(it != by_stem.end(), (img_dir / stem).string(), ".{jpg,jpeg,png}: image of id '",
                  stem, "' not found");
    const fs::path lab = lab_dir / (stem + ".png");
    BFCN_CHECK_IO(fs::is_regular_file(lab, ec), lab.string(), ": label of image ",
                  it->second.string(), " not found");
    ids_.push_back(stem);
    images_.push_back(it->second);
    labels_.push_back(lab);
  }
  if (!read_dataset_json(root / "dataset.json", classes_, palette_)) {
    int max_value = 0;
    for (const auto& lab : labels_)
      for (uint8_t v : read_label_png(lab).data)
        if (v != 255) max_value = std::max<int>(max_value, v);
    for (int c = 0; c <= max_value; ++c) classes_.push_back("class" + std::to_string(c));
    palette_ = voc_palette();
  }
}

RawSample FolderDataset::load(size_t index) const {
  RawSample s;
  s.id = ids_.at(index);
  s.image = read_image_rgb(images_[index]);
  s.label = read_label_png(labels_[index]);
  check_sample(s.image, s.label, n_classes(), labels_[index]);
  return s;
}

std::string FolderDataset::describe() const {
  return "folder '" + split_ + "' (" + std::to_string(ids_.size()) + " samples, " +
         std::to_string(classes_.size()) + " classes) at " + root_.string();
}

}  // namespace bfcn
