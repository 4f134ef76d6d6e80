#include "datasets/check.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace bfcn {

DatasetReport check_dataset(const SegDataset& ds,
                            const std::function<void(size_t, size_t)>& progress) {
  DatasetReport r;
  r.description = ds.describe();
  r.n_samples = ds.size();
  r.class_names = ds.class_names();
  r.class_pixels.assign(r.class_names.size(), 0);
  for (size_t i = 0; i < ds.size(); ++i) {
    try {
      RawSample s = ds.load(i);
      const int h = s.image.height, w = s.image.width;
      if (r.n_ok == 0) {
        r.min_h = r.max_h = h;
        r.min_w = r.max_w = w;
      }
      r.min_h = std::min(r.min_h, h);
      r.max_h = std::max(r.max_h, h);
      r.min_w = std::min(r.min_w, w);
      r.max_w = std::max(r.max_w, w);
      int64_t hist[256] = {};
      for (uint8_t v : s.label.data) ++hist[v];
      for (size_t c = 0; c < r.class_pixels.size(); ++c) r.class_pixels[c] += hist[c];
      r.ignore_pixels += hist[255];
      ++r.n_ok;
    } catch (const std::exception& e) {
      r.errors.push_back("sample '" + ds.id(i) + "': " + e.what());
    }
    if (progress) progress(i + 1, ds.size());
  }
  return r;
}

nlohmann::json DatasetReport::to_json() const {
  nlohmann::json hist = nlohmann::json::object();
  for (size_t c = 0; c < class_names.size(); ++c) hist[class_names[c]] = class_pixels[c];
  return {
      {"dataset", description},        {"samples", n_samples}, {"ok", n_ok},
      {"bad", errors.size()},          {"errors", errors},     {"height_range", {min_h, max_h}},
      {"width_range", {min_w, max_w}}, {"class_pixels", hist}, {"ignore_pixels", ignore_pixels}};
}

std::string DatasetReport::to_text() const {
  std::ostringstream os;
  os << description << "\n";
  os << "samples: " << n_samples << " (" << n_ok << " ok, " << errors.size() << " bad)\n";
  if (n_ok > 0)
    os << "image size: " << min_w << "-" << max_w << " x " << min_h << "-" << max_h << " (W x H)\n";
  int64_t total = ignore_pixels;
  for (int64_t v : class_pixels) total += v;
  os << "pixels per class:\n";
  char line[160];
  for (size_t c = 0; c < class_names.size(); ++c) {
    std::snprintf(line, sizeof(line), "  %3zu %-16s %14lld  %6.2f%%\n", c, class_names[c].c_str(),
                  static_cast<long long>(class_pixels[c]),
                  total > 0 ? 100.0 * static_cast<double>(class_pixels[c]) / total : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof(line), "  255 %-16s %14lld  %6.2f%%\n", "(ignore)",
                static_cast<long long>(ignore_pixels),
                total > 0 ? 100.0 * static_cast<double>(ignore_pixels) / total : 0.0);
  os << line;
  for (const auto& e : errors) os << "BAD " << e << "\n";
  return os.str();
}

}  // namespace bfcn
