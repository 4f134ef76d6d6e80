// Prediction-folder evaluation: pair files by id, accumulate a raw joint histogram, then map GT and
// predictions through the dataset's protocol into one ConfusionMatrix. See Note [Cityscapes
// prediction format] below and docs/evaluation.md.
#include "eval/pred_folder.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <fstream>
#include <map>

#include "core/error.h"
#include "datasets/image_io.h"

namespace bfcn {

namespace fs = std::filesystem;

namespace {

struct Pair {
  std::string id;
  fs::path gt, pred;
};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_png(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".png";
}

std::vector<fs::path> list_files(const fs::path& dir, bool recursive) {
  std::vector<fs::path> out;
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.is_regular_file() && is_png(e.path())) out.push_back(e.path());
  } else {
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && is_png(e.path())) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

[[noreturn]] void throw_missing(const std::vector<std::string>& missing, size_t n_gt,
                                const fs::path& pred_dir, int list_n) {
  std::string names;
  for (size_t i = 0; i < missing.size() && i < static_cast<size_t>(list_n); ++i)
    names += (i ? ", " : "") + missing[i];
  if (missing.size() > static_cast<size_t>(list_n)) names += ", ...";
  throw IoError("eval: " + std::to_string(missing.size()) + " of " + std::to_string(n_gt) +
                " ground-truth images have no prediction in " + pred_dir.string() + ": " + names);
}

std::vector<Pair> voc_pairs(const fs::path& pred_dir, const fs::path& gt_dir,
                            const FolderEvalOptions& o, int* n_extra) {
  fs::path seg = gt_dir;
  std::vector<std::string> ids;
  if (fs::is_directory(gt_dir / "SegmentationClass")) {
    seg = gt_dir / "SegmentationClass";
    const fs::path lists = gt_dir / "ImageSets" / "Segmentation";
    const fs::path list = lists / (o.split + ".txt");
    BFCN_CHECK_IO(!fs::is_directory(lists) || fs::exists(list), "eval: split list ", list.string(),
                  " not found (choose the list with --split)");
    if (fs::exists(list)) {
      std::ifstream in(list);
      BFCN_CHECK_IO(in.good(), "eval: cannot read split list ", list.string());
      for (std::string line; std::getline(in, line);) {
        while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
          line.pop_back();
        if (!line.empty()) ids.push_back(line);
      }
      BFCN_CHECK_IO(!ids.empty(), "eval: split list ", list.string(), " is empty");
    }
  }
  if (ids.empty())
    for (const auto& f : list_files(seg, false)) ids.push_back(f.stem().string());
  BFCN_CHECK_IO(!ids.empty(), "eval: no ground-truth PNGs in ", seg.string(),
                " (expected a VOC2012 root or a SegmentationClass folder)");
  std::vector<Pair> pairs;
  std::vector<std::string> missing;
  for (const auto& id : ids) {
    fs::path g = seg / (id + ".png"), p = pred_dir / (id + ".png");
    BFCN_CHECK_IO(fs::exists(g), "eval: ground truth ", g.string(), " is missing (listed id '", id,
                  "')");
    if (!fs::exists(p)) {
      missing.push_back(id);
      continue;
    }
    pairs.push_back({id, g, p});
  }
  if (!missing.empty()) throw_missing(missing, ids.size(), pred_dir, o.list_missing);
  int n_pred = static_cast<int>(list_files(pred_dir, false).size());
  *n_extra = n_pred - static_cast<int>(pairs.size());
  return pairs;
}

// Several PNGs for one frame (e.g. our own --save-pred output): visualisations are not labels.
bool is_visualisation(const fs::path& p) {
  const std::string n = p.filename().string();
  return n.find("_color") != std::string::npos || n.find("_panel") != std::string::npos;
}

std::vector<Pair> cityscapes_pairs(const fs::path& pred_dir, const fs::path& gt_dir,
                                   const FolderEvalOptions& o, int* n_extra) {
  std::map<std::string, fs::path> gt;
  for (const auto& f : list_files(gt_dir, true)) {
    const std::string n = f.filename().string();
    if (!ends_with(n, "_gtFine_labelIds.png")) continue;
    std::string id = cityscapes_frame_id(n);
    BFCN_CHECK_IO(!id.empty(), "eval: ", f.string(), " is not named <city>_<seq>_<frame>_...");
    BFCN_CHECK_IO(gt.emplace(id, f).second, "eval: two ground-truth files for frame ", id, ": ",
                  gt[id].string(), " and ", f.string());
  }
  BFCN_CHECK_IO(!gt.empty(), "eval: no *_gtFine_labelIds.png under ", gt_dir.string(),
                " (expected the Cityscapes gtFine folder or a split/city folder inside it)");
  std::map<std::string, std::vector<fs::path>> preds;
  for (const auto& f : list_files(pred_dir, true)) {
    std::string id = cityscapes_frame_id(f.filename().string());
    if (!id.empty()) preds[id].push_back(f);
  }
  std::vector<Pair> pairs;
  std::vector<std::string> missing;
  for (const auto& [id, g] : gt) {
    auto it = preds.find(id);
    if (it == preds.end()) {
      missing.push_back(id);
      continue;
    }
    std::vector<fs::path> c = it->second;
    if (c.size() > 1) c.erase(std::remove_if(c.begin(), c.end(), is_visualisation), c.end());
    BFCN_CHECK_IO(c.size() == 1, "eval: found ", it->second.size(), " prediction files for frame ",
                  id, " (", it->second.front().string(), ", ", it->second.back().string(),
                  "); keep one label PNG per frame");
    pairs.push_back({id, g, c.front()});
  }
  if (!missing.empty()) throw_missing(missing, gt.size(), pred_dir, o.list_missing);
  *n_extra = 0;
  for (const auto& [id, files] : preds)
    if (!gt.count(id)) ++*n_extra;
  return pairs;
}

// Joint histogram of raw values plus, per value, the first file that holds it (for errors).
struct RawHistogram {
  std::vector<uint64_t> joint = std::vector<uint64_t>(256 * 256, 0);  // [gt][pred]
  std::array<std::string, 256> gt_file, pred_file;
  uint64_t pred_count(int v) const {
    uint64_t s = 0;
    for (int g = 0; g < 256; ++g) s += joint[static_cast<size_t>(g * 256 + v)];
    return s;
  }
  uint64_t gt_count(int v) const {
    uint64_t s = 0;
    for (int p = 0; p < 256; ++p) s += joint[static_cast<size_t>(v * 256 + p)];
    return s;
  }
};

void accumulate(RawHistogram& h, const Pair& pr) {
  LabelMap g = read_label_png(pr.gt);
  LabelMap p = read_label_png(pr.pred);
  BFCN_CHECK_IO(g.height == p.height && g.width == p.width, "eval: prediction ", pr.pred.string(),
                " is ", p.width, "x", p.height, " but its ground truth ", pr.gt.string(), " is ",
                g.width, "x", g.height, " (WxH); predictions must be at full label resolution");
  const size_t n = g.data.size();
  for (size_t i = 0; i < n; ++i) ++h.joint[static_cast<size_t>(g.data[i]) * 256 + p.data[i]];
  std::array<bool, 256> seen_g{}, seen_p{};
  for (size_t i = 0; i < n; ++i) {
    seen_g[g.data[i]] = true;
    seen_p[p.data[i]] = true;
  }
  for (int v = 0; v < 256; ++v) {
    if (seen_g[v] && h.gt_file[v].empty()) h.gt_file[v] = pr.gt.string();
    if (seen_p[v] && h.pred_file[v].empty()) h.pred_file[v] = pr.pred.string();
  }
}

// Maps raw values to class indices (255 = ignore / miss); -1 = invalid value.
using Lut = std::array<int, 256>;

// Note [Cityscapes prediction format]
// trainIds files hold {0..18, 255}; labelIds files hold {0..33}. Values 19..33 therefore only occur
// in labelIds and 255 only in trainIds; values 0..18 are valid in both but mean different classes
// (7 = road as a labelId, traffic sign as a trainId), so guessing per file would silently
// mis-score files whose values are all <= 18. `auto` decides once per folder: any value in 19..33
// → labelIds; otherwise trainIds (a labelIds folder of street scenes without any sky, vegetation
// or car is not realistic); both 19..33 and 255 present → error asking for --pred-format.
PredFormat detect_cityscapes_format(const RawHistogram& h, std::string* note) {
  int high = -1;
  for (int v = 19; v <= 33 && high < 0; ++v)
    if (h.pred_count(v)) high = v;
  const bool has_255 = h.pred_count(255) > 0;
  if (high >= 0 && has_255)
    throw Error("eval: cannot tell the Cityscapes prediction format: value " +
                std::to_string(high) + " (labelIds only, in " + h.pred_file[high] +
                ") and 255 (trainIds only, in " + h.pred_file[255] +
                ") both occur; pass --pred-format trainIds|labelIds");
  if (high >= 0) {
    *note = "predictions read as labelIds (auto: value " + std::to_string(high) + " in " +
            h.pred_file[high] + ")";
    return PredFormat::label_ids;
  }
  *note = "predictions read as trainIds (auto: no value in 19..33 in any file" +
          std::string(has_255 ? ", 255 present" : "") + ")";
  return PredFormat::train_ids;
}

}  // namespace

PredFormat parse_pred_format(const std::string& s) {
  if (s == "auto") return PredFormat::auto_detect;
  if (s == "trainIds") return PredFormat::train_ids;
  if (s == "labelIds") return PredFormat::label_ids;
  throw Error("eval: --pred-format must be auto, trainIds or labelIds, got '" + s + "'");
}

const char* pred_format_name(PredFormat f) {
  switch (f) {
    case PredFormat::auto_detect:
      return "auto";
    case PredFormat::train_ids:
      return "trainIds";
    case PredFormat::label_ids:
      return "labelIds";
  }
  return "?";
}

std::string cityscapes_frame_id(const std::string& filename) {
  size_t i = 0;
  while (i < filename.size() && std::isalpha(static_cast<unsigned char>(filename[i]))) ++i;
  if (i == 0) return "";
  for (int part = 0; part < 2; ++part) {
    if (i >= filename.size() || filename[i] != '_') return "";
    ++i;
    for (int d = 0; d < 6; ++d, ++i)
      if (i >= filename.size() || !std::isdigit(static_cast<unsigned char>(filename[i]))) return "";
  }
  if (i < filename.size() && std::isdigit(static_cast<unsigned char>(filename[i]))) return "";
  return filename.substr(0, i);
}

FolderEvalResult evaluate_prediction_folder(const fs::path& pred_dir, const fs::path& gt_dir,
                                            const FolderEvalOptions& opts) {
  BFCN_CHECK_IO(fs::is_directory(pred_dir), "eval: prediction folder ", pred_dir.string(),
                " does not exist");
  BFCN_CHECK_IO(fs::is_directory(gt_dir), "eval: ground-truth folder ", gt_dir.string(),
                " does not exist");
  FolderEvalResult r;
  const EvalLabelSet ls = eval_label_set(opts.dataset);
  const int n_classes = static_cast<int>(ls.class_names.size());
  r.class_names = ls.class_names;
  std::vector<Pair> pairs = opts.dataset == EvalDataset::voc
                                ? voc_pairs(pred_dir, gt_dir, opts, &r.n_extra_predictions)
                                : cityscapes_pairs(pred_dir, gt_dir, opts, &r.n_extra_predictions);
  RawHistogram h;
  for (const auto& p : pairs) accumulate(h, p);
  r.n_images = static_cast<int>(pairs.size());

  Lut gt_lut, pred_lut;
  gt_lut.fill(-1);
  pred_lut.fill(-1);
  gt_lut[255] = 255;
  pred_lut[255] = 255;
  std::string gt_expect, pred_expect;
  if (opts.dataset == EvalDataset::voc) {
    for (int v = 0; v < n_classes; ++v) gt_lut[v] = pred_lut[v] = v;
    gt_expect = pred_expect = "VOC class indices 0..20 or 255";
    r.pred_format = PredFormat::train_ids;
    r.note = "VOC palette/grayscale class indices";
  } else {
    const auto& l2t = cityscapes_eval_label_to_train();
    gt_lut[255] = -1;  // gtFine labelIds never hold 255
    for (int v = 0; v < kCityscapesNumLabelIds; ++v) gt_lut[v] = l2t[v];
    gt_expect = "gtFine labelIds 0..33";
    r.pred_format = opts.pred_format;
    if (r.pred_format == PredFormat::auto_detect)
      r.pred_format = detect_cityscapes_format(h, &r.note);
    else
      r.note = std::string("predictions read as ") + pred_format_name(r.pred_format) +
               " (--pred-format)";
    if (r.pred_format == PredFormat::train_ids) {
      for (int v = 0; v < n_classes; ++v) pred_lut[v] = v;
      pred_expect = "trainIds 0..18 or 255";
    } else {
      pred_lut[255] = -1;
      for (int v = 0; v < kCityscapesNumLabelIds; ++v) pred_lut[v] = l2t[v];
      pred_expect = "labelIds 0..33";
    }
  }
  for (int v = 0; v < 256; ++v) {
    if (gt_lut[v] < 0 && h.gt_count(v))
      throw IoError("eval: ground truth " + h.gt_file[v] + " holds value " + std::to_string(v) +
                    ", expected " + gt_expect);
    if (pred_lut[v] < 0 && h.pred_count(v))
      throw IoError("eval: prediction " + h.pred_file[v] + " holds value " + std::to_string(v) +
                    ", expected " + pred_expect);
  }
  r.cm = ConfusionMatrix(n_classes, 255);
  for (int g = 0; g < 256; ++g) {
    if (gt_lut[g] < 0 || gt_lut[g] == 255) continue;
    for (int p = 0; p < 256; ++p) {
      const uint64_t c = h.joint[static_cast<size_t>(g * 256 + p)];
      if (c) r.cm.add_count(gt_lut[g], pred_lut[p], c);
    }
  }
  r.metrics = compute_metrics(r.cm);
  return r;
}

}  // namespace bfcn
