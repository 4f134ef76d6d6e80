// `bfcn data make fashion-seg ...` generates the demo dataset; `bfcn data check ...` validates a
// dataset on disk and prints its class histogram. Thin: the work is in datasets/.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "datasets/check.h"
#include "datasets/dataset.h"
#include "datasets/fashion_seg.h"

namespace {

using bfcn::cli::Args;

// A progress line: a bar with rate and ETA on a terminal, else one line every ~10 %.
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), tty_(isatty(2) != 0) {}
  void update(size_t done, size_t total) {
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double rate = s > 0 ? static_cast<double>(done) / s : 0.0;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0.0;
    if (tty_) {
      const int width = 30, fill = total ? static_cast<int>(width * done / total) : width;
      std::fprintf(stderr, "\r%s [%.*s%*s] %zu/%zu %.0f/s ETA %.0fs", what_.c_str(), fill,
                   "##############################", width - fill, "", done, total, rate, eta);
      if (done == total) std::fprintf(stderr, "\n");
    } else if (done == total || done * 10 / total != last_decile_) {
      last_decile_ = done * 10 / total;
      std::fprintf(stderr, "%s: %zu/%zu (%.0f/s, ETA %.0fs)\n", what_.c_str(), done, total, rate,
                   eta);
    }
  }

 private:
  std::string what_;
  bool tty_;
  size_t last_decile_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

Progress* g_progress = nullptr;
void report_progress(int done, int total) {
  if (g_progress != nullptr)
    g_progress->update(static_cast<size_t>(done), static_cast<size_t>(total));
}

int make_fashion(const Args& a) {
  bfcn::FashionSegOptions o;
  o.out = a.require("out");
  o.n_train = a.get_int("train");
  o.n_val = a.get_int("val");
  o.size = a.get_int("size");
  o.seed = static_cast<uint64_t>(a.get_int("seed"));
  if (a.has("fashion-mnist")) o.source = a.get("fashion-mnist");
  Progress p("fashion-seg");
  g_progress = &p;
  const auto t0 = std::chrono::steady_clock::now();
  bfcn::make_fashion_seg(o, report_progress);
  g_progress = nullptr;
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("fashion-seg: %d train + %d val scenes of %dx%d written to %s in %.1f s\n", o.n_train,
              o.n_val, o.size, o.size, o.out.c_str(), s);
  return 0;
}

int check(const Args& a) {
  nlohmann::json j{{"dataset", a.require("dataset")}, {"root", a.require("root")}};
  if (a.has("label-dir")) j["label_dir"] = a.get("label-dir");
  if (a.has("cityscapes-labels")) j["cityscapes_labels"] = a.get("cityscapes-labels");
  const bfcn::DataConfig cfg = bfcn::DataConfig::from_json(j, "bfcn data check");
  auto ds = bfcn::make_dataset(cfg, a.get("split", "train"));
  Progress p("check");
  const bfcn::DatasetReport r =
      bfcn::check_dataset(*ds, [&](size_t done, size_t total) { p.update(done, total); });
  std::fputs(r.to_text().c_str(), stdout);
  if (a.has("json")) {
    std::ofstream f(a.get("json"));
    f << r.to_json().dump(2) << '\n';
    BFCN_CHECK_IO(f.good(), a.get("json"), ": cannot write the JSON report");
  }
  BFCN_CHECK(r.errors.empty(), "data check: ", r.errors.size(), " of ", r.n_samples,
             " samples are bad; first: ", r.errors.front());
  return 0;
}

int run_data(const std::vector<std::string>& args) {
  return bfcn::cli::dispatch(
      {"bfcn data", "bfcn data: make the demo dataset; check a dataset on disk", ""}, args);
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn", bfcn::cli::Command("data", "make the fashion-seg demo dataset; check a dataset on disk")
                .forwards(run_data));

BFCN_REGISTER_COMMAND(
    "bfcn data",
    bfcn::cli::Command("make fashion-seg", "generate the fashion-seg demo dataset (VOC layout)")
        .describe("Composes Fashion-MNIST items into segmentation scenes (11 classes, 255 = void "
                  "band).")
        .usage("bfcn data make fashion-seg --out DIR [--train N] [--val N] [--size PX] [--seed S]")
        .with_flags(
            {bfcn::cli::text("out", "DIR", "output folder (VOC layout + dataset.json)").needed(),
             bfcn::cli::integer("train", "N", "train scenes").at_least(0).defaults("2000"),
             bfcn::cli::integer("val", "N", "val scenes").at_least(0).defaults("200"),
             bfcn::cli::integer("size", "PX", "scene side").range(64, 4096).defaults("128"),
             bfcn::cli::integer("seed", "S", "random seed; same seed, same bytes")
                 .at_least(0)
                 .defaults("1"),
             bfcn::cli::text("fashion-mnist", "DIR",
                             "Fashion-MNIST IDX .gz folder (default "
                             "/usr/share/datasets/fashion-mnist)")})
        .example("bfcn data make fashion-seg --out data/fashion-seg --train 2000 --val 200")
        .runs(make_fashion));

BFCN_REGISTER_COMMAND(
    "bfcn data",
    bfcn::cli::Command("check", "validate a dataset on disk; per-class pixel histogram")
        .describe("Loads and validates every sample; prints counts, size range and the per-class "
                  "pixel histogram. Exit 1 if any sample is bad (all are listed).")
        .usage("bfcn data check --dataset voc|cityscapes|folder --root DIR [--split S] "
               "[--json FILE]")
        .with_flags(
            {bfcn::cli::choice("dataset", {"voc", "cityscapes", "folder"}, "dataset layout")
                 .needed(),
             bfcn::cli::text("root", "DIR", "dataset root (VOC: the VOC2012 folder)").needed(),
             bfcn::cli::text("split", "S", "split to check (default train)"),
             bfcn::cli::text("label-dir", "D",
                             "voc: SegmentationClass (default) | SegmentationClassAug"),
             bfcn::cli::text("cityscapes-labels", "L", "labelIds (default) | labelTrainIds"),
             bfcn::cli::text("json", "FILE", "write the report as JSON")})
        .example("bfcn data check --dataset voc --root VOCdevkit/VOC2012 --split val")
        .runs(check));
