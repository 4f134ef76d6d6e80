#include "datasets/fashion_seg.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include "core/error.h"
#include "datasets/image_io.h"
#include "datasets/palette.h"

namespace bfcn {

namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> gunzip_file(const fs::path& file) {
  std::error_code ec;
  BFCN_CHECK_IO(fs::is_regular_file(file, ec), file.string(),
                ": not found; install the Debian package dataset-fashion-mnist or pass "
                "--fashion-mnist DIR");
  gzFile gz = gzopen(file.c_str(), "rb");
  BFCN_CHECK_IO(gz != nullptr, file.string(), ": cannot open");
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    const int n = gzread(gz, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int errnum = 0;
      std::string msg = gzerror(gz, &errnum);
      gzclose(gz);
      throw IoError(file.string() + ": gzip read error: " + msg);
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  gzclose(gz);
  return out;
}

uint32_t be32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t(b[at]) << 24) | (uint32_t(b[at + 1]) << 16) | (uint32_t(b[at + 2]) << 8) |
         uint32_t(b[at + 3]);
}

uint8_t to_u8(float v) { return static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L)); }

}  // namespace

IdxSet read_idx_split(const fs::path& dir, const std::string& prefix) {
  const fs::path img_file = dir / (prefix + "-images-idx3-ubyte.gz");
  const fs::path lab_file = dir / (prefix + "-labels-idx1-ubyte.gz");
  std::vector<uint8_t> img = gunzip_file(img_file), lab = gunzip_file(lab_file);
  BFCN_CHECK_IO(img.size() >= 16 && be32(img, 0) == 0x803, img_file.string(),
                ": expected an IDX3 image file (magic 0x00000803)");
  BFCN_CHECK_IO(lab.size() >= 8 && be32(lab, 0) == 0x801, lab_file.string(),
                ": expected an IDX1 label file (magic 0x00000801)");
  IdxSet s;
  s.n = static_cast<int>(be32(img, 4));
  s.rows = static_cast<int>(be32(img, 8));
  s.cols = static_cast<int>(be32(img, 12));
  const size_t need = static_cast<size_t>(s.n) * s.rows * s.cols;
  BFCN_CHECK_IO(s.n > 0 && s.rows > 0 && s.cols > 0 && img.size() >= 16 + need, img_file.string(),
                ": truncated: header says ", s.n, " images of ", s.rows, "x", s.cols, ", but has ",
                img.size() - 16, " bytes of pixels");
  BFCN_CHECK_IO(be32(lab, 4) == static_cast<uint32_t>(s.n) && lab.size() >= 8 + size_t(s.n),
                lab_file.string(), ": expected ", s.n, " labels to match ", img_file.string());
  s.images.assign(img.begin() + 16, img.begin() + 16 + static_cast<std::ptrdiff_t>(need));
  s.labels.assign(lab.begin() + 8, lab.begin() + 8 + s.n);
  for (uint8_t l : s.labels)
    BFCN_CHECK_IO(l < 10, lab_file.string(), ": label ", int(l), " is outside 0..9");
  return s;
}

const std::vector<std::string>& fashion_seg_class_names() {
  static const std::vector<std::string> names{"background", "t-shirt/top", "trouser",   "pullover",
                                              "dress",      "coat",        "sandal",    "shirt",
                                              "sneaker",    "bag",         "ankle boot"};
  return names;
}

RawSample make_fashion_scene(const IdxSet& items, int size, Rng& rng, const std::string& id) {
  const int n = size;
  RawSample s;
  s.id = id;
  s.image.height = s.image.width = s.label.height = s.label.width = n;
  s.label.was_palette = true;
  std::vector<float> rgb(static_cast<size_t>(n) * n * 3);

  // Background: a two-colour gradient along a random direction, times a product of two
  // sinusoids (a woven texture), plus per-pixel noise.
  float c1[3], c2[3];
  for (int k = 0; k < 3; ++k) {
    c1[k] = rng.uniform(30, 225);
    c2[k] = rng.uniform(30, 225);
  }
  const float theta = rng.uniform(0, 6.2831853f), phi = rng.uniform(0, 6.2831853f);
  const float f1 = rng.uniform(2, 8), f2 = rng.uniform(2, 8), amp = rng.uniform(8, 28);
  const float ph1 = rng.uniform(0, 6.2831853f), ph2 = rng.uniform(0, 6.2831853f);
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const float u = static_cast<float>(x) / n, v = static_cast<float>(y) / n;
      const float t = std::clamp(
          0.5f + 0.7f * ((u - 0.5f) * std::cos(theta) + (v - 0.5f) * std::sin(theta)), 0.0f, 1.0f);
      const float tex = amp *
                        std::sin(6.2831853f * f1 * (u * std::cos(phi) + v * std::sin(phi)) + ph1) *
                        std::sin(6.2831853f * f2 * (v * std::cos(phi) - u * std::sin(phi)) + ph2);
      const float noise = rng.uniform(-6, 6);
      for (int k = 0; k < 3; ++k)
        rgb[(static_cast<size_t>(y) * n + x) * 3 + k] = c1[k] + (c2[k] - c1[k]) * t + tex + noise;
    }

  std::vector<uint8_t> label(static_cast<size_t>(n) * n, 0);
  const int n_items = static_cast<int>(rng.randint(1, 5));
  for (int it = 0; it < n_items; ++it) {
    const auto idx = static_cast<size_t>(rng.randint(0, items.n));
    const int side = static_cast<int>(rng.randint(24, std::min(64, n) + 1));
    const int y0 = static_cast<int>(rng.randint(0, n - side + 1));
    const int x0 = static_cast<int>(rng.randint(0, n - side + 1));
    float tint[3];
    for (float& c : tint) c = rng.uniform(40, 255);
    const uint8_t cls = static_cast<uint8_t>(1 + items.labels[idx]);
    cv::Mat src(items.rows, items.cols, CV_8UC1,
                const_cast<uint8_t*>(items.images.data() + idx * items.rows * items.cols));
    cv::Mat item;
    cv::resize(src, item, cv::Size(side, side), 0, 0, cv::INTER_LINEAR);
    for (int y = 0; y < side; ++y)
      for (int x = 0; x < side; ++x) {
        const uint8_t g = item.at<uint8_t>(y, x);
        if (g == 0) continue;
        const float a = g / 255.0f;
        const size_t p = static_cast<size_t>(y0 + y) * n + (x0 + x);
        for (int k = 0; k < 3; ++k)  // shaded by the item's own grey level, alpha-blended
          rgb[p * 3 + k] = rgb[p * 3 + k] * (1 - a) + a * tint[k] * (0.45f + 0.55f * a);
        if (g >= kFashionInkThreshold) label[p] = cls;
      }
  }
  // 1-pixel void band: a pixel whose right or lower neighbour has another class.
  s.label.data = label;
  for (int y = 0; y < n; ++y)
    for (int x = 0; x < n; ++x) {
      const size_t p = static_cast<size_t>(y) * n + x;
      if ((x + 1 < n && label[p] != label[p + 1]) ||
          (y + 1 < n && label[p] != label[p + static_cast<size_t>(n)]))
        s.label.data[p] = 255;
    }
  s.image.data.resize(rgb.size());
  for (size_t i = 0; i < rgb.size(); ++i) s.image.data[i] = to_u8(rgb[i]);
  return s;
}

void make_fashion_seg(const FashionSegOptions& o, void (*progress)(int, int)) {
  BFCN_CHECK(o.size >= 64 && o.size <= 4096, "data make fashion-seg: --size must be in ",
             "[64, 4096] (items are up to 64 px), but got ", o.size);
  BFCN_CHECK(o.n_train >= 0 && o.n_val >= 0 && o.n_train + o.n_val > 0,
             "data make fashion-seg: expected --train/--val >= 0 with at least one scene, but got ",
             o.n_train, "/", o.n_val);
  const IdxSet train_items = read_idx_split(o.source, "train");
  const IdxSet val_items = read_idx_split(o.source, "t10k");
  std::error_code ec;
  fs::create_directories(o.out / "JPEGImages", ec);
  fs::create_directories(o.out / "SegmentationClass", ec);
  fs::create_directories(o.out / "ImageSets" / "Segmentation", ec);
  BFCN_CHECK_IO(fs::is_directory(o.out / "ImageSets" / "Segmentation"), o.out.string(),
                ": cannot create the output folders (", ec.message(), ")");
  const Palette pal = voc_palette();
  const int total = o.n_train + o.n_val;
  int done = 0;
  const Rng root(o.seed);
  for (int split = 0; split < 2; ++split) {
    const bool val = split == 1;
    const IdxSet& items = val ? val_items : train_items;
    const int count = val ? o.n_val : o.n_train;
    const std::string name = val ? "val" : "train";
    const Rng split_rng = root.fork(static_cast<uint64_t>(split));
    std::ofstream list(o.out / "ImageSets" / "Segmentation" / (name + ".txt"));
    BFCN_CHECK_IO(list.good(), (o.out / "ImageSets" / "Segmentation" / (name + ".txt")).string(),
                  ": cannot write");
    for (int i = 0; i < count; ++i) {
      char id[32];
      std::snprintf(id, sizeof(id), "%s_%06d", name.c_str(), i);
      Rng rng = split_rng.fork(static_cast<uint64_t>(i));
      RawSample s = make_fashion_scene(items, o.size, rng, id);
      write_image_rgb(o.out / "JPEGImages" / (s.id + ".jpg"), s.image);
      write_label_png(o.out / "SegmentationClass" / (s.id + ".png"), s.label, &pal);
      list << s.id << '\n';
      if (progress != nullptr) progress(++done, total);
    }
  }
  nlohmann::json palette = nlohmann::json::array();
  for (size_t c = 0; c < fashion_seg_class_names().size(); ++c)
    palette.push_back({pal[c][0], pal[c][1], pal[c][2]});
  nlohmann::json meta{
      {"name", "fashion-seg"},
      {"classes", fashion_seg_class_names()},
      {"palette", palette},
      {"ignore_index", 255},
      {"seed", o.seed},
      {"splits", {{"train", o.n_train}, {"val", o.n_val}}},
      {"generator",
       {{"size", o.size},
        {"items_per_scene", {1, 4}},
        {"item_px", {24, 64}},
        {"ink_threshold", kFashionInkThreshold},
        {"void_band_px", 1},
        {"jpeg_quality", 95},
        {"sources",
         {{"train", "Fashion-MNIST train (60000)"}, {"val", "Fashion-MNIST t10k (10000)"}}}}}};
  std::ofstream f(o.out / "dataset.json");
  f << meta.dump(2) << '\n';
  BFCN_CHECK_IO(f.good(), (o.out / "dataset.json").string(), ": write failed");
}

}  // namespace bfcn
