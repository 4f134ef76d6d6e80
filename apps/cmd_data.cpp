// `bfcn data make fashion-seg ...` generates the demo dataset; `bfcn data check ...` validates a
// dataset on disk and prints its class histogram. Thin: the work is in datasets/.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "apps/args.h"
#include "apps/command.h"
#include "core/error.h"
#include "datasets/check.h"
#include "datasets/dataset.h"
#include "datasets/fashion_seg.h"

namespace {

using bfcn::app::Args;

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

int make_fashion(const std::vector<std::string>& argv) {
  Args a("bfcn data make fashion-seg",
         {{"out", true, false, "DIR  output folder (VOC layout + dataset.json)"},
          {"train", true, false, "N  train scenes (default 2000)"},
          {"val", true, false, "N  val scenes (default 200)"},
          {"size", true, false, "PX  scene side (default 128)"},
          {"seed", true, false, "S  random seed (default 1); same seed, same bytes"},
          {"fashion-mnist", true, false,
           "DIR  Fashion-MNIST IDX .gz folder (default /usr/share/datasets/fashion-mnist)"}},
         argv);
  if (a.help()) {
    std::printf(
        "usage: bfcn data make fashion-seg --out DIR [--train N] [--val N] [--size PX] [--seed S]\n"
        "Composes Fashion-MNIST items into segmentation scenes (11 classes, 255 = void band).\n\n%s"
        "\nexample: bfcn data make fashion-seg --out data/fashion-seg --train 2000 --val 200\n",
        a.usage().c_str());
    return 0;
  }
  bfcn::FashionSegOptions o;
  o.out = a.require("out");
  o.n_train = a.get_int("train", o.n_train);
  o.n_val = a.get_int("val", o.n_val);
  o.size = a.get_int("size", o.size);
  o.seed = static_cast<uint64_t>(a.get_int("seed", static_cast<int>(o.seed)));
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

int check(const std::vector<std::string>& argv) {
  Args a("bfcn data check",
         {{"dataset", true, false, "voc|cityscapes|folder  dataset layout"},
          {"root", true, false, "DIR  dataset root (VOC: the VOC2012 folder)"},
          {"split", true, false, "S  split to check (default train)"},
          {"label-dir", true, false, "D  voc: SegmentationClass (default) | SegmentationClassAug"},
          {"cityscapes-labels", true, false, "L  labelIds (default) | labelTrainIds"},
          {"json", true, false, "FILE  write the report as JSON"}},
         argv);
  if (a.help()) {
    std::printf(
        "usage: bfcn data check --dataset voc|cityscapes|folder --root DIR [--split S] "
        "[--json FILE]\nLoads and validates every sample; prints counts, size range and the "
        "per-class pixel histogram. Exit 1 if any sample is bad (all are listed).\n\n%s"
        "\nexample: bfcn data check --dataset voc --root VOCdevkit/VOC2012 --split val\n",
        a.usage().c_str());
    return 0;
  }
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
  const char* usage =
      "usage: bfcn data make fashion-seg --out DIR [--train N] [--val N] [--size PX] [--seed S]\n"
      "       bfcn data check --dataset voc|cityscapes|folder --root DIR [--split S] [--json F]\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(usage, args.empty() ? stderr : stdout);
    return args.empty() ? 1 : 0;
  }
  if (args[0] == "make") {
    BFCN_CHECK(args.size() >= 2 && args[1] == "fashion-seg",
               "data make: expected the dataset name 'fashion-seg', but got '",
               args.size() >= 2 ? args[1] : std::string(), "'");
    return make_fashion({args.begin() + 2, args.end()});
  }
  if (args[0] == "check") return check({args.begin() + 1, args.end()});
  throw bfcn::Error("data: unknown action '" + args[0] + "' (expected make or check)\n" + usage);
}

}  // namespace

BFCN_REGISTER_COMMAND("data", "make the fashion-seg demo dataset; check a dataset on disk",
                      run_data);
