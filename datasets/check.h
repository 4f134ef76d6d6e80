// Whole-dataset validation behind `bfcn data check`: loads every sample (which validates sizes and
// label values), and gathers counts, the image size range and the per-class pixel histogram
// (ignore pixels counted separately). Bad samples are collected, not fatal, so one run lists them.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/dataset.h"

namespace bfcn {

struct DatasetReport {
  std::string description;
  size_t n_samples = 0, n_ok = 0;
  int min_h = 0, max_h = 0, min_w = 0, max_w = 0;
  std::vector<std::string> class_names;
  std::vector<int64_t> class_pixels;  // [n_classes]
  int64_t ignore_pixels = 0;
  std::vector<std::string> errors;  // one per bad sample, naming its file
  nlohmann::json to_json() const;
  std::string to_text() const;  // the table `bfcn data check` prints
};

// progress(done, total) is called after each sample (may be empty).
DatasetReport check_dataset(const SegDataset& ds,
                            const std::function<void(size_t, size_t)>& progress = {});

}  // namespace bfcn
