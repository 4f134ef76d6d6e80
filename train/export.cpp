// The .bfcn side of export: BfcnGraph implements layers/export_graph.h, the model describes itself
// to it (SegmentationModel::export_to walks the module tree), and the graph turns each step into
// runtime layers and blobs. Numerics (docs/format.md): for a bit conv with M-bit weights and K-bit
// inputs the kernel gives I = sum (2p - (2^M-1)) q, and conv = I * E/(2^K-1) (M = 1, E per layer
// or channel) or I / ((2^M-1)(2^K-1)) (M >= 2); BN y = conv*s + t folds into mul = scale*s,
// add = bias*s + t.
#include "train/export.h"

#include <cmath>
#include <map>
#include <string>

#include "autograd/quant.h"
#include "core/error.h"
#include "datasets/cityscapes.h"
#include "datasets/dataset.h"
#include "datasets/palette.h"
#include "datasets/voc.h"
#include "kernels/bitpack.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/conv.h"
#include "layers/export_graph.h"
#include "layers/model.h"
#include "layers/pool.h"
#include "train/checkpoint.h"

namespace bfcn {

namespace {

// BN as y = x*s + t (eval mode); identity when bn is null.
void bn_affine(const BatchNorm2d* bn, int c, std::vector<float>& s, std::vector<float>& t) {
  s.assign(size_t(c), 1.0f);
  t.assign(size_t(c), 0.0f);
  if (!bn) return;
  const float* g = bn->weight().value().f32();
  const float* b = bn->bias().value().f32();
  const float* mu = bn->running_mean().f32();
  const float* var = bn->running_var().f32();
  for (int i = 0; i < c; ++i) {
    s[size_t(i)] = g[i] / std::sqrt(var[i] + bn->eps());
    t[size_t(i)] = b[i] - mu[i] * s[size_t(i)];
  }
}

int w_bits_of(const Conv2d& conv) {
  const auto* q = dynamic_cast<const QConv2d*>(&conv);
  return q ? q->quant().w_bits : 32;
}

// Forward weight values (quantized for QConv2d) [K,C,kh,kw].
Tensor weight_values(const Conv2d& conv) {
  const auto* q = dynamic_cast<const QConv2d*>(&conv);
  if (!q || q->quant().w_bits >= 32) return conv.weight().value();
  return quantize_weight_value(conv.weight().value(), q->quant());
}

// Per output channel, the scale a_o of a w_scaled k >= 2 QConv2d's levels a_o*(2j/(2^k-1) - 1)
// (quantize_weight_scaled); 1 for DoReFa's levels 2j/(2^k-1) - 1.
std::vector<float> level_scale(const Conv2d& conv) {
  const auto* q = dynamic_cast<const QConv2d*>(&conv);
  const int oc = conv.options().out_channels;
  if (!q || !q->quant().w_scaled || q->quant().w_symmetric || q->quant().w_bits < 2 ||
      q->quant().w_bits >= 32)
    return std::vector<float>(size_t(oc), 1.0f);
  const Tensor a = scaled_weight_scale(conv.weight().value(), q->quant().w_bits);
  return std::vector<float>(a.f32(), a.f32() + oc);
}

// Packed M-bit weight planes of a bit conv [oc][m][row words] and the per-channel scale of the
// kernel's integer sum I: E/(2^K-1) for M = 1 (E = max |w| of the channel), a_o/((2^M-1)(2^K-1))
// otherwise (a_o = 1 for DoReFa's levels, level_scale for scaled ones).
std::vector<uint64_t> pack_bit_weights(const Conv2d& cv, int m, int a, std::vector<float>& scale) {
  const Conv2dOptions& o = cv.options();
  const int oc = o.out_channels, c = o.in_channels, taps = o.kernel * o.kernel;
  const Tensor w = weight_values(cv);
  const float* wv = w.f32();
  const int wmax = (1 << m) - 1, amax = (1 << a) - 1;
  const std::vector<float> wscale = level_scale(cv);
  std::vector<uint8_t> levels(size_t(oc) * taps * c);
  scale.assign(size_t(oc), 0.0f);
  for (int i = 0; i < oc; ++i) {
    float e = 0.0f;
    for (int ch = 0; ch < c; ++ch)
      for (int t = 0; t < taps; ++t) {
        const float v = wv[(size_t(i) * c + ch) * taps + t];
        uint8_t p;
        if (m == 1) {
          p = v >= 0.0f ? 1 : 0;  // sign(0) = +1
          e = std::max(e, std::abs(v));
        } else {
          p = uint8_t(std::lround((v / wscale[size_t(i)] + 1.0f) * float(wmax) / 2.0f));
        }
        levels[(size_t(i) * taps + t) * c + ch] = p;
      }
    scale[size_t(i)] = m == 1 ? e / float(amax) : wscale[size_t(i)] / float(wmax * amax);
  }
  std::vector<uint64_t> packed(size_t(oc) * m * bitconv_row_words(taps, c));
  pack_weights_q(levels.data(), oc, taps, c, m, packed.data());
  return packed;
}

// The runtime layers and blobs of a model, in execution order, with each tensor's storage.
class BfcnGraph : public ExportGraph {
 public:
  explicit BfcnGraph(std::vector<rt::BlobData>& blobs) : blobs_(blobs) {
    bits_["image"] = 0;
    chans_["image"] = 3;
  }
  const nlohmann::json& layers() const { return layers_; }

  int act_bits(const std::string& name, const Module& act) const override {
    if (const auto* q = dynamic_cast<const QuantAct*>(&act)) {
      BFCN_CHECK(q->a_bits() <= 4 || q->a_bits() == 32, "export: '", name,
                 "': the runtime packs 1..4-bit activations, got ", q->a_bits());
      return q->a_bits() >= 32 ? 0 : q->a_bits();
    }
    BFCN_CHECK(dynamic_cast<const ReLU*>(&act), "export: '", name, "' is not a QuantAct or ReLU");
    return 0;
  }

  float act_clip(const Module& act) const override {
    const auto* q = dynamic_cast<const QuantAct*>(&act);
    return q ? q->clip_value() : 1.0f;
  }

  // A conv reading c.in: bitconv when its weights have 1..4 bits and c.in is packed, else
  // conv_f32 (+ add + quant_act). The residual is added before the output quantizer (out_bits > 0,
  // clip out_clip) or the relu. A float output (out_bits 0) is in units of float_unit.
  void conv(const ExportConv& c) override {
    // Units of the pre-quantizer sum: the residual's when there is one (it is added as stored).
    const float sum_unit = !c.residual.empty() ? unit(c.residual)
                           : c.out_bits > 0    ? c.out_clip
                                               : c.float_unit;
    if (w_bits_of(*c.conv) > 4 || bits_.at(c.in) == 0)
      float_conv_step(c, sum_unit);
    else
      bit_conv_step(c, sum_unit);
  }

  void conv_f32(const ExportConv& c) override {
    BFCN_CHECK(c.residual.empty() && c.out_bits == 0, "export: layer '", c.name,
               "': a float conv step takes no residual or output quantizer");
    emit_conv_f32(c.name, *c.conv, c.bn, c.in, c.out, c.float_unit, c.relu);
  }

  // quant_act of `in` with clip alpha: codes of clip(x/alpha); affine when the scale is not 1.
  // A module's own quantizer: the layer is named after it.
  void quant_act(const std::string& name, const std::string& in, const std::string& out, int b,
                 float alpha) override {
    emit_quant_act(name, in, out, b, alpha, name);
  }

  void maxpool(const std::string& name, const MaxPool2d& pool, const std::string& in,
               const std::string& out) override {
    layers_.push_back({{"name", name},
                       {"type", "maxpool"},
                       {"inputs", {in}},
                       {"output", out},
                       {"kernel", pool.args().kernel_h},
                       {"stride", pool.args().stride_h},
                       {"pad", pool.args().pad_h}});
    set_tensor(out, 0, chans_.at(in), unit(in));
  }

  void add(const std::string& name, const std::string& a, const std::string& b,
           const std::string& out) override {
    layers_.push_back({{"name", name}, {"type", "add"}, {"inputs", {a, b}}, {"output", out}});
    set_tensor(out, 0, chans_.at(a), unit(a));
  }

  void upsample(const std::string& name, const std::string& in, const std::string& size_of,
                const std::string& out) override {
    layers_.push_back({{"name", name},
                       {"type", "upsample"},
                       {"inputs", {in}},
                       {"output", out},
                       {"size_of", size_of}});
    set_tensor(out, 0, chans_.at(in), unit(in));
  }

 private:
  // quant_act layer `name` whose codes are those of the training module `quantizer` (recorded in
  // the layer as "quantizer" so export --verify can compare the engines code by code).
  void emit_quant_act(const std::string& name, const std::string& in, const std::string& out, int b,
                      float alpha, const std::string& quantizer) {
    nlohmann::json j = {
        {"name", name}, {"type", "quant_act"}, {"inputs", {in}}, {"output", out}, {"bits", b}};
    if (!quantizer.empty()) j["quantizer"] = quantizer;
    const float m = unit(in) / alpha;
    if (m != 1.0f) {
      const int c = chans_.at(in);
      blobs_.push_back(rt::make_blob(name + ".mul", std::vector<float>(size_t(c), m)));
      blobs_.push_back(rt::make_blob(name + ".add", std::vector<float>(size_t(c), 0.0f)));
      j["affine"] = true;
    }
    layers_.push_back(j);
    set_tensor(out, b, chans_.at(in), alpha);
  }

  // Real value = stored value x unit: a packed tensor's dequantized codes q/(2^K-1) are in units of
  // its quantizer's clip (1 for DoReFa, the learned alpha otherwise); a float tensor's unit is
  // chosen by its producer (1 unless it only feeds a quantized residual sum).
  float unit(const std::string& t) const {
    const auto it = units_.find(t);
    return it == units_.end() ? 1.0f : it->second;
  }
  void set_tensor(const std::string& t, int bits, int chans, float unit) {
    bits_[t] = bits;
    chans_[t] = chans;
    units_[t] = unit;
  }

  static nlohmann::json conv_json(const std::string& name, const std::string& type,
                                  std::vector<std::string> ins, const std::string& out,
                                  const Conv2dOptions& o) {
    BFCN_CHECK(o.groups == 1, "export: layer '", name, "': grouped convs are not supported");
    return {{"name", name},          {"type", type},          {"inputs", ins},
            {"output", out},         {"in_c", o.in_channels}, {"out_c", o.out_channels},
            {"kernel", o.kernel},    {"stride", o.stride},    {"pad", o.padding},
            {"dilation", o.dilation}};
  }

  // conv (+ BN) -> conv_f32 on float (or dequantized) input; float output.
  // The output is in units of out_unit (weights scaled by unit(in)/out_unit); relu applies on it.
  void emit_conv_f32(const std::string& name, const Conv2d& conv, const BatchNorm2d* bn,
                     const std::string& in, const std::string& out, float out_unit, bool relu) {
    const Conv2dOptions& o = conv.options();
    const Tensor w = weight_values(conv);
    const int oc = o.out_channels, c = o.in_channels, k = o.kernel;
    std::vector<float> s, t;
    bn_affine(bn, oc, s, t);
    for (int i = 0; i < oc; ++i) {
      s[size_t(i)] /= out_unit;
      t[size_t(i)] /= out_unit;
    }
    std::vector<float> wt(size_t(oc) * k * k * c), bias(static_cast<size_t>(oc));
    const float* wv = w.f32();
    const float* cb = conv.bias().defined() ? conv.bias().value().f32() : nullptr;
    for (int i = 0; i < oc; ++i) {
      for (int ch = 0; ch < c; ++ch)
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx)
            wt[((size_t(i) * k + ky) * k + kx) * c + ch] =
                wv[((size_t(i) * c + ch) * k + ky) * k + kx] * s[size_t(i)] * unit(in);
      bias[size_t(i)] = (cb ? cb[i] : 0.0f) * s[size_t(i)] + t[size_t(i)];
    }
    blobs_.push_back(rt::make_blob(name + ".weight", wt));
    blobs_.push_back(rt::make_blob(name + ".bias", bias));
    nlohmann::json j = conv_json(name, "conv_f32", {in}, out, o);
    if (relu) j["relu"] = true;
    layers_.push_back(j);
    set_tensor(out, 0, oc, out_unit);
  }

  // conv_f32 in units of sum_unit, then the residual add and the output quantizer as layers.
  void float_conv_step(const ExportConv& c, float sum_unit) {
    const bool post = c.out_bits > 0 || !c.residual.empty();
    const std::string raw = post ? c.out + ".conv" : c.out;
    emit_conv_f32(c.name, *c.conv, c.bn, c.in, raw, sum_unit, c.relu && !post);
    std::string cur = raw;
    if (!c.residual.empty()) {
      const std::string sum = c.out_bits > 0 ? c.out + ".sum" : c.out;
      nlohmann::json j = {{"name", c.name + ".add"},
                          {"type", "add"},
                          {"inputs", {cur, c.residual}},
                          {"output", sum}};
      if (c.relu && c.out_bits == 0) j["relu"] = true;
      layers_.push_back(j);
      set_tensor(sum, 0, c.conv->options().out_channels, sum_unit);
      cur = sum;
    }
    if (c.out_bits > 0)
      emit_quant_act(c.name + ".act", cur, c.out, c.out_bits, c.out_clip, c.quantizer);
  }

  // bitconv with BN, the weight scale and the input/sum units folded into its per-channel
  // epilogue (I*mul + add + residual), in units of sum_unit; when the output quantizer's clip
  // differs from that unit (a packed identity residual of another clip), the sum is written as
  // float and a quant_act rescales it.
  void bit_conv_step(const ExportConv& c, float sum_unit) {
    const Conv2dOptions& o = c.conv->options();
    const int m = w_bits_of(*c.conv), a = bits_.at(c.in), oc = o.out_channels;
    std::vector<float> scale;
    const std::vector<uint64_t> packed = pack_bit_weights(*c.conv, m, a, scale);
    std::vector<float> s, t;
    bn_affine(c.bn, oc, s, t);
    const float* cb = c.conv->bias().defined() ? c.conv->bias().value().f32() : nullptr;
    const bool fused = c.out_bits > 0 && sum_unit == c.out_clip;
    std::vector<float> mul(static_cast<size_t>(oc)), add(static_cast<size_t>(oc));
    for (int i = 0; i < oc; ++i) {
      mul[size_t(i)] = scale[size_t(i)] * s[size_t(i)] * unit(c.in) / sum_unit;
      add[size_t(i)] = ((cb ? cb[i] : 0.0f) * s[size_t(i)] + t[size_t(i)]) / sum_unit;
    }
    blobs_.push_back(rt::make_blob(c.name + ".weight", packed));
    blobs_.push_back(rt::make_blob(c.name + ".mul", mul));
    blobs_.push_back(rt::make_blob(c.name + ".add", add));
    std::vector<std::string> ins{c.in};
    if (!c.residual.empty()) ins.push_back(c.residual);
    const std::string conv_out = c.out_bits > 0 && !fused ? c.out + ".sum" : c.out;
    nlohmann::json j = conv_json(c.name, "bitconv", ins, conv_out, o);
    j["w_bits"] = m;
    j["a_bits"] = a;
    j["out_bits"] = fused ? c.out_bits : 0;
    if (c.relu && c.out_bits == 0) j["relu"] = true;
    if (fused && !c.quantizer.empty()) j["quantizer"] = c.quantizer;
    layers_.push_back(j);
    set_tensor(conv_out, fused ? c.out_bits : 0, oc, sum_unit);
    if (c.out_bits > 0 && !fused)
      emit_quant_act(c.name + ".act", conv_out, c.out, c.out_bits, c.out_clip, c.quantizer);
  }

  nlohmann::json layers_ = nlohmann::json::array();
  std::vector<rt::BlobData>& blobs_;
  std::map<std::string, int> bits_;  // tensor name -> 0 float / K packed
  std::map<std::string, int> chans_;
  std::map<std::string, float> units_;
};

// Class names and palette of the header: the data section's dataset (VOC, Cityscapes), else
// "class<i>" and the VOC palette.
void class_names_and_palette(const DataConfig& data, int nc, std::vector<std::string>& names,
                             nlohmann::json& palette) {
  Palette pal;
  if (data.dataset == "voc") {
    names = voc_class_names();
    pal = voc_palette();
  } else if (data.dataset == "cityscapes") {
    names = cityscapes_class_names();
    pal = cityscapes_train_palette();
  } else {
    pal = voc_palette();
  }
  if (int(names.size()) != nc) {
    names.clear();
    for (int c = 0; c < nc; ++c) names.push_back("class" + std::to_string(c));
  }
  palette = nlohmann::json::array();
  for (int c = 0; c < nc && c < int(pal.size()); ++c)
    palette.push_back({pal[size_t(c)][0], pal[size_t(c)][1], pal[size_t(c)][2]});
}

}  // namespace

void build_export(const SegmentationModel& model, const nlohmann::json& config,
                  nlohmann::json& header, std::vector<rt::BlobData>& blobs) {
  const nlohmann::json& mc = model.config();
  const std::string backbone = mc.value("backbone", ""), head = mc.value("head", "");
  BFCN_CHECK(backbone == "resnet18" || backbone == "resnet34", "export: backbone '", backbone,
             "' is not supported by the runtime (resnet18, resnet34)");
  BFCN_CHECK(head == "fcn8s" || head == "fcn16s" || head == "fcn32s", "export: head '", head,
             "' is not supported by the runtime (fcn8s, fcn16s, fcn32s)");
  blobs.clear();
  BfcnGraph graph(blobs);
  const std::string output = model.export_to(graph, "image");

  // Input normalisation, class names and palette from the data section.
  DataConfig data;
  if (config.contains("data") && config["data"].is_object())
    data = DataConfig::from_json(config["data"], "checkpoint config");
  const int nc = model.n_classes();
  std::vector<std::string> names;
  nlohmann::json palette;
  class_names_and_palette(data, nc, names, palette);
  header = {{"format", "bfcn-model"},
            {"arch", head + "_" + backbone},
            {"num_classes", nc},
            {"class_names", names},
            {"palette", palette},
            {"input", {{"channels", 3}, {"mean", data.mean}, {"std", data.std}}},
            {"output", output},
            {"model_config", mc},
            {"layers", graph.layers()}};
}
ExportSummary export_checkpoint(const std::filesystem::path& ckpt,
                                const std::filesystem::path& out) {
  const LoadedModel lm = load_model_from_checkpoint(ckpt);
  nlohmann::json header;
  std::vector<rt::BlobData> blobs;
  build_export(*lm.model, lm.config, header, blobs);
  ExportSummary s;
  for (const auto& l : header["layers"]) {
    if (l["type"] == "bitconv") ++s.bit_layers;
    if (l["type"] == "conv_f32") ++s.fp32_layers;
  }
  rt::write_model_file(out, header, blobs);
  s.bytes = std::filesystem::file_size(out);
  for (const auto& [n, p] : lm.model->named_parameters())
    s.fp32_param_bytes += 4 * uint64_t(p.value().numel());
  for (const auto& [n, b] : lm.model->named_buffers())
    s.fp32_param_bytes += 4 * uint64_t(b.numel());
  return s;
}

}  // namespace bfcn
