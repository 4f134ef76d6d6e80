// Model factory: strict validation of the "model" JSON section, then backbone + head.
#include "layers/model.h"

#include <algorithm>

#include "core/error.h"
#include "core/json_read.h"

namespace bfcn {
using nlohmann::json;

json resolve_model_config(const json& cfg, const std::string& path) {
  const JsonObject m(cfg, path);
  m.check_keys({"backbone", "head", "n_classes", "output_stride", "quant", "head_channels",
                "in_channels", "name"});
  const std::vector<std::string> required = {"backbone", "head", "n_classes"};
  for (const auto& key : required) m.require(key, required);
  json r;
  r["backbone"] = m.get_choice("backbone", resnet_arch_names());
  r["head"] = m.get_choice("head", fcn_head_names());
  r["n_classes"] = m.get_int("n_classes", 1, 1 << 16);
  const bool dilated = r["head"] == "dilated";
  const int os = m.get_int("output_stride", 1, 64, dilated ? 8 : 32);
  if (os != 8 && os != 16 && os != 32)
    m.fail("output_stride", "expected one of 8, 16, 32, but got " + std::to_string(os));
  r["output_stride"] = os;
  r["in_channels"] = m.get_int("in_channels", 1, 64, 3);
  const int hc = m.get_int("head_channels", 0, 1 << 16, 0);
  if (!dilated && hc != 0)
    m.fail("head_channels", "only the \"dilated\" head has hidden channels, but head is '" +
                                r["head"].get<std::string>() + "'");
  r["head_channels"] = hc;
  if (m.has("name")) r["name"] = m.get_string("name");
  const json q = m.has("quant") ? m.get_object("quant").value() : json::object();
  r["quant"] = QuantConfig::from_json(q, m.path_of("quant")).to_json();
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

std::string SegmentationModel::export_to(ExportGraph& g, const std::string& image) const {
  return head_->export_to(g, backbone_->export_to(g, image), image);
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
