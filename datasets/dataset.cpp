// DataConfig parsing (strict, JSON-path errors), shared sample validation, dataset.json reading,
// and the dataset factory.
#include "datasets/dataset.h"

#include <fstream>

#include "core/error.h"
#include "datasets/cityscapes.h"
#include "datasets/folder.h"
#include "datasets/voc.h"

namespace bfcn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string type_name(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

void reject_unknown(const json& obj, const std::vector<std::string>& known,
                    const std::string& where) {
  for (const auto& [key, value] : obj.items()) {
    bool ok = false;
    for (const auto& k : known) ok = ok || k == key;
    if (!ok) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError(where + "." + key + ": unknown key (known: " + list + ")");
    }
  }
}

std::string get_string(const json& j, const std::string& key, const std::string& where,
                       const std::string& fallback, const std::vector<std::string>& choices = {}) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  BFCN_CHECK_CONFIG(v.is_string(), where, ".", key, ": expected a string, but got ", type_name(v));
  std::string s = v.get<std::string>();
  if (!choices.empty()) {
    bool ok = false;
    std::string list;
    for (const auto& c : choices) {
      ok = ok || c == s;
      list += (list.empty() ? "" : " | ") + c;
    }
    BFCN_CHECK_CONFIG(ok, where, ".", key, ": expected one of ", list, ", but got '", s, "'");
  }
  return s;
}

double get_number(const json& j, const std::string& key, const std::string& where, double fallback,
                  double lo, double hi) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  BFCN_CHECK_CONFIG(v.is_number(), where, ".", key, ": expected a number, but got ", type_name(v));
  double x = v.get<double>();
  BFCN_CHECK_CONFIG(x >= lo && x <= hi, where, ".", key, ": expected a number in [", lo, ", ", hi,
                    "], but got ", x);
  return x;
}

int get_int(const json& j, const std::string& key, const std::string& where, int fallback, int lo,
            int hi) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  BFCN_CHECK_CONFIG(v.is_number_integer(), where, ".", key, ": expected an integer, but got ",
                    type_name(v));
  int64_t x = v.get<int64_t>();
  BFCN_CHECK_CONFIG(x >= lo && x <= hi, where, ".", key, ": expected an integer in [", lo, ", ", hi,
                    "], but got ", x);
  return static_cast<int>(x);
}

std::array<float, 3> get_triple(const json& j, const std::string& key, const std::string& where,
                                std::array<float, 3> fallback, bool positive) {
  if (!j.contains(key)) return fallback;
  const json& v = j.at(key);
  BFCN_CHECK_CONFIG(v.is_array() && v.size() == 3, where, ".", key,
                    ": expected an array of 3 numbers (R, G, B), but got ", v.dump());
  std::array<float, 3> out{};
  for (int i = 0; i < 3; ++i) {
    BFCN_CHECK_CONFIG(v[i].is_number(), where, ".", key, "[", i, "]: expected a number, but got ",
                      type_name(v[i]));
    out[i] = v[i].get<float>();
    BFCN_CHECK_CONFIG(!positive || out[i] > 0, where, ".", key, "[", i,
                      "]: expected a positive number, but got ", out[i]);
  }
  return out;
}

}  // namespace

DataConfig DataConfig::from_json(const json& j, const std::string& path) {
  BFCN_CHECK_CONFIG(j.is_object(), path, ": expected an object, but got ", type_name(j));
  reject_unknown(j,
                 {"dataset", "root", "train_split", "val_split", "label_dir", "cityscapes_labels",
                  "augment", "mean", "std", "workers", "prefetch"},
                 path);
  DataConfig c;
  c.dataset = get_string(j, "dataset", path, c.dataset, {"voc", "cityscapes", "folder"});
  // root may be absent here (a checkpoint's config only needs mean/std and the class set);
  // make_dataset() requires it.
  c.root = get_string(j, "root", path, "");
  c.train_split = get_string(j, "train_split", path, c.train_split);
  c.val_split = get_string(j, "val_split", path, c.val_split);
  c.label_dir =
      get_string(j, "label_dir", path, c.label_dir, {"SegmentationClass", "SegmentationClassAug"});
  c.cityscapes_labels =
      get_string(j, "cityscapes_labels", path, c.cityscapes_labels, {"labelIds", "labelTrainIds"});
  if (j.contains("augment")) {
    const json& a = j.at("augment");
    const std::string ap = path + ".augment";
    BFCN_CHECK_CONFIG(a.is_object(), ap, ": expected an object, but got ", type_name(a));
    reject_unknown(a, {"scale_min", "scale_max", "crop", "flip", "jitter"}, ap);
    auto& g = c.augment;
    g.scale_min = static_cast<float>(get_number(a, "scale_min", ap, g.scale_min, 0.05, 10));
    g.scale_max = static_cast<float>(get_number(a, "scale_max", ap, g.scale_max, 0.05, 10));
    BFCN_CHECK_CONFIG(g.scale_min <= g.scale_max, ap, ": expected scale_min <= scale_max, but got ",
                      g.scale_min, " > ", g.scale_max);
    if (a.contains("crop")) {
      const json& cr = a.at("crop");
      const bool ok = cr.is_array() && cr.size() == 2 && cr[0].is_number_integer() &&
                      cr[1].is_number_integer() && cr[0].get<int64_t>() >= 0 &&
                      cr[1].get<int64_t>() >= 0 && cr[0].get<int64_t>() <= 16384 &&
                      cr[1].get<int64_t>() <= 16384 &&
                      ((cr[0].get<int64_t>() == 0) == (cr[1].get<int64_t>() == 0));
      BFCN_CHECK_CONFIG(ok, ap, ".crop: expected [H, W] with 1..16384 each (or [0, 0] = off), ",
                        "but got ", cr.dump());
      g.crop = {cr[0].get<int>(), cr[1].get<int>()};
    }
    if (a.contains("flip")) {
      BFCN_CHECK_CONFIG(a.at("flip").is_boolean(), ap, ".flip: expected a boolean, but got ",
                        type_name(a.at("flip")));
      g.flip = a.at("flip").get<bool>();
    }
    g.jitter = static_cast<float>(get_number(a, "jitter", ap, g.jitter, 0, 1));
  }
  c.mean = get_triple(j, "mean", path, c.mean, false);
  c.std = get_triple(j, "std", path, c.std, true);
  c.workers = get_int(j, "workers", path, c.workers, 0, 64);
  c.prefetch = get_int(j, "prefetch", path, c.prefetch, 1, 256);
  return c;
}

json DataConfig::to_json() const {
  return json{{"dataset", dataset},
              {"root", root},
              {"train_split", train_split},
              {"val_split", val_split},
              {"label_dir", label_dir},
              {"cityscapes_labels", cityscapes_labels},
              {"augment",
               {{"scale_min", augment.scale_min},
                {"scale_max", augment.scale_max},
                {"crop", {augment.crop[0], augment.crop[1]}},
                {"flip", augment.flip},
                {"jitter", augment.jitter}}},
              {"mean", {mean[0], mean[1], mean[2]}},
              {"std", {std[0], std[1], std[2]}},
              {"workers", workers},
              {"prefetch", prefetch}};
}

void check_sample(const ImageRGB& img, const LabelMap& label, int n_classes,
                  const fs::path& label_file) {
  BFCN_CHECK_IO(img.height == label.height && img.width == label.width, label_file.string(),
                ": label size ", label.width, "x", label.height, " (WxH) does not match its image ",
                img.width, "x", img.height);
  bool seen[256] = {};
  for (uint8_t v : label.data) seen[v] = true;
  for (int v = n_classes; v < 255; ++v)
    BFCN_CHECK_IO(!seen[v], label_file.string(), ": label value ", v, " is outside {0..",
                  n_classes - 1, ", 255} (", n_classes, " classes)");
}

bool read_dataset_json(const fs::path& file, std::vector<std::string>& classes, Palette& palette) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) return false;
  json j;
  try {
    std::ifstream f(file);
    j = json::parse(f);
  } catch (const json::exception& e) {
    throw IoError(file.string() + ": invalid JSON: " + e.what());
  }
  BFCN_CHECK_IO(j.is_object() && j.contains("classes") && j["classes"].is_array() &&
                    !j["classes"].empty() && j["classes"].size() <= 255,
                file.string(), ": expected \"classes\": a list of 1..255 class names");
  std::vector<std::string> names;
  for (const auto& c : j["classes"]) {
    BFCN_CHECK_IO(c.is_string(), file.string(), ": \"classes\" must hold strings, but got ",
                  c.dump());
    names.push_back(c.get<std::string>());
  }
  Palette pal = voc_palette();
  if (j.contains("palette")) {
    const json& p = j["palette"];
    BFCN_CHECK_IO(p.is_array() && p.size() <= 256, file.string(),
                  ": expected \"palette\": a list of up to 256 [r, g, b] colours");
    for (size_t i = 0; i < p.size(); ++i) {
      const json& c = p[i];
      BFCN_CHECK_IO(c.is_array() && c.size() == 3 && c[0].is_number_integer() &&
                        c[1].is_number_integer() && c[2].is_number_integer(),
                    file.string(), ": palette[", i, "]: expected [r, g, b], but got ", c.dump());
      for (int k = 0; k < 3; ++k) pal[i][k] = static_cast<uint8_t>(c[k].get<int>() & 255);
    }
  }
  classes = std::move(names);
  palette = std::move(pal);
  return true;
}

std::unique_ptr<SegDataset> make_dataset(const DataConfig& cfg, const std::string& split) {
  BFCN_CHECK_CONFIG(!cfg.root.empty(), "data.root: required to load the '", cfg.dataset,
                    "' dataset (the folder it was unpacked to)");
  if (cfg.dataset == "voc") return std::make_unique<VocDataset>(cfg.root, split, cfg.label_dir);
  if (cfg.dataset == "cityscapes")
    return std::make_unique<CityscapesDataset>(cfg.root, split,
                                               cfg.cityscapes_labels == "labelTrainIds");
  if (cfg.dataset == "folder") return std::make_unique<FolderDataset>(cfg.root, split);
  throw ConfigError("data.dataset: expected voc | cityscapes | folder, but got '" + cfg.dataset +
                    "'");
}

}  // namespace bfcn
