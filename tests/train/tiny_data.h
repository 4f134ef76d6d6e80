// Test fixture for the training tests: a tiny "folder" dataset (32x32 images, 3 classes: a noisy
// background, red squares and blue squares) and a training config over it, so `bfcn train` runs
// a few steps in seconds. Everything is drawn from a fixed seed.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/rng.h"
#include "datasets/image_io.h"
#include "tests/support/test_support.h"
#include "train/metrics_log.h"

namespace bfcn::test {

inline void make_tiny_dataset(const std::filesystem::path& root, int n_train = 16, int n_val = 4,
                              int size = 32) {
  namespace fs = std::filesystem;
  Rng rng(123);
  for (const auto& [split, n] : {std::pair<std::string, int>{"train", n_train}, {"val", n_val}}) {
    fs::create_directories(root / "images" / split);
    fs::create_directories(root / "labels" / split);
    for (int i = 0; i < n; ++i) {
      ImageRGB img;
      img.height = img.width = size;
      img.data.resize(static_cast<size_t>(size) * size * 3);
      std::vector<uint8_t> lab(static_cast<size_t>(size) * size, 0);
      for (auto& v : img.data) v = static_cast<uint8_t>(rng.randint(20, 90));
      for (int k = 0; k < 2; ++k) {
        const int cls = 1 + static_cast<int>(rng.randint(0, 2));
        const int s = static_cast<int>(rng.randint(size / 4, size / 2));
        const int y0 = static_cast<int>(rng.randint(0, size - s)),
                  x0 = static_cast<int>(rng.randint(0, size - s));
        for (int y = y0; y < y0 + s; ++y)
          for (int x = x0; x < x0 + s; ++x) {
            uint8_t* p = img.data.data() + (static_cast<size_t>(y) * size + x) * 3;
            p[0] = cls == 1 ? 230 : 30;
            p[1] = 40;
            p[2] = cls == 2 ? 230 : 30;
            lab[static_cast<size_t>(y) * size + x] = static_cast<uint8_t>(cls);
          }
      }
      const std::string id = split + "_" + std::to_string(i);
      write_image_rgb(root / "images" / split / (id + ".png"), img);
      write_label_png(root / "labels" / split / (id + ".png"), lab.data(), size, size, nullptr);
    }
  }
  std::ofstream(root / "dataset.json")
      << R"({"classes": ["background", "red", "blue"], "palette": [[0,0,0],[200,0,0],[0,0,200]]})";
}

// A W1A2 (or FP32 when w_bits = 32) FCN-8s ResNet-18 config over make_tiny_dataset(root).
inline nlohmann::json tiny_config(const std::filesystem::path& root, int iterations, int w_bits = 1,
                                  int a_bits = 2) {
  nlohmann::json model = {{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 3}};
  if (w_bits < 32)
    model["quant"] = {{"w_bits", w_bits}, {"a_bits", a_bits}, {"first_last_fp", true}};
  return {
      {"name", "tiny"},
      {"model", model},
      {"data",
       {{"dataset", "folder"},
        {"root", root.string()},
        {"workers", 1},
        {"augment", {{"scale_min", 1.0}, {"scale_max", 1.0}, {"crop", {0, 0}}, {"flip", true}}}}},
      {"train",
       {{"optimizer", "adam"},
        {"lr", 0.001},
        {"weight_decay", 0.0},
        {"iterations", iterations},
        {"batch", 4},
        {"log_interval", 1},
        {"seed", 5},
        {"threads", 2}}}};
}

// The tiny dataset shared by the tests of one process (built on first use, removed at exit).
inline const std::filesystem::path& shared_tiny_root() {
  static TempDir dir("bfcn_train_data");
  static const bool made = (make_tiny_dataset(dir.path()), true);
  (void)made;
  return dir.path();
}

// iteration -> loss of a metrics.jsonl (the records that carry a loss).
inline std::map<int64_t, double> losses_of(const std::filesystem::path& metrics_file) {
  std::map<int64_t, double> out;
  for (const auto& r : read_metrics_file(metrics_file))
    if (r.contains("loss")) out[r["iter"].get<int64_t>()] = r["loss"].get<double>();
  return out;
}

inline void write_json(const std::filesystem::path& file, const nlohmann::json& j) {
  std::ofstream(file) << j.dump(2);
}

}  // namespace bfcn::test
