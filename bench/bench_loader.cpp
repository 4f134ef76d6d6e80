// `bfcn bench loader`: DataLoader throughput (images/s, and per worker) on VOC-sized JPEGs with
// 512x512 training crops (scale 0.5-2, flip), for 1..N workers, against the peer that bounds it:
// bare JPEG+PNG decoding on one thread. Without --root a temporary VOC-layout set of 500x375
// JPEGs is generated (smooth colour fields + noise, so JPEG decoding does realistic work).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"
#include "core/rng.h"
#include "datasets/image_io.h"
#include "datasets/loader.h"
#include "datasets/palette.h"
#include "datasets/voc.h"

namespace {

namespace fs = std::filesystem;
using namespace bfcn;

// n VOC-like samples: 500x375 RGB JPEGs and palette labels with a few rectangles.
void write_temp_voc(const fs::path& root, int n) {
  fs::create_directories(root / "JPEGImages");
  fs::create_directories(root / "SegmentationClass");
  fs::create_directories(root / "ImageSets/Segmentation");
  std::ofstream list(root / "ImageSets/Segmentation/train.txt");
  const Palette pal = voc_palette();
  for (int i = 0; i < n; ++i) {
    Rng rng(static_cast<uint64_t>(i));
    ImageRGB img;
    img.height = 375;
    img.width = 500;
    img.data.resize(375 * 500 * 3);
    const float fx = rng.uniform(0.01f, 0.05f), fy = rng.uniform(0.01f, 0.05f);
    for (int y = 0; y < 375; ++y)
      for (int x = 0; x < 500; ++x)
        for (int c = 0; c < 3; ++c) {
          const float v = 128 + 80 * std::sin(fx * x * (c + 1) + fy * y) + rng.uniform(-20, 20);
          img.data[(static_cast<size_t>(y) * 500 + x) * 3 + c] =
              static_cast<uint8_t>(std::clamp(v, 0.0f, 255.0f));
        }
    std::vector<uint8_t> lab(375 * 500, 0);
    for (int r = 0; r < 3; ++r) {
      const int y0 = static_cast<int>(rng.randint(0, 300)),
                x0 = static_cast<int>(rng.randint(0, 400));
      const auto cls = static_cast<uint8_t>(rng.randint(1, 21));
      for (int y = y0; y < y0 + 70; ++y)
        for (int x = x0; x < x0 + 90; ++x) lab[static_cast<size_t>(y) * 500 + x] = cls;
    }
    const std::string id = "bench_" + std::to_string(i);
    write_image_rgb(root / "JPEGImages" / (id + ".jpg"), img);
    write_label_png(root / "SegmentationClass" / (id + ".png"), lab.data(), 375, 500, &pal);
    list << id << '\n';
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run(const cli::Args& a) {
  std::string root = a.get("root");
  const std::string json_path = a.get("json");
  const int max_workers = a.get_int("workers"), crop = a.get_int("crop"),
            n_images = a.get_int("images");
  int batch = a.get_int("batch");
  fs::path tmp;
  if (root.empty()) {
    tmp =
        fs::temp_directory_path() / ("bfcn_bench_loader_" + std::to_string(std::random_device{}()));
    std::printf("generating %d 500x375 JPEGs in %s ...\n", n_images, tmp.c_str());
    write_temp_voc(tmp, n_images);
    root = tmp.string();
  }
  auto ds = std::make_shared<VocDataset>(root, "train");
  batch = std::min<int>(batch, static_cast<int>(ds->size()));
  std::printf("dataset: %s\n", ds->describe().c_str());

  // Peer: decode image + label of every sample on one thread (no augmentation, no batching).
  auto t0 = std::chrono::steady_clock::now();
  for (size_t i = 0; i < ds->size(); ++i) (void)ds->load(i);
  const double decode_ips = static_cast<double>(ds->size()) / seconds_since(t0);

  DataConfig cfg;
  cfg.root = root;
  cfg.augment.crop = {crop, crop};
  cfg.prefetch = 4;
  nlohmann::json rows = nlohmann::json::array();
  std::printf("\n%-8s %12s %14s %12s %14s\n", "workers", "images/s", "per worker", "speedup",
              "vs decode-only");
  std::printf("%-8s %12.1f %14.1f %12s %14s\n", "decode", decode_ips, decode_ips, "-", "1.00x");
  double base = 0;
  for (int w = 1; w <= max_workers; ++w) {
    cfg.workers = w;
    DataLoader dl(ds, cfg, batch, true, 1);
    Batch b;
    int64_t images = 0;
    t0 = std::chrono::steady_clock::now();
    while (dl.next(b)) images += b.images.dim(0);
    const double ips = static_cast<double>(images) / seconds_since(t0);
    if (w == 1) base = ips;
    std::printf("%-8d %12.1f %14.1f %11.2fx %13.2fx\n", w, ips, ips / w, ips / base,
                ips / decode_ips);
    rows.push_back({{"workers", w},
                    {"images_per_s", ips},
                    {"images_per_s_per_worker", ips / w},
                    {"speedup_vs_1_worker", ips / base},
                    {"ratio_vs_decode_only", ips / decode_ips}});
  }
  if (!tmp.empty()) fs::remove_all(tmp);
  if (!json_path.empty()) {
    nlohmann::json out{{"crop", crop},
                       {"batch", batch},
                       {"images", ds->size()},
                       {"decode_only_images_per_s", decode_ips},
                       {"loader", rows}};
    bfcn::bench::write_json("loader", json_path, out);
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_BENCH(
    bfcn::cli::Command("loader", "DataLoader images/s per worker on VOC-sized JPEGs, 512x512 crops")
        .describe("DataLoader images/s for 1..N workers (train mode: scale 0.5-2, crop, flip), vs "
                  "bare JPEG+PNG decoding on one thread. Without --root, --images 500x375 JPEGs "
                  "are made in a temp folder.")
        .with_flags(
            {bfcn::cli::text("root", "DIR", "a VOC2012 folder to read (default: generated)"),
             bfcn::cli::integer("workers", "N", "up to N loader workers (1..N are timed)")
                 .at_least(1)
                 .defaults("2"),
             bfcn::cli::integer("crop", "PX", "training crop side").at_least(16).defaults("512"),
             bfcn::cli::integer("images", "N", "images to generate without --root")
                 .at_least(1)
                 .defaults("64"),
             bfcn::cli::integer("batch", "B", "batch size").at_least(1).defaults("8"),
             bfcn::cli::text("json", "FILE", "write the results as JSON")})
        .example("bfcn bench loader --workers 4 --json loader.json")
        .runs(run));
