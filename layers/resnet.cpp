// ResNet backbones (torchvision layout) and the DoReFa pre-activation ResNet-18.
#include "layers/resnet.h"

#include "autograd/ops.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/flow.h"
#include "layers/pool.h"

namespace bfcn {
namespace {

// DoReFa's BN (tensorpack): eps 1e-4; torchvision: 1e-5. Momentum 0.1 (PyTorch convention) in both.
constexpr float kPreactBnEps = 1e-4f;

constexpr const char* kStageNames[4] = {"layer1", "layer2", "layer3", "layer4"};

Conv2dOptions conv_opts(int in, int out, int kernel, int stride, int pad, int dilation,
                        bool bias = false) {
  Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel = kernel;
  o.stride = stride;
  o.padding = pad;
  o.dilation = dilation;
  o.bias = bias;
  return o;
}

std::shared_ptr<Conv2d> conv_named(const std::string& name, const Conv2dOptions& o,
                                   const QuantConfig& q, Rng& rng) {
  return make_conv(o, q.spec_for(name), rng);
}

int a_bits_of(const QuantConfig& q, const std::string& conv_name) {
  return q.spec_for(conv_name).a_bits;
}

int act_bits(const Module& m) {
  if (const auto* qa = dynamic_cast<const QuantAct*>(&m)) return qa->a_bits();
  return 32;
}

// A child module as the type export expects (the constructors guarantee it; this names a break).
template <class T>
const T& export_as(const Module& m, const std::string& name) {
  const auto* t = dynamic_cast<const T*>(&m);
  BFCN_CHECK(t, "export: layer '", name, "' is a ", m.type(), ", not the expected type");
  return *t;
}

std::shared_ptr<ModuleChain> make_downsample(int in, int out, int stride, const std::string& prefix,
                                             const QuantConfig& q, Rng& rng) {
  auto ds = std::make_shared<ModuleChain>();
  ds->append(make_conv(conv_opts(in, out, 1, stride, 0, 1),
                       q.downsample_spec(prefix + "downsample.0"), rng));
  ds->append(std::make_shared<BatchNorm2d>(out));
  return ds;
}

}  // namespace

const std::vector<std::string>& resnet_arch_names() {
  static const std::vector<std::string> names = {"resnet18", "resnet34", "resnet50",
                                                 "resnet18_preact"};
  return names;
}

std::shared_ptr<Conv2d> make_conv(const Conv2dOptions& o, const QuantSpec& q, Rng& rng) {
  if (q.w_bits >= 32 && q.g_bits >= 32) return std::make_shared<Conv2d>(o, rng);
  return std::make_shared<QConv2d>(o, q, rng);
}

std::shared_ptr<Module> make_act(int a_bits, bool learned_clip) {
  if (a_bits >= 32) return std::make_shared<ReLU>();
  return std::make_shared<QuantAct>(a_bits, 32, 0, learned_clip);
}

void ModuleChain::append(std::shared_ptr<Module> m) {
  register_module(std::to_string(children().size()), std::move(m));
}

Var ModuleChain::forward(const Var& x) {
  Var y = x;
  for (const auto& [name, m] : children()) y = m->forward(y);
  return y;
}

// ---- BasicBlock ----

BasicBlock::BasicBlock(int in, int planes, int stride, int dilation, const std::string& prefix,
                       const QuantConfig& q, Rng& rng)
    : ResBlock("BasicBlock") {
  const bool lc = q.learned_clip(), fp_res = q.residual_fp();
  if (fp_res) act_in = register_module("act_in", make_act(a_bits_of(q, prefix + "conv1"), lc));
  conv1 = register_module(
      "conv1",
      conv_named(prefix + "conv1", conv_opts(in, planes, 3, stride, dilation, dilation), q, rng));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  act1 = register_module("act1", make_act(a_bits_of(q, prefix + "conv1"), lc));
  conv2 = register_module(
      "conv2",
      conv_named(prefix + "conv2", conv_opts(planes, planes, 3, 1, dilation, dilation), q, rng));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  if (stride != 1 || in != planes) {
    downsample = register_module("downsample", make_downsample(in, planes, stride, prefix, q, rng));
    downsample_reads_fp = fp_res && q.downsample_spec(prefix + "downsample.0").w_bits > 4;
  }
  act2 = register_module("act2", make_act(fp_res ? 32 : a_bits_of(q, prefix + "conv2"), lc));
}

template <class Flow>
typename Flow::Value BasicBlock::flow(const Flow& f, const typename Flow::Value& x) const {
  const auto xq = act_in ? f.layer("act_in", *act_in, x) : x;
  auto out = f.layer("act1", *act1, f.layer("bn1", *bn1, f.layer("conv1", *conv1, xq)));
  out = f.layer("bn2", *bn2, f.layer("conv2", *conv2, out));
  const auto identity =
      downsample ? f.layer("downsample", *downsample, downsample_reads_fp ? x : xq) : x;
  return f.layer("act2", *act2, f.add("add", out, identity));  // residual add in FP
}

Var BasicBlock::forward(const Var& x) { return flow(ForwardFlow{}, x); }

void BasicBlock::summarize(const std::string& prefix, SummaryCursor& c) const {
  c = flow(SummaryFlow{prefix}, c);
}

// ---- Bottleneck ----

Bottleneck::Bottleneck(int in, int planes, int stride, int dilation, const std::string& prefix,
                       const QuantConfig& q, Rng& rng)
    : ResBlock("Bottleneck") {
  const int out = planes * 4;
  conv1 = register_module("conv1",
                          conv_named(prefix + "conv1", conv_opts(in, planes, 1, 1, 0, 1), q, rng));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(planes));
  act1 = register_module("act1", make_act(a_bits_of(q, prefix + "conv1")));
  conv2 = register_module(
      "conv2", conv_named(prefix + "conv2",
                          conv_opts(planes, planes, 3, stride, dilation, dilation), q, rng));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes));
  act2 = register_module("act2", make_act(a_bits_of(q, prefix + "conv2")));
  conv3 = register_module("conv3",
                          conv_named(prefix + "conv3", conv_opts(planes, out, 1, 1, 0, 1), q, rng));
  bn3 = register_module("bn3", std::make_shared<BatchNorm2d>(out));
  if (stride != 1 || in != out)
    downsample = register_module("downsample", make_downsample(in, out, stride, prefix, q, rng));
  act3 = register_module("act3", make_act(a_bits_of(q, prefix + "conv3")));
}

template <class Flow>
typename Flow::Value Bottleneck::flow(const Flow& f, const typename Flow::Value& x) const {
  auto out = f.layer("act1", *act1, f.layer("bn1", *bn1, f.layer("conv1", *conv1, x)));
  out = f.layer("act2", *act2, f.layer("bn2", *bn2, f.layer("conv2", *conv2, out)));
  out = f.layer("bn3", *bn3, f.layer("conv3", *conv3, out));
  const auto identity = downsample ? f.layer("downsample", *downsample, x) : x;
  return f.layer("act3", *act3, f.add("add", out, identity));
}

Var Bottleneck::forward(const Var& x) { return flow(ForwardFlow{}, x); }

void Bottleneck::summarize(const std::string& prefix, SummaryCursor& c) const {
  c = flow(SummaryFlow{prefix}, c);
}

// ---- PreactBlock ----

PreactBlock::PreactBlock(int in, int planes, int stride, int dilation, bool project,
                         const std::string& prefix, const QuantConfig& q, Rng& rng)
    : ResBlock("PreactBlock") {
  BFCN_CHECK(project || (stride == 1 && in == planes), "PreactBlock '", prefix,
             "': a stride or channel change needs the projection shortcut");
  if (stride != 1)
    avgpool =
        register_module("avgpool", std::make_shared<AvgPool2d>(Pool2dArgs::square(stride, stride)));
  bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(in, kPreactBnEps));
  act1 = register_module("act1", make_act(a_bits_of(q, prefix + "conv1")));
  if (project)
    shortcut = register_module(
        "shortcut", conv_named(prefix + "shortcut", conv_opts(in, planes, 1, 1, 0, 1), q, rng));
  conv1 = register_module(
      "conv1",
      conv_named(prefix + "conv1", conv_opts(in, planes, 3, 1, dilation, dilation), q, rng));
  bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(planes, kPreactBnEps));
  act2 = register_module("act2", make_act(a_bits_of(q, prefix + "conv2")));
  conv2 = register_module(
      "conv2",
      conv_named(prefix + "conv2", conv_opts(planes, planes, 3, 1, dilation, dilation), q, rng));
}

template <class Flow>
typename Flow::Value PreactBlock::flow(const Flow& f, const typename Flow::Value& x) const {
  const auto xs = avgpool ? f.layer("avgpool", *avgpool, x) : x;
  const auto a = f.layer("act1", *act1, f.layer("bn1", *bn1, xs));
  const auto res = shortcut ? f.layer("shortcut", *shortcut, a) : xs;
  auto out = f.layer("act2", *act2, f.layer("bn2", *bn2, f.layer("conv1", *conv1, a)));
  out = f.layer("conv2", *conv2, out);
  return f.add("add", out, res);
}

Var PreactBlock::forward(const Var& x) { return flow(ForwardFlow{}, x); }

void PreactBlock::summarize(const std::string& prefix, SummaryCursor& c) const {
  c = flow(SummaryFlow{prefix}, c);
}

// ---- export (layers/export_graph.h) ----

std::string ResBlock::export_to(ExportGraph&, const std::string& name, const std::string&) const {
  BFCN_CHECK(false, "export: block '", name, "' is a ", type(),
             ", which the runtime cannot run (BasicBlock only)");
  return {};
}

// conv1 (+bn1, act1 fused), the downsample in the sum's units, then conv2 with bn2, the residual
// and act2 fused; with the fp residual policy act_in quantizes the input first and the output
// stays float (relu).
std::string BasicBlock::export_to(ExportGraph& g, const std::string& name,
                                  const std::string& x) const {
  const int a1 = g.act_bits(name + ".act1", *act1), a2 = g.act_bits(name + ".act2", *act2);
  const bool fp_res = act_in != nullptr;
  BFCN_CHECK(a1 > 0 && (a2 > 0 || fp_res), "export: block '", name,
             "' has FP activations; the runtime needs a_bits 1..4");
  std::string xin = x;  // what conv1 (and a bit downsample) reads
  if (fp_res) {
    const int ai = g.act_bits(name + ".act_in", *act_in);
    BFCN_CHECK(ai > 0, "export: block '", name, "': act_in must quantize (a_bits 1..4)");
    xin = name + ".in";
    g.quant_act(name + ".act_in", x, xin, ai, g.act_clip(*act_in));
  }
  const std::string c1 = name + ".conv1";
  g.conv({.name = c1,
          .conv = conv1.get(),
          .bn = &export_as<BatchNorm2d>(*bn1, name + ".bn1"),
          .in = xin,
          .out = c1,
          .out_bits = a1,
          .out_clip = g.act_clip(*act1),
          .quantizer = name + ".act1"});
  std::string res = x;
  if (downsample) {
    // The downsample output only feeds the sum: produce it in the sum's units.
    const auto& [conv_name, ds_conv] = downsample->children().at(0);
    const auto& [bn_name, ds_bn] = downsample->children().at(1);
    res = name + ".downsample";
    g.conv({.name = res + "." + conv_name,
            .conv = &export_as<Conv2d>(*ds_conv, res + "." + conv_name),
            .bn = &export_as<BatchNorm2d>(*ds_bn, res + "." + bn_name),
            .in = downsample_reads_fp ? x : xin,
            .out = res,
            .float_unit = fp_res ? 1.0f : g.act_clip(*act2)});
  }
  g.conv({.name = name + ".conv2",
          .conv = conv2.get(),
          .bn = &export_as<BatchNorm2d>(*bn2, name + ".bn2"),
          .in = c1,
          .residual = res,
          .out = name,
          .out_bits = fp_res ? 0 : a2,
          .out_clip = g.act_clip(*act2),
          .quantizer = fp_res ? "" : name + ".act2",
          .relu = fp_res});
  return name;
}

// ---- rows for any module ----

SummaryCursor SummaryFlow::layer(std::string_view name, const Module& m, SummaryCursor c) const {
  summarize_module(prefix + std::string(name), m, c);
  return c;
}

void summarize_module(const std::string& name, const Module& m, SummaryCursor& c) {
  if (const auto* conv = dynamic_cast<const Conv2d*>(&m)) {
    summarize_conv(name, *conv, c);
  } else if (const auto* bn = dynamic_cast<const BatchNorm2d*>(&m)) {
    summarize_bn(name, *bn, c);
  } else if (dynamic_cast<const ReLU*>(&m) || dynamic_cast<const QuantAct*>(&m)) {
    summarize_act(name, act_bits(m), c);
  } else if (const auto* mp = dynamic_cast<const MaxPool2d*>(&m)) {
    summarize_pool(name, "MaxPool2d", mp->args().kernel_h, mp->args().stride_h, mp->args().pad_h,
                   c);
  } else if (const auto* ap = dynamic_cast<const AvgPool2d*>(&m)) {
    summarize_pool(name, "AvgPool2d", ap->args().kernel_h, ap->args().stride_h, ap->args().pad_h,
                   c);
  } else if (const auto* blk = dynamic_cast<const ResBlock*>(&m)) {
    blk->summarize(name + ".", c);
  } else if (dynamic_cast<const ModuleChain*>(&m)) {
    for (const auto& [child, mod] : m.children()) summarize_module(name + "." + child, *mod, c);
  } else {
    BFCN_CHECK(false, "summary: layer '", name, "': no summary rule for module type '", m.type(),
               "'");
  }
}

// ---- ResNet ----

ResNet::ResNet(const ResNetOptions& o, Rng& rng) : Module("ResNet"), opt_(o) {
  const QuantConfig& q = o.quant;
  int n_blocks[4];
  bool bottleneck = false;
  if (o.arch == "resnet18" || o.arch == "resnet18_preact") {
    n_blocks[0] = n_blocks[1] = n_blocks[2] = n_blocks[3] = 2;
  } else if (o.arch == "resnet34" || o.arch == "resnet50") {
    n_blocks[0] = 3, n_blocks[1] = 4, n_blocks[2] = 6, n_blocks[3] = 3;
    bottleneck = o.arch == "resnet50";
  } else {
    BFCN_CHECK_CONFIG(false, "ResNet: arch must be one of resnet18, resnet34, resnet50, ",
                      "resnet18_preact, but got '", o.arch, "'");
  }
  BFCN_CHECK_CONFIG(o.output_stride == 32 || o.output_stride == 16 || o.output_stride == 8,
                    "ResNet: output_stride must be 8, 16 or 32, but got ", o.output_stride);
  preact_ = o.arch == "resnet18_preact";

  // Stem. The stem conv's weights stay FP with first_last_fp; its activation still takes the
  // configured a_bits so layer1 reads quantized activations.
  QuantSpec stem = q.spec_for("conv1");
  if (q.first_last_fp()) stem.w_bits = stem.g_bits = 32;
  conv1_ = register_module("conv1",
                           make_conv(conv_opts(o.in_channels, 64, 7, 2, 3, 1, preact_), stem, rng));
  if (!preact_) {
    bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(64));
    // With the fp residual policy the stem output is the FP stream (layer1.0.act_in quantizes).
    act1_ = register_module("act1", make_act(q.residual_fp() ? 32 : stem.a_bits, q.learned_clip()));
  }
  maxpool_ = register_module("maxpool", std::make_shared<MaxPool2d>(Pool2dArgs::square(3, 2, 1)));

  // Stages, torchvision's _make_layer: a dilated stage turns its stride into dilation; its first
  // block keeps the previous dilation.
  const int planes[4] = {64, 128, 256, 512};
  const int strides[4] = {1, 2, 2, 2};
  const bool dilate[4] = {false, false, o.output_stride <= 8, o.output_stride <= 16};
  const int expansion = bottleneck ? 4 : 1;
  int in = 64, dilation = 1;
  for (int s = 0; s < 4; ++s) {
    int stride = strides[s];
    const int prev_dilation = dilation;
    if (dilate[s]) {
      dilation *= stride;
      stride = 1;
    }
    auto layer = std::make_shared<ModuleChain>();
    const std::string lname = kStageNames[s];
    for (int b = 0; b < n_blocks[s]; ++b) {
      const std::string prefix = lname + "." + std::to_string(b) + ".";
      const int bs = b == 0 ? stride : 1;
      const int bd = b == 0 ? prev_dilation : dilation;
      if (preact_)
        layer->append(std::make_shared<PreactBlock>(in, planes[s], bs, bd, b == 0, prefix, q, rng));
      else if (bottleneck)
        layer->append(std::make_shared<Bottleneck>(in, planes[s], bs, bd, prefix, q, rng));
      else
        layer->append(std::make_shared<BasicBlock>(in, planes[s], bs, bd, prefix, q, rng));
      in = planes[s] * expansion;
    }
    layers_[s] = register_module(lname, layer);
    channels_[s] = in;
  }
  if (preact_) {
    bn_final_ = register_module("bn_final", std::make_shared<BatchNorm2d>(in, kPreactBnEps));
    act_final_ = register_module("act_final", make_act(32));
  }
}

template <class Flow>
std::array<typename Flow::Value, 4> ResNet::flow(const Flow& f,
                                                 const typename Flow::Value& x) const {
  auto y = f.layer("conv1", *conv1_, x);
  if (!preact_) y = f.layer("act1", *act1_, f.layer("bn1", *bn1_, y));
  y = f.layer("maxpool", *maxpool_, y);
  std::array<typename Flow::Value, 4> feats;
  for (int s = 0; s < 4; ++s) feats[s] = y = f.layer(kStageNames[s], *layers_[s], y);
  if (preact_)
    feats[3] = f.layer("act_final", *act_final_, f.layer("bn_final", *bn_final_, feats[3]));
  return feats;
}

std::vector<Var> ResNet::features(const Var& x) {
  const std::array<Var, 4> feats = flow(ForwardFlow{}, x);
  return {feats.begin(), feats.end()};
}

Var ResNet::forward(const Var& x) { return features(x).back(); }

std::array<SummaryCursor, 4> ResNet::summarize(SummaryCursor& c) const {
  std::array<SummaryCursor, 4> feats = flow(SummaryFlow{}, c);
  c = feats[3];
  return feats;
}

std::array<std::string, 4> ResNet::export_to(ExportGraph& g, const std::string& image) const {
  BFCN_CHECK(!preact_, "export: backbone '", opt_.arch,
             "' is not supported by the runtime (resnet18, resnet34)");
  // Stem: conv1+bn1 (FP32), maxpool, then act1 (maxpool commutes with the monotone quantizer).
  // With the fp residual policy act1 is a ReLU and the stem output stays float.
  const int a0 = g.act_bits("act1", *act1_);
  g.conv_f32({.name = "conv1",
              .conv = conv1_.get(),
              .bn = &export_as<BatchNorm2d>(*bn1_, "bn1"),
              .in = image,
              .out = "conv1",
              .relu = a0 == 0});
  g.maxpool("maxpool", export_as<MaxPool2d>(*maxpool_, "maxpool"), "conv1", a0 ? "pool" : "stem");
  if (a0) g.quant_act("act1", "pool", "stem", a0, g.act_clip(*act1_));
  BFCN_CHECK(a0 || opt_.quant.residual_fp(),
             "export: act1 is a ReLU (FP activations); the runtime needs quantized "
             "activations (a_bits 1..4)");
  std::string x = "stem";
  std::array<std::string, 4> feats;
  for (int s = 0; s < 4; ++s) {
    for (const auto& [index, block] : layers_[s]->children()) {
      const std::string name = std::string(kStageNames[s]) + "." + index;
      x = export_as<ResBlock>(*block, name).export_to(g, name, x);
    }
    feats[size_t(s)] = x;
  }
  return feats;
}

}  // namespace bfcn
