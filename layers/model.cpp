// Model factory: strict validation of the "model" JSON section, then backbone + head.
#include "layers/model.h"

#include <algorithm>

#include "core/error.h"

namespace bfcn {
namespace {

using nlohmann::json;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

const json& require_key(const json& j, const std::string& key, const std::string& path,
                        const std::vector<std::string>& required) {
  BFCN_CHECK_CONFIG(j.contains(key), path, ": missing key '", key, "' (required: ", join(required),
                    ")");
  return j.at(key);
}

std::string get_string(const json& v, const std::string& where) {
  BFCN_CHECK_CONFIG(v.is_string(), where, ": expected a string, but got ", v.dump());
  return v.get<std::string>();
}

int get_int(const json& v, const std::string& where, int lo, int hi) {
  BFCN_CHECK_CONFIG(v.is_number_integer(), where, ": expected an integer, but got ", v.dump());
  const int64_t x = v.get<int64_t>();
  BFCN_CHECK_CONFIG(x >= lo && x <= hi, where, ": expected an integer in [", lo, ", ", hi,
                    "], but got ", x);
  return static_cast<int>(x);
}

std::string one_of(const json& v, const std::string& where, const std::vector<std::string>& ok) {
  std::string s = get_string(v, where);
  BFCN_CHECK_CONFIG(std::find(ok.begin(), ok.end(), s) != ok.end(), where, ": expected one of ",
                    join(ok), ", but got '", s, "'");
  return s;
}

}  // namespace

json resolve_model_config(const json& cfg, const std::string& path) {
  BFCN_CHECK_CONFIG(cfg.is_object(), path, ": expected an object, but got ", cfg.dump());
  const std::vector<std::string> required = {"backbone", "head", "n_classes"};
  const std::vector<std::string> known = {"backbone",      "head",  "n_classes",
                                          "output_stride", "quant", "head_channels",
                                          "in_channels",   "name"};
  for (const auto& [key, value] : cfg.items())
    BFCN_CHECK_CONFIG(std::find(known.begin(), known.end(), key) != known.end(), path,
                      ": unknown key '", key, "' (known: ", join(known), ")");
  json r;
  r["backbone"] =
      one_of(require_key(cfg, "backbone", path, required), path + ".backbone", resnet_arch_names());
  r["head"] = one_of(require_key(cfg, "head", path, required), path + ".head", fcn_head_names());
  r["n_classes"] =
      get_int(require_key(cfg, "n_classes", path, required), path + ".n_classes", 1, 1 << 16);
  const bool dilated = r["head"] == "dilated";
  int os = dilated ? 8 : 32;
  if (cfg.contains("output_stride")) {
    os = get_int(cfg["output_stride"], path + ".output_stride", 1, 64);
    BFCN_CHECK_CONFIG(os == 8 || os == 16 || os == 32, path,
                      ".output_stride: expected one of 8, 16, 32, but got ", os);
  }
  r["output_stride"] = os;
  r["in_channels"] =
      cfg.contains("in_channels") ? get_int(cfg["in_channels"], path + ".in_channels", 1, 64) : 3;
  int hc = 0;
  if (cfg.contains("head_channels")) {
    hc = get_int(cfg["head_channels"], path + ".head_channels", 0, 1 << 16);
    BFCN_CHECK_CONFIG(
        dilated || hc == 0, path,
        ".head_channels: only the \"dilated\" head has hidden channels, but head is '",
        r["head"].get<std::string>(), "'");
  }
  r["head_channels"] = hc;
  if (cfg.contains("name")) r["name"] = get_string(cfg["name"], path + ".name");
  json q = cfg.contains("quant") ? cfg["quant"] : json::object();
  BFCN_CHECK_CONFIG(q.is_object(), path, ".quant: expected an object, but got ", q.dump());
  r["quant"] = QuantConfig::from_json(q, path + ".quant").to_json();
  return r;
}

SegmentationModel::SegmentationModel(json resolved, std::shared_ptr<ResNet> backbone,
                                     std::shared_ptr<FcnHead> head)
    : Module("SegmentationModel"),
      config_(std::move(resolved)),
      backbone_(std::move(backbone)),
      head_(std::move(head)) {
  // Flat names: the backbone's and head's layers become this module's direct children.
  for (const auto& [name, child] : backbone_->children()) register_module(name, child);
  for (const auto& [name, child] : head_->children()) register_module(name, child);
}

Var SegmentationModel::forward(const Var& x) {
  const int in_ch = config_["in_channels"].get<int>();
  BFCN_CHECK(x.value().ndim() == 4 && x.dim(1) == in_ch, "SegmentationModel: expected input [N,",
             in_ch, ",H,W], but got ", x.shape().str());
  std::vector<Var> feats = backbone_->features(x);
  return head_->forward_features(feats, static_cast<int>(x.dim(2)), static_cast<int>(x.dim(3)));
}

std::vector<Var> SegmentationModel::backbone_features(const Var& x) {
  return backbone_->features(x);
}

int SegmentationModel::n_classes() const { return config_["n_classes"].get<int>(); }
int SegmentationModel::output_stride() const { return config_["output_stride"].get<int>(); }

std::vector<LayerInfo> SegmentationModel::summary(int height, int width) const {
  BFCN_CHECK(height > 0 && width > 0, "summary: expected a positive input size, but got ", height,
             "x", width);
  std::vector<LayerInfo> rows;
  SummaryCursor c{Shape{1, config_["in_channels"].get<int>(), height, width}, 32, &rows};
  std::array<SummaryCursor, 4> feats = backbone_->summarize(c);
  head_->summarize(feats, height, width, rows);
  return rows;
}

std::shared_ptr<SegmentationModel> build_model(const json& model_cfg, uint64_t seed,
                                               const std::string& path) {
  json r = resolve_model_config(model_cfg, path);
  QuantConfig quant = QuantConfig::from_json(r["quant"], path + ".quant");
  Rng rng(seed);
  ResNetOptions bo;
  bo.arch = r["backbone"].get<std::string>();
  bo.output_stride = r["output_stride"].get<int>();
  bo.in_channels = r["in_channels"].get<int>();
  bo.quant = quant;
  auto backbone = std::make_shared<ResNet>(bo, rng);
  FcnHeadOptions ho;
  ho.kind = r["head"].get<std::string>();
  ho.n_classes = r["n_classes"].get<int>();
  ho.channels = backbone->channels();
  ho.head_channels = r["head_channels"].get<int>();
  ho.quant = quant;
  auto head = std::make_shared<FcnHead>(ho, rng);
  auto model = std::make_shared<SegmentationModel>(std::move(r), backbone, head);
  std::vector<std::string> names;
  for (const auto& [name, m] : model->named_modules())
    if (!name.empty()) names.push_back(name);
  quant.check_overrides_match(names);
  return model;
}

}  // namespace bfcn
