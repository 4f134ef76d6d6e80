// FCN-32s/16s/8s and dilated heads: score convs, bilinear upsampling and skip sums.
#include "layers/fcn.h"

#include <cmath>
#include <tuple>

#include "autograd/ops.h"
#include "layers/batch_norm.h"
#include "layers/flow.h"
#include "layers/init.h"

namespace bfcn {
namespace {

// The spec of a head conv; `last` convs (the ones producing class scores) are FP with
// first_last_fp.
QuantSpec head_spec(const QuantConfig& q, const std::string& name, bool last) {
  QuantSpec s = q.spec_for(name);
  if (last && q.first_last_fp()) s.w_bits = s.g_bits = 32;
  if (last && q.score_policy() == "w8") {  // symmetric 8-bit score/skip weights (scale kept)
    s.w_bits = 8;
    s.w_symmetric = true;
  }
  return s;
}

std::shared_ptr<Conv2d> score_conv(int in, int n_classes, const std::string& name,
                                   const QuantConfig& q, Rng& rng) {
  Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = n_classes;
  o.kernel = 1;
  o.bias = true;
  auto conv = make_conv(o, head_spec(q, name, true), rng);
  // PyTorch's default nn.Conv2d init (torchvision's FCN score convs are outside ResNet's kaiming
  // fan_out loop): U(+-1/sqrt(fan_in)). Kaiming fan_out with fan_out = n_classes gives logits of
  // std ~10 and an initial loss far above ln(n_classes).
  Tensor w = conv->weight().value();
  uniform_init(w, 1.0f / std::sqrt(static_cast<float>(in)), rng);
  return conv;
}

}  // namespace

const std::vector<std::string>& fcn_head_names() {
  static const std::vector<std::string> names = {"fcn32s", "fcn16s", "fcn8s", "dilated"};
  return names;
}

FcnHead::FcnHead(const FcnHeadOptions& o, Rng& rng) : Module("FcnHead"), opt_(o) {
  const QuantConfig& q = o.quant;
  BFCN_CHECK_CONFIG(o.n_classes >= 1, "FcnHead: n_classes must be >= 1, but got ", o.n_classes);
  if (o.kind == "dilated") {
    if (o.head_channels <= 0) {
      classifier = register_module("classifier",
                                   score_conv(o.channels[3], o.n_classes, "classifier", q, rng));
    } else {
      auto chain = std::make_shared<ModuleChain>();
      Conv2dOptions c3;
      c3.in_channels = o.channels[3];
      c3.out_channels = o.head_channels;
      c3.kernel = 3;
      c3.padding = 1;
      chain->append(make_conv(c3, head_spec(q, "classifier.0", false), rng));
      chain->append(std::make_shared<BatchNorm2d>(o.head_channels));
      chain->append(make_act(q.spec_for("classifier.0").a_bits));
      chain->append(score_conv(o.head_channels, o.n_classes, "classifier.3", q, rng));
      classifier = register_module("classifier", chain);
    }
  } else if (o.kind == "fcn32s" || o.kind == "fcn16s" || o.kind == "fcn8s") {
    score_layer4 = register_module("score_layer4",
                                   score_conv(o.channels[3], o.n_classes, "score_layer4", q, rng));
    if (o.kind != "fcn32s")
      score_layer3 = register_module(
          "score_layer3", score_conv(o.channels[2], o.n_classes, "score_layer3", q, rng));
    if (o.kind == "fcn8s")
      score_layer2 = register_module(
          "score_layer2", score_conv(o.channels[1], o.n_classes, "score_layer2", q, rng));
  } else {
    BFCN_CHECK_CONFIG(false,
                      "FcnHead: head must be one of fcn32s, fcn16s, fcn8s, dilated, but got '",
                      o.kind, "'");
  }
}

Var FcnHead::forward(const Var&) {
  BFCN_CHECK(false, "FcnHead: forward() needs the layer1..layer4 features; call forward_features");
  return {};
}

// The head's data flow, the one description behind forward_features() and summarize().
template <class Flow>
typename Flow::Value FcnHead::flow(const Flow& f, const std::array<typename Flow::Value, 4>& feats,
                                   int out_h, int out_w) const {
  if (classifier)
    return f.resize("upsample", f.layer("classifier", *classifier, feats[3]), out_h, out_w);
  auto s = f.layer("score_layer4", *score_layer4, feats[3]);
  // The coarser score map upsampled to the finer one's size and summed: layer3 [N,K,H/16,W/16],
  // then layer2 [N,K,H/8,W/8] at output stride 32.
  const std::tuple<const char*, Conv2d*, int> skips[2] = {{"score_layer3", score_layer3.get(), 2},
                                                          {"score_layer2", score_layer2.get(), 1}};
  for (const auto& [name, conv, idx] : skips) {
    if (!conv) continue;
    const auto sk = f.layer(name, *conv, feats[idx]);
    s = f.add(std::string("fuse_") + name,
              f.resize(std::string("up_to_") + name, s, f.height(sk), f.width(sk)), sk);
  }
  return f.resize("upsample", s, out_h, out_w);
}

Var FcnHead::forward_features(const std::vector<Var>& feats, int out_h, int out_w) {
  BFCN_CHECK(feats.size() == 4, "FcnHead: expected 4 feature maps (layer1..layer4), but got ",
             feats.size());
  return flow(ForwardFlow{}, std::array<Var, 4>{feats[0], feats[1], feats[2], feats[3]}, out_h,
              out_w);
}

// Score convs read the features as float; the coarser score map is upsampled to the finer one's
// size and summed (score4, up4 + score3 = fuse3, up3 + score2 = fuse2), then to the image size.
std::string FcnHead::export_to(ExportGraph& g, const std::array<std::string, 4>& feats,
                               const std::string& image) const {
  BFCN_CHECK(score_layer4, "export: head '", opt_.kind,
             "' is not supported by the runtime (fcn8s, fcn16s, fcn32s)");
  g.conv_f32({.name = "score_layer4", .conv = score_layer4.get(), .in = feats[3], .out = "score4"});
  std::string s = "score4";
  const std::pair<Conv2d*, int> skips[2] = {{score_layer3.get(), 3}, {score_layer2.get(), 2}};
  for (const auto& [conv, layer] : skips) {
    if (!conv) continue;
    const std::string n = std::to_string(layer), score = "score" + n,
                      up = "up" + std::to_string(layer + 1), fuse = "fuse" + n;
    g.conv_f32(
        {.name = "score_layer" + n, .conv = conv, .in = feats[size_t(layer - 1)], .out = score});
    g.upsample(up, s, score, up);
    g.add(fuse, up, score, fuse);
    s = fuse;
  }
  g.upsample("logits", s, image, "logits");
  return "logits";
}

void FcnHead::summarize(const std::array<SummaryCursor, 4>& feats, int out_h, int out_w,
                        std::vector<LayerInfo>& rows) const {
  std::array<SummaryCursor, 4> in = feats;
  for (SummaryCursor& c : in) c.rows = &rows;
  flow(SummaryFlow{}, in, out_h, out_w);
}

}  // namespace bfcn
