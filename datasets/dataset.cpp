// DataConfig parsing (strict, JSON-path errors), shared sample validation, dataset.json reading,
// and the dataset factory.
#include "datasets/dataset.h"

#include <fstream>

#include "core/error.h"
#include "core/json_read.h"
#include "datasets/cityscapes.h"
#include "datasets/folder.h"
#include "datasets/voc.h"

namespace bfcn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::array<float, 3> get_triple(const JsonObject& o, const std::string& key,
                                std::array<float, 3> fallback, bool positive) {
  if (!o.has(key)) return fallback;
  const json& v = o.value().at(key);
  if (!(v.is_array() && v.size() == 3))
    o.fail(key, "expected an array of 3 numbers (R, G, B), but got " + v.dump());
  std::array<float, 3> out{};
  for (size_t i = 0; i < 3; ++i) {
    const std::string at = key + "[" + std::to_string(i) + "]";
    if (!v[i].is_number()) o.fail(at, json_type_mismatch("a number", v[i]));
    out[i] = v[i].get<float>();
    if (positive && !(out[i] > 0))
      o.fail(at, detail::concat("expected a positive number, but got ", out[i]));
  }
  return out;
}

}  // namespace

DataConfig DataConfig::from_json(const json& j, const std::string& path) {
  const JsonObject d(j, path);
  d.check_keys({"dataset", "root", "train_split", "val_split", "label_dir", "cityscapes_labels",
                "augment", "mean", "std", "workers", "prefetch"});
  DataConfig c;
  c.dataset = d.get_choice("dataset", {"voc", "cityscapes", "folder"}, c.dataset);
  // root may be absent here (a checkpoint's config only needs mean/std and the class set);
  // make_dataset() requires it.
  c.root = d.get_string("root", "");
  c.train_split = d.get_string("train_split", c.train_split);
  c.val_split = d.get_string("val_split", c.val_split);
  c.label_dir =
      d.get_choice("label_dir", {"SegmentationClass", "SegmentationClassAug"}, c.label_dir);
  c.cityscapes_labels =
      d.get_choice("cityscapes_labels", {"labelIds", "labelTrainIds"}, c.cityscapes_labels);
  if (d.has("augment")) {
    const JsonObject a = d.get_object("augment");
    a.check_keys({"scale_min", "scale_max", "crop", "flip", "jitter"});
    auto& g = c.augment;
    g.scale_min = static_cast<float>(a.get_number("scale_min", 0.05, 10, g.scale_min));
    g.scale_max = static_cast<float>(a.get_number("scale_max", 0.05, 10, g.scale_max));
    if (g.scale_min > g.scale_max)
      a.fail("", detail::concat("expected scale_min <= scale_max, but got ", g.scale_min, " > ",
                                g.scale_max));
    if (a.has("crop")) {
      const json& cr = a.value().at("crop");
      const bool ok = cr.is_array() && cr.size() == 2 && cr[0].is_number_integer() &&
                      cr[1].is_number_integer() && cr[0].get<int64_t>() >= 0 &&
                      cr[1].get<int64_t>() >= 0 && cr[0].get<int64_t>() <= 16384 &&
                      cr[1].get<int64_t>() <= 16384 &&
                      ((cr[0].get<int64_t>() == 0) == (cr[1].get<int64_t>() == 0));
      if (!ok)
        a.fail("crop",
               "expected [H, W] with 1..16384 each (or [0, 0] = off), but got " + cr.dump());
      g.crop = {cr[0].get<int>(), cr[1].get<int>()};
    }
    g.flip = a.get_bool("flip", g.flip);
    g.jitter = static_cast<float>(a.get_number("jitter", 0, 1, g.jitter));
  }
  c.mean = get_triple(d, "mean", c.mean, false);
  c.std = get_triple(d, "std", c.std, true);
  c.workers = d.get_int("workers", 0, 64, c.workers);
  c.prefetch = d.get_int("prefetch", 1, 256, c.prefetch);
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
