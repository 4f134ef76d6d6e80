// `bfcn report`: the demo's report (runs/demo/report.md + PNGs beside it) from the outputs the demo
// already wrote: per model, `bfcn eval --json` (eval_<label>.json), the exported model
// (<run>/model.bfcn), `bfcn bench runtime --json` at each size (bench_<label>_<S>.json; without
// them the models are timed here, oneDNN n/a), bit-conv runtime predictions of a few val images
// (pred_<label>/<id>.png from `bfcn infer`), the runs' metrics.jsonl and the stage wall times
// (stages.tsv). It writes report.md, report.json, curves.png and panel.png.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "datasets/image_io.h"
#include "eval/visualize.h"
#include "kernels/bitconv.h"
#include "kernels/cpu_features.h"
#include "runtime/engine.h"
#include "train/config.h"
#include "train/metrics_log.h"
#include "train/plot.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Timing {
  double bit_ms = kNaN;     // our bit-conv runtime (NaN: the model has no bit conv)
  double fp32_ms = kNaN;    // our FP32 path (the same graph with float convs)
  double onednn_ms = kNaN;  // convs on oneDNN fp32 + our other layers (NaN: no bfcn-bench)
  std::string source;       // "bfcn bench runtime" or "bfcn report timer"
  int threads = 0;
  std::map<std::string, int> kernels;  // bit layers per kernel variant (bench files only)
  double stem_ms = kNaN;               // the first layer, the stem conv (bench files only)
};

struct Row {
  std::string label, key;  // "W1A2", "w1a2" (file names)
  fs::path run;
  int w_bits = 32, a_bits = 32;
  double miou = kNaN, pixel_acc = kNaN;
  json per_class;  // name -> IoU or null
  uintmax_t model_bytes = 0;
  std::map<int, Timing> timing;  // by input side
  std::vector<bfcn::MetricsLog::Point> loss, val_miou;
  double mean_img_s = kNaN;
  int64_t iterations = 0;
  std::string init_from;
  json verify;  // `bfcn export --verify --json` of the run (export.json), or null
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string fmt(const char* f, double v) {
  if (std::isnan(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

json read_json(const fs::path& file, const std::string& what) {
  BFCN_CHECK_IO(fs::exists(file), "report: ", file.string(), " not found (", what, ")");
  return bfcn::load_json_file(file.string());
}

double num(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number() ? j[key].get<double>() : kNaN;
}

// Whole-network times from `bfcn bench runtime --model M --json F` (its first run).
Timing timing_from_bench(const fs::path& file) {
  const json j = read_json(file, "bfcn bench runtime --json");
  BFCN_CHECK(j.contains("runs") && !j["runs"].empty(), "report: ", file.string(),
             " has no \"runs\" (expected the output of bfcn bench runtime --json)");
  const json& r = j["runs"][0];
  Timing t;
  t.source = "bfcn bench runtime";
  t.threads = r.value("threads", 0);
  bool has_bitconv = false;
  double onednn = num(r, "input_ms");
  for (const auto& L : r.at("layers")) {
    const std::string type = L.value("type", "");
    has_bitconv |= type == "bitconv";
    if (type == "bitconv" && L.contains("kernel") && L["kernel"].is_string())
      ++t.kernels[L["kernel"].get<std::string>()];
    // Convolutions as oneDNN fp32 runs them (same shape, same process), everything else ours.
    onednn += L.contains("peer_onednn_fp32_ms") ? L["peer_onednn_fp32_ms"].get<double>()
                                                : L.value("ms", 0.0);
  }
  t.onednn_ms = onednn;
  if (!r.at("layers").empty()) t.stem_ms = num(r["layers"][0], "ms");
  if (has_bitconv) {
    t.bit_ms = num(r, "total_ms");
    t.fp32_ms = num(r, "fp32_path_ms");
  } else {
    t.fp32_ms = num(r, "total_ms");  // the model is already the FP32 graph
  }
  return t;
}

double best_ms(const bfcn::rt::Model& m, const std::vector<float>& img, int side, int reps) {
  std::vector<uint8_t> labels;
  m.run(img.data(), side, side, nullptr, &labels);  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    m.run(img.data(), side, side, nullptr, &labels);
    best = std::min(
        best,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// Without bfcn-bench: our two paths timed here (best of reps on a random image), oneDNN n/a.
Timing timing_here(const fs::path& model_file, int side, int reps) {
  const bfcn::rt::Model m = bfcn::rt::Model::load(model_file.string());
  bool has_bitconv = false;
  for (const auto& L : m.header()["layers"]) has_bitconv |= L.value("type", "") == "bitconv";
  std::vector<float> img(size_t(3) * side * side);
  std::mt19937 gen(7);
  for (float& v : img) v = float(gen() % 256) / 255.0f;
  Timing t;
  t.source = "bfcn report timer";
  t.threads = omp_get_max_threads();
  if (has_bitconv) {
    t.bit_ms = best_ms(m, img, side, reps);
    t.fp32_ms = best_ms(m.to_fp32(), img, side, reps);
  } else {
    t.fp32_ms = best_ms(m, img, side, reps);
  }
  return t;
}

// FP32 weights of the exported graph: 4 bytes per conv weight and per BN parameter (4 per
// channel), as bfcn bench runtime counts them.
uintmax_t fp32_weight_bytes(const bfcn::rt::Model& m) {
  uintmax_t n = 0;
  for (const auto& L : m.header()["layers"])
    if (L["type"] == "conv_f32" || L["type"] == "bitconv")
      n += 4 * (L["out_c"].get<uintmax_t>() * L["in_c"].get<uintmax_t>() *
                    L["kernel"].get<uintmax_t>() * L["kernel"].get<uintmax_t>() +
                4 * L["out_c"].get<uintmax_t>());
  return n;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(' ', c + 1));
    }
  return "unknown";
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return in ? a + " " + b + " " + c : "n/a";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return buf;
}

// The paper's mIoU drop vs FP32 on VOC12 (Table 1: 69.8 FP32, 67.0 W2A2, 62.8 W1A2).
std::string paper_drop(int w, int a) {
  if (w >= 32) return "0 (69.8)";
  if (w == 2 && a == 2) return "-2.8";
  if (w == 1 && a == 2) return "-7.0";
  return "—";
}

cv::Mat to_bgr(const bfcn::ImageRGB& im) {
  cv::Mat m(im.height, im.width, CV_8UC3);
  for (size_t i = 0; i < size_t(im.height) * im.width; ++i) {
    m.data[3 * i] = im.data[3 * i + 2];
    m.data[3 * i + 1] = im.data[3 * i + 1];
    m.data[3 * i + 2] = im.data[3 * i];
  }
  return m;
}

// Rows of val images: image | ground truth | one prediction per model, titled columns, and a
// legend of every class colour under the grid.
void write_panel(const fs::path& file, const std::vector<fs::path>& samples, const fs::path& data,
                 const fs::path& dir, const std::vector<Row>& rows, const bfcn::Palette& palette,
                 const std::vector<std::string>& class_names) {
  std::vector<std::string> titles{"image", "ground truth"};
  for (const Row& r : rows) titles.push_back(r.label);
  std::vector<cv::Mat> lines;
  int tile = 0;
  for (const fs::path& s : samples) {
    const bfcn::ImageRGB img = bfcn::read_image_rgb(s);
    if (tile == 0) tile = std::max(img.width, 192);
    std::vector<cv::Mat> tiles{to_bgr(img)};
    auto add_labels = [&](const fs::path& png) {
      const bfcn::LabelMap m = bfcn::read_label_png(png);
      BFCN_CHECK(m.height == img.height && m.width == img.width, "report: ", png.string(), " is ",
                 m.width, "x", m.height, " but ", s.string(), " is ", img.width, "x", img.height);
      tiles.push_back(to_bgr(bfcn::colorize_labels(m, palette)));
    };
    add_labels(data / "SegmentationClass" / (s.stem().string() + ".png"));
    for (const Row& r : rows) add_labels(dir / ("pred_" + r.key) / (s.stem().string() + ".png"));
    for (size_t i = 0; i < tiles.size(); ++i) {
      const int th = tile * tiles[i].rows / tiles[i].cols;
      cv::resize(tiles[i], tiles[i], cv::Size(tile, th), 0, 0,
                 i == 0 ? cv::INTER_LINEAR : cv::INTER_NEAREST);
      cv::copyMakeBorder(tiles[i], tiles[i], 2, 2, 2, 2, cv::BORDER_CONSTANT,
                         cv::Scalar(255, 255, 255));
    }
    cv::Mat line;
    cv::hconcat(tiles, line);
    lines.push_back(line);
  }
  const auto font = cv::FONT_HERSHEY_SIMPLEX;
  const int width = lines.front().cols, col_w = tile + 4;
  cv::Mat head(28, width, CV_8UC3, cv::Scalar(255, 255, 255));
  for (size_t i = 0; i < titles.size(); ++i)
    cv::putText(head, titles[i], {int(i) * col_w + 6, 20}, font, 0.55, cv::Scalar(0, 0, 0), 1,
                cv::LINE_AA);
  // Legend: swatch + name per class, wrapped.
  const int row_h = 22, sw = 16;
  std::vector<std::pair<cv::Point, size_t>> items;
  int x = 6, y = 4;
  for (size_t c = 0; c < class_names.size(); ++c) {
    int base = 0;
    const int w = sw + 6 + cv::getTextSize(class_names[c], font, 0.45, 1, &base).width + 14;
    if (x + w > width && x > 6) {
      x = 6;
      y += row_h;
    }
    items.push_back({{x, y}, c});
    x += w;
  }
  cv::Mat legend(y + row_h + 4, width, CV_8UC3, cv::Scalar(255, 255, 255));
  for (const auto& [p, c] : items) {
    const auto& rgb = palette[c];
    cv::rectangle(legend, cv::Rect(p.x, p.y + 3, sw, sw), cv::Scalar(rgb[2], rgb[1], rgb[0]),
                  cv::FILLED);
    cv::rectangle(legend, cv::Rect(p.x, p.y + 3, sw, sw), cv::Scalar(0, 0, 0), 1);
    cv::putText(legend, class_names[c], {p.x + sw + 6, p.y + 16}, font, 0.45, cv::Scalar(0, 0, 0),
                1, cv::LINE_AA);
  }
  lines.insert(lines.begin(), head);
  lines.push_back(legend);
  cv::Mat out;
  cv::vconcat(lines, out);
  BFCN_CHECK_IO(cv::imwrite(file.string(), out), file.string(), ": cannot write the panel");
}

std::vector<int> parse_sizes(const std::string& text) {
  std::vector<int> out;
  std::stringstream ss(text);
  for (std::string item; std::getline(ss, item, ',');) {
    int v = 0;
    try {
      v = std::stoi(item);
    } catch (const std::exception&) {
      v = 0;
    }
    BFCN_CHECK(v >= 32, "report: --sizes expects input sides >= 32 like 128,512, got '", text, "'");
    out.push_back(v);
  }
  BFCN_CHECK(!out.empty(), "report: --sizes is empty");
  return out;
}

Row load_row(const std::string& spec, const fs::path& dir, const std::vector<int>& sizes,
             int reps) {
  const size_t eq = spec.find('=');
  BFCN_CHECK(eq != std::string::npos && eq > 0 && eq + 1 < spec.size(),
             "report: --run expects LABEL=RUN_DIR like W1A2=runs/fashion_seg_w1a2, got '", spec,
             "'");
  Row r;
  r.label = spec.substr(0, eq);
  r.key = lower(r.label);
  r.run = spec.substr(eq + 1);
  BFCN_CHECK_IO(fs::is_directory(r.run), "report: run folder ", r.run.string(), " not found");

  const json cfg = read_json(r.run / "config.json", "the run's resolved config");
  if (cfg.contains("model") && cfg["model"].contains("quant")) {
    r.w_bits = cfg["model"]["quant"].value("w_bits", 32);
    r.a_bits = cfg["model"]["quant"].value("a_bits", 32);
  }
  r.init_from = cfg.value("init_from", "");

  const json ev = read_json(dir / ("eval_" + r.key + ".json"), "bfcn eval --json");
  r.miou = num(ev, "miou");
  r.pixel_acc = num(ev, "pixel_acc");
  r.per_class = ev.value("per_class_iou", json::object());

  // Quantized runs are exported and timed; the FP32 run (the runtime needs quantized activations,
  // so it has no .bfcn) takes "our FP32 path" of the first quantized model: the same graph with
  // float convolutions.
  const fs::path model = r.run / "model.bfcn";
  if (r.w_bits < 32) {
    BFCN_CHECK_IO(fs::exists(model), "report: ", model.string(), " not found (bfcn export)");
    r.model_bytes = fs::file_size(model);
    if (fs::exists(r.run / "export.json")) {
      const json ex = read_json(r.run / "export.json", "bfcn export --json");
      if (ex.contains("verify") && ex["verify"].is_object()) r.verify = ex["verify"];
    }
    for (int s : sizes) {
      const fs::path bench = dir / ("bench_" + r.key + "_" + std::to_string(s) + ".json");
      r.timing[s] = fs::exists(bench) ? timing_from_bench(bench) : timing_here(model, s, reps);
    }
  }

  double img_s = 0;
  int n = 0;
  for (const json& rec : bfcn::read_metrics_file(r.run / "metrics.jsonl")) {
    const int64_t it = rec.value("iter", int64_t{0});
    r.iterations = std::max(r.iterations, it);
    if (rec.contains("loss") && rec["loss"].is_number())
      r.loss.push_back({it, rec["loss"].get<double>()});
    if (rec.contains("val_miou") && rec["val_miou"].is_number())
      r.val_miou.push_back({it, rec["val_miou"].get<double>()});
    if (rec.contains("img_s") && rec["img_s"].is_number()) {
      img_s += rec["img_s"].get<double>();
      ++n;
    }
  }
  if (n > 0) r.mean_img_s = img_s / n;
  return r;
}

// The share of equal labels between two folders of label PNGs (the same names; NaN when none).
double label_agreement(const fs::path& a, const fs::path& b) {
  int64_t same = 0, total = 0;
  for (const auto& e : fs::directory_iterator(a)) {
    if (e.path().extension() != ".png") continue;
    const cv::Mat x = cv::imread(e.path().string(), cv::IMREAD_UNCHANGED);
    const cv::Mat y = cv::imread((b / e.path().filename()).string(), cv::IMREAD_UNCHANGED);
    BFCN_CHECK_IO(!x.empty() && !y.empty() && x.size == y.size && x.type() == y.type(),
                  "report: ", e.path().string(), " and its match in ", b.string(),
                  " are not two label maps of one size");
    total += int64_t(x.total());
    same += int64_t(x.total()) - cv::countNonZero(x.reshape(1) != y.reshape(1));
  }
  return total > 0 ? double(same) / double(total) : kNaN;
}

// The demo's "stem" stage (DIR/stem/): every val image through the runtime with the FP32 and the
// int8 stem (pred_<key>_<stem>/, eval_<key>_<stem>.json) and the network timed with either stem
// (bench_<key>_<S>_<stem>.json). Empty when the stage did not run.
std::string int8_stem_section(const fs::path& dir, const std::vector<Row>& rows, int size,
                              json& jstem) {
  const fs::path stem = dir / "stem";
  std::ostringstream md;
  for (const Row& r : rows) {
    const fs::path e32 = stem / ("eval_" + r.key + "_fp32.json"),
                   e8 = stem / ("eval_" + r.key + "_int8.json");
    if (r.w_bits >= 32 || !fs::exists(e32) || !fs::exists(e8)) continue;
    const double m32 = num(read_json(e32, "bfcn eval --json"), "miou"),
                 m8 = num(read_json(e8, "bfcn eval --json"), "miou");
    const double same =
        label_agreement(stem / ("pred_" + r.key + "_fp32"), stem / ("pred_" + r.key + "_int8"));
    const std::string b = "bench_" + r.key + "_" + std::to_string(size);
    const fs::path bench8 = stem / (b + "_int8.json"), bench32 = stem / (b + "_fp32.json");
    const Timing t32 = fs::exists(bench32) ? timing_from_bench(bench32) : Timing{},
                 t8 = fs::exists(bench8) ? timing_from_bench(bench8) : Timing{};
    const double whole32 = t32.bit_ms, whole8 = t8.bit_ms, stem32 = t32.stem_ms, stem8 = t8.stem_ms;
    md << "| " << r.label << " | " << fmt("%.2f", 100 * m32) << " | " << fmt("%.2f", 100 * m8)
       << " | " << fmt("%.2f %%", 100 * same) << " | " << fmt("%.2f", stem32) << " | "
       << fmt("%.2f", stem8) << " | " << fmt("%.2f", whole32) << " | " << fmt("%.2f", whole8)
       << " |\n";
    jstem.push_back({{"label", r.label},
                     {"miou_fp32_stem", m32},
                     {"miou_int8_stem", m8},
                     {"label_agreement", same},
                     {"size", size},
                     {"stem_ms_fp32", stem32},
                     {"stem_ms_int8", stem8},
                     {"network_ms_fp32_stem", whole32},
                     {"network_ms_int8_stem", whole8}});
  }
  if (md.str().empty()) return "";
  const std::string s = std::to_string(size);
  return "## The int8 stem (opt-in)\n\nThe RGB stem in integers with AVX-512 VNNI (`bfcn infer "
         "--stem int8`; docs/runtime.md): the image in 8 bits (exact for 8-bit images), the "
         "weights in 15. Both stems here run in the bit-conv runtime on every val image "
         "(`bfcn infer --stem fp32|int8`, then `bfcn eval --pred-dir`), so the mIoU differs from "
         "the table above (the training engine). Times: `bfcn bench runtime --stem fp32|int8` at " +
         s +
         "², one after the other.\n\n| model | runtime mIoU %, FP32 stem | int8 "
         "stem | labels equal | stem ms " +
         s + "², FP32 | int8 | network ms " + s +
         "², FP32 stem | int8 stem |\n|---|---|---|---|---|---|---|---|\n" + md.str() + "\n";
}

int run_report(const bfcn::cli::Args& args) {
  const fs::path dir = args.require("dir");
  const fs::path out = args.get("out", dir.string());
  const std::vector<int> sizes = parse_sizes(args.get("sizes", "128,512"));
  const int reps = args.get_int("reps");
  if (args.has("threads")) omp_set_num_threads(args.get_int("threads"));
  const std::vector<std::string> specs = args.get_all("run");
  BFCN_CHECK(!specs.empty(), "report: give at least one --run LABEL=RUN_DIR (see --help)");
  BFCN_CHECK_IO(fs::is_directory(dir), "report: demo folder ", dir.string(), " not found");
  fs::create_directories(out);

  std::vector<Row> rows;
  for (const auto& s : specs) rows.push_back(load_row(s, dir, sizes, reps));
  const Row& ref = rows.front();
  const Row* exported = nullptr;
  for (const Row& r : rows)
    if (!exported && r.w_bits < 32) exported = &r;
  BFCN_CHECK(exported, "report: no quantized run among the --run folders (nothing was exported)");

  // Palette, class names and the FP32 weight size from an exported model (the dataset's).
  const bfcn::rt::Model ref_model = bfcn::rt::Model::load((exported->run / "model.bfcn").string());
  bfcn::Palette palette(256, {0, 0, 0});
  for (size_t i = 0; i < ref_model.palette().size() && i < 256; ++i)
    palette[i] = ref_model.palette()[i];
  // Class names: the dataset's own list (dataset.json of generated data) when --data has one.
  std::vector<std::string> class_names = ref_model.class_names();
  if (args.has("data") && fs::exists(fs::path(args.get("data")) / "dataset.json")) {
    const json ds = bfcn::load_json_file(fs::path(args.get("data")) / "dataset.json");
    if (ds.contains("classes") && ds["classes"].size() == class_names.size())
      class_names = ds["classes"].get<std::vector<std::string>>();
  }
  const uintmax_t fp32_bytes = fp32_weight_bytes(ref_model);
  for (Row& r : rows)
    if (r.w_bits >= 32) {
      r.model_bytes = fp32_bytes;
      for (int s : sizes) {
        Timing t = exported->timing.at(s);
        t.bit_ms = kNaN;
        r.timing[s] = t;
      }
    }

  // curves.png: every run's loss and val mIoU on one figure.
  const std::vector<std::array<uint8_t, 3>> colours = {
      {40, 90, 200}, {230, 120, 20}, {200, 30, 60}, {40, 150, 40}, {130, 60, 170}};
  std::vector<bfcn::PlotSeries> loss, miou;
  for (size_t i = 0; i < rows.size(); ++i) {
    loss.push_back({rows[i].label, colours[i % colours.size()], rows[i].loss});
    miou.push_back({rows[i].label, colours[i % colours.size()], rows[i].val_miou});
  }
  bfcn::write_series_png(out / "curves.png", loss, miou);

  // panel.png: up to 6 sample images with their bit-conv runtime predictions.
  std::vector<fs::path> samples;
  if (fs::is_directory(dir / "samples"))
    for (const auto& e : fs::directory_iterator(dir / "samples")) {
      const std::string ext = lower(e.path().extension().string());
      if (ext == ".jpg" || ext == ".png" || ext == ".jpeg") samples.push_back(e.path());
    }
  std::sort(samples.begin(), samples.end());
  if (samples.size() > 6) samples.resize(6);
  const bool panel = !samples.empty() && args.has("data");
  if (panel)
    write_panel(out / "panel.png", samples, args.get("data"), dir, rows, palette, class_names);

  // Stage wall times written by scripts/demo.sh: name \t seconds \t status.
  std::vector<std::tuple<std::string, double, std::string>> stages;
  if (std::ifstream st(dir / "stages.tsv"); st) {
    for (std::string line; std::getline(st, line);) {
      std::stringstream ls(line);
      std::string name, secs, status;
      if (std::getline(ls, name, '\t') && std::getline(ls, secs, '\t')) {
        std::getline(ls, status, '\t');
        double v = kNaN;
        try {
          v = std::stod(secs);
        } catch (const std::exception&) {
        }
        stages.emplace_back(name, v, status);
      }
    }
  }

  const Timing& t0 = ref.timing.begin()->second;
  const bool have_onednn = !std::isnan(t0.onednn_ms);
  std::ostringstream md;
  md << "# BFCN demo report\n\n";
  if (args.has("quick"))
    md << "> **Quick first look** (`scripts/demo.sh --quick`): a reduced run (few iterations, "
          "part of the val set) to check the pipeline end to end in a few minutes. The accuracy "
          "here says nothing about the method; run `scripts/demo.sh` for the full report.\n\n";
  md << "FCN-8s / ResNet-18 trained on the generated fashion-seg data (" << class_names.size()
     << " classes), then quantized and fine-tuned; evaluated on the val split, exported to `.bfcn` "
        "and run on the bit-convolution runtime. Generated "
     << utc_now() << " by `bfcn report`.";
  if (args.has("note")) md << " " << args.get("note");
  md << "\n\n## Accuracy, speed and size\n\n";
  md << "| model | val mIoU % | drop vs " << ref.label << " | paper drop (VOC12) | pixel acc %";
  for (int s : sizes)
    md << " | bit-conv ms " << s << "² | our FP32 ms " << s << "² | oneDNN fp32 ms " << s
       << "² | speed-up " << s << "²";
  md << " | model file | vs FP32 weights |\n|---|---|---|---|---";
  for (size_t i = 0; i < sizes.size(); ++i) md << "|---|---|---|---";
  md << "|---|---|\n";
  json jrows = json::array();
  for (const Row& r : rows) {
    const double drop = 100 * (r.miou - ref.miou);
    md << "| " << r.label << " | " << fmt("%.1f", 100 * r.miou) << " | "
       << (&r == &ref ? std::string("—") : fmt("%+.1f", drop)) << " | "
       << paper_drop(r.w_bits, r.a_bits) << " | " << fmt("%.1f", 100 * r.pixel_acc);
    json jt = json::object();
    for (int s : sizes) {
      const Timing& t = r.timing.at(s);
      const double speedup = std::isnan(t.bit_ms) ? 1.0 : t.fp32_ms / t.bit_ms;
      md << " | " << (std::isnan(t.bit_ms) ? std::string("—") : fmt("%.2f", t.bit_ms)) << " | "
         << fmt("%.2f", t.fp32_ms) << " | " << fmt("%.2f", t.onednn_ms) << " | "
         << fmt("%.2f", speedup) << "×";
      jt[std::to_string(s)] = {{"bitconv_ms", std::isnan(t.bit_ms) ? json() : json(t.bit_ms)},
                               {"fp32_path_ms", t.fp32_ms},
                               {"onednn_fp32_ms", have_onednn ? json(t.onednn_ms) : json()},
                               {"speedup_vs_fp32_path", speedup},
                               {"source", t.source},
                               {"threads", t.threads}};
    }
    const double ratio = double(fp32_bytes) / double(std::max<uintmax_t>(1, r.model_bytes));
    md << " | " << fmt("%.2f", double(r.model_bytes) / 1e6) << " MB | 1/" << fmt("%.1f", ratio)
       << " |\n";
    jrows.push_back({{"label", r.label},
                     {"run", r.run.string()},
                     {"w_bits", r.w_bits},
                     {"a_bits", r.a_bits},
                     {"miou", r.miou},
                     {"drop_points", &r == &ref ? 0.0 : drop},
                     {"paper_drop", paper_drop(r.w_bits, r.a_bits)},
                     {"pixel_acc", r.pixel_acc},
                     {"timing", jt},
                     {"model_bytes", r.model_bytes},
                     {"fp32_over_model_bytes", ratio},
                     {"iterations", r.iterations},
                     {"mean_train_img_s", std::isnan(r.mean_img_s) ? json() : json(r.mean_img_s)},
                     {"runtime_vs_training", r.verify}});
  }
  md << "\nmIoU and pixel accuracy: `bfcn eval` of each run's best checkpoint on the val split "
        "(training graph, fake-quantized). Drops are in mIoU points against "
     << ref.label
     << "; the paper's are on PASCAL VOC 2012 (69.8 / 67.0 / 62.8 mIoU), ours on the generated "
        "fashion-seg data, so compare the drops, not the absolute values. Runtime: best of a few "
        "runs of the whole network on one image at "
     << t0.threads << " thread(s) (" << t0.source
     << "); bit-conv = our popcount runtime, our FP32 = the same graph with float convolutions, "
        "speed-up = our FP32 / bit-conv. "
     << (have_onednn ? "oneDNN fp32 = every convolution run by oneDNN on its shape in the same "
                       "process plus our other layers. "
                     : "oneDNN fp32 n/a: bfcn-bench was not built (needs libdnnl-dev). ")
     << "The FP32 model has no `.bfcn` (the runtime needs quantized activations): its runtime is "
        "our FP32 path of the same graph. Model file: the exported `.bfcn` (weights bit-packed, "
        "first and last layers float); FP32 weights = 4 bytes per conv weight and BN "
        "parameter.\n\n";

  // Deployability: the exported file against the checkpoint it came from, on real images.
  std::string agree;
  for (const Row& r : rows)
    if (r.verify.is_object()) {
      agree += (agree.empty() ? "" : "; ") + r.label + " " +
               fmt("%.2f", 100 * r.verify.value("label_agreement", kNaN)) + " % (worst image " +
               fmt("%.2f", 100 * r.verify.value("worst_image_agreement", kNaN)) + " %) on " +
               std::to_string(r.verify.value("images", 0)) + " val images";
      const int64_t differ = r.verify.value("codes_differ", int64_t(-1)),
                    ties = r.verify.value("codes_differ_at_ties", int64_t(-1));
      if (differ >= 0 && ties >= 0) {
        agree += ", " + std::to_string(differ) + " of " +
                 std::to_string(r.verify.value("codes", int64_t(0))) +
                 " activation codes differ, " + std::to_string(ties) + " of them at rounding ties";
        if (differ == ties)
          agree += " (with the runtime's codes replayed there: " +
                   fmt("%.2f", 100 * r.verify.value("label_agreement_ties_resolved", kNaN)) + " %)";
      }
    }
  if (!agree.empty())
    md << "Runtime vs training engine (`bfcn export --verify`: the `.bfcn` in the bit-conv runtime "
          "and the checkpoint in the training engine on the same images; equal labels): "
       << agree << ".\n\n";

  json jstem = json::array();
  md << int8_stem_section(dir, rows, sizes.back(), jstem);

  md << "## Per-class IoU (%)\n\n| class";
  for (const Row& r : rows) md << " | " << r.label;
  md << " |\n|---";
  for (size_t i = 0; i < rows.size(); ++i) md << "|---";
  md << "|\n";
  json jclass = json::object();
  for (const auto& name : class_names) {
    md << "| " << name;
    for (const Row& r : rows) {
      const json v = r.per_class.contains(name) ? r.per_class[name] : json();
      md << " | " << (v.is_number() ? fmt("%.1f", 100 * v.get<double>()) : std::string("n/a"));
      jclass[name][r.label] = v;
    }
    md << " |\n";
  }

  md << "\n## Training curves\n\nLoss and validation mIoU of every run against its own "
        "iterations (the quantized runs start from a trained model, see below).\n\n"
        "![loss and val mIoU of all runs](curves.png)\n\n| run | folder | iterations | started "
        "from "
        "(init_from) | mean img/s | best val mIoU % |\n|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    double best = kNaN;
    for (const auto& p : r.val_miou) best = std::isnan(best) ? p.value : std::max(best, p.value);
    md << "| " << r.label << " | `" << r.run.string() << "` | " << r.iterations << " | "
       << (r.init_from.empty() ? std::string("scratch / ImageNet") : "`" + r.init_from + "`")
       << " | " << fmt("%.1f", r.mean_img_s) << " | " << fmt("%.1f", 100 * best) << " |\n";
  }

  md << "\n## Predictions\n\n";
  if (panel)
    md << samples.size()
       << " val images: image, ground truth, then each model's prediction in the dataset palette: "
          "the quantized models on the bit-conv runtime (`bfcn infer` on the exported `.bfcn`), "
          "FP32 from its checkpoint (`bfcn eval --save-pred`).\n\n"
          "![val images, ground truth and predictions](panel.png)\n";
  else
    md << "No panel: "
       << (samples.empty() ? dir.string() + "/samples holds no images" : "no --data") << ".\n";

  md << "\n## Machine\n\n| | |\n|---|---|\n| CPU | " << cpu_model() << " |\n| ISA features | "
     << bfcn::cpu_features_string() << " |\n| kernels | " << bfcn::isa_name(bfcn::active_isa())
     << ", default bit-conv kernel `" << bfcn::bgemm_active().name << "` |\n";
  for (const Row& r : rows)
    for (const auto& [side, t] : r.timing)
      if (r.w_bits < 32 && !t.kernels.empty()) {
        md << "| " << r.label << " bit layers at " << side << "² |";
        for (const auto& [name, n] : t.kernels) md << " " << n << "× `" << name << "`";
        md << " |\n";
      }
  md << "| threads | " << t0.threads << " (runtime timing) |\n| load average at report time | "
     << load_average() << " |\n";
  json jstages = json::array();
  if (!stages.empty()) {
    md << "\n## Wall time per stage\n\n| stage | wall time | |\n|---|---|---|\n";
    double total = 0;
    for (const auto& [name, secs, status] : stages) {
      md << "| " << name << " | " << fmt("%.0f s", secs) << " | " << status << " |\n";
      if (!std::isnan(secs)) total += secs;
      jstages.push_back({{"stage", name}, {"seconds", secs}, {"status", status}});
    }
    md << "| **total** | **" << fmt("%.0f s", total) << "** (" << fmt("%.1f min", total / 60)
       << ") | |\n";
  }

  const fs::path report = out / "report.md";
  {
    std::ofstream f(report);
    f << md.str();
    BFCN_CHECK_IO(f.good(), "report: cannot write ", report.string());
  }
  const json j = {{"quick", args.has("quick")},
                  {"rows", jrows},
                  {"int8_stem", jstem},
                  {"per_class_iou", jclass},
                  {"sizes", sizes},
                  {"files",
                   {{"report", report.string()},
                    {"curves", (out / "curves.png").string()},
                    {"panel", panel ? json((out / "panel.png").string()) : json()}}},
                  {"machine",
                   {{"cpu", cpu_model()},
                    {"features", bfcn::cpu_features_string()},
                    {"isa", bfcn::isa_name(bfcn::active_isa())},
                    {"bitconv_kernel", bfcn::bgemm_active().name},
                    {"threads", t0.threads},
                    {"load_average", load_average()}}},
                  {"stages", jstages}};
  const fs::path jfile = args.get("json", (out / "report.json").string());
  {
    std::ofstream f(jfile);
    f << j.dump(2) << "\n";
    BFCN_CHECK_IO(f.good(), "report: cannot write ", jfile.string());
  }
  std::cout << "report: " << report.string() << " (" << rows.size() << " models; curves.png"
            << (panel ? ", panel.png" : "") << ")\n";
  return 0;
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("report", "the demo report: accuracy, speed, size, curves, predictions")
        .describe("The demo report (accuracy, speed, size, per-class IoU, curves, prediction "
                  "panel, machine, stage times) from the demo's outputs.")
        .usage("bfcn report --dir DEMO_DIR --run LABEL=RUN_DIR... [--data DIR] [--sizes 128,512] "
               "[--quick] [--out DIR]")
        .with_flags(
            {bfcn::cli::text("run", "L=DIR",
                             "a model's label and training folder (the first is the FP32 "
                             "reference): FP32=runs/fashion_seg_fp32")
                 .many(),
             bfcn::cli::text("dir", "DIR",
                             "the demo folder: eval_<l>.json, bench_<l>_<S>.json, samples/, "
                             "pred_<l>/, stages.tsv (l = lower-case label)")
                 .needed(),
             bfcn::cli::text("data", "DIR",
                             "dataset root (VOC layout) for the panel's ground truth"),
             bfcn::cli::text("out", "DIR", "where report.md and the PNGs go (default: --dir)"),
             bfcn::cli::text("sizes", "LIST",
                             "input sides of the runtime columns (default 128,512)"),
             bfcn::cli::boolean("quick", "mark the report as a quick first look (reduced run)"),
             bfcn::cli::text("note", "TEXT",
                             "a line for the report's header (e.g. the iterations used)"),
             bfcn::cli::integer("reps", "N", "repetitions when timing here without bench files")
                 .at_least(1)
                 .defaults("3"),
             bfcn::cli::integer("threads", "N", "OpenMP threads for that timing").at_least(1),
             bfcn::cli::text("json", "FILE",
                             "also write report.json here (default OUT/report.json)")})
        .example("bfcn report --dir runs/demo --data data/fashion-seg --run "
                 "FP32=runs/fashion_seg_fp32 --run W2A2=runs/fashion_seg_w2a2 --run "
                 "W1A2=runs/fashion_seg_w1a2   (what scripts/demo.sh runs)")
        .runs(run_report));
