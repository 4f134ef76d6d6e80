// Walks the model by its torchvision-style module names and emits the runtime graph in execution
// order. Numerics (docs/format.md): for a bit conv with M-bit weights and K-bit inputs the kernel
// gives I = sum (2p - (2^M-1)) q, and conv = I * E/(2^K-1) (M = 1, E per layer or channel) or
// I / ((2^M-1)(2^K-1)) (M >= 2); BN y = conv*s + t folds into mul = scale*s, add = bias*s + t.
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
#include "layers/model.h"
#include "layers/pool.h"
#include "layers/resnet.h"
#include "train/checkpoint.h"

namespace bfcn {

namespace {

struct Walker {
  std::map<std::string, Module*> mods;
  nlohmann::json layers = nlohmann::json::array();
  std::vector<rt::BlobData>& blobs;
  std::map<std::string, int> bits;  // tensor name -> 0 float / K packed
  std::map<std::string, int> chans;
  // Real value = stored value x unit: a packed tensor's dequantized codes q/(2^K-1) are in units of
  // its quantizer's clip (1 for DoReFa, the learned alpha otherwise); a float tensor's unit is
  // chosen by its producer (1 unless it only feeds a quantized residual sum).
  std::map<std::string, float> units;
  float unit(const std::string& t) const {
    const auto it = units.find(t);
    return it == units.end() ? 1.0f : it->second;
  }

  Module* find(const std::string& name) const {
    const auto it = mods.find(name);
    return it == mods.end() ? nullptr : it->second;
  }
  template <class T>
  T* get(const std::string& name) const {
    T* m = dynamic_cast<T*>(find(name));
    BFCN_CHECK(m, "export: layer '", name, "' is missing or not a ", typeid(T).name(),
               " (supported: resnet18/34 + fcn32s/16s/8s)");
    return m;
  }

  // BN as y = x*s + t (eval mode); identity when bn is null.
  static void bn_affine(const BatchNorm2d* bn, int c, std::vector<float>& s,
                        std::vector<float>& t) {
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

  static int w_bits_of(const Conv2d& conv) {
    const auto* q = dynamic_cast<const QConv2d*>(&conv);
    return q ? q->quant().w_bits : 32;
  }

  // Forward weight values (quantized for QConv2d) [K,C,kh,kw].
  static Tensor weight_values(const Conv2d& conv) {
    const auto* q = dynamic_cast<const QConv2d*>(&conv);
    if (!q || q->quant().w_bits >= 32) return conv.weight().value();
    return quantize_weight_value(conv.weight().value(), q->quant());
  }

  nlohmann::json conv_json(const std::string& name, const std::string& type,
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
  void conv_f32(const std::string& name, const Conv2d& conv, const BatchNorm2d* bn,
                const std::string& in, const std::string& out, float out_unit = 1.0f,
                bool relu = false) {
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
    blobs.push_back(rt::make_blob(name + ".weight", wt));
    blobs.push_back(rt::make_blob(name + ".bias", bias));
    nlohmann::json j = conv_json(name, "conv_f32", {in}, out, o);
    if (relu) j["relu"] = true;
    layers.push_back(j);
    bits[out] = 0;
    chans[out] = oc;
    units[out] = out_unit;
  }

  // quant_act of `in` with clip alpha: codes of clip(x/alpha); affine when the scale is not 1.
  void quant_act(const std::string& name, const std::string& in, const std::string& out, int b,
                 float alpha) {
    nlohmann::json j = {
        {"name", name}, {"type", "quant_act"}, {"inputs", {in}}, {"output", out}, {"bits", b}};
    const float m = unit(in) / alpha;
    if (m != 1.0f) {
      const int c = chans.at(in);
      blobs.push_back(rt::make_blob(name + ".mul", std::vector<float>(size_t(c), m)));
      blobs.push_back(rt::make_blob(name + ".add", std::vector<float>(size_t(c), 0.0f)));
      j["affine"] = true;
    }
    layers.push_back(j);
    bits[out] = b;
    chans[out] = chans.at(in);
    units[out] = alpha;
  }

  // A conv reading `in`: bitconv when its weights have 1..4 bits and `in` is packed, else conv_f32
  // (+ add + quant_act). residual is added before the output quantizer (out_bits > 0, clip
  // out_alpha) or the relu. A float output (out_bits 0) is in units of float_unit.
  void conv(const std::string& name, const Conv2d& cv, const BatchNorm2d* bn, const std::string& in,
            const std::string& residual, const std::string& out, int out_bits,
            float out_alpha = 1.0f, bool relu = false, float float_unit = 1.0f) {
    const Conv2dOptions& o = cv.options();
    const int m = w_bits_of(cv), a = bits.at(in);
    // Units of the pre-quantizer sum: the residual's when there is one (it is added as stored).
    const float sum_unit = !residual.empty() ? unit(residual)
                           : out_bits > 0    ? out_alpha
                                             : float_unit;
    if (m > 4 || a == 0) {
      const bool post = out_bits > 0 || !residual.empty();
      const std::string raw = post ? out + ".conv" : out;
      conv_f32(name, cv, bn, in, raw, sum_unit, relu && !post);
      std::string cur = raw;
      if (!residual.empty()) {
        const std::string sum = out_bits > 0 ? out + ".sum" : out;
        nlohmann::json j = {
            {"name", name + ".add"}, {"type", "add"}, {"inputs", {cur, residual}}, {"output", sum}};
        if (relu && out_bits == 0) j["relu"] = true;
        layers.push_back(j);
        bits[sum] = 0;
        chans[sum] = o.out_channels;
        units[sum] = sum_unit;
        cur = sum;
      }
      if (out_bits > 0) quant_act(name + ".act", cur, out, out_bits, out_alpha);
      return;
    }
    const int oc = o.out_channels, c = o.in_channels, k = o.kernel, taps = k * k;
    const Tensor w = weight_values(cv);
    const float* wv = w.f32();
    const int wmax = (1 << m) - 1, amax = (1 << a) - 1;
    std::vector<uint8_t> levels(size_t(oc) * taps * c);
    std::vector<float> scale(static_cast<size_t>(oc));
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
            p = uint8_t(std::lround((v + 1.0f) * float(wmax) / 2.0f));
          }
          levels[(size_t(i) * taps + t) * c + ch] = p;
        }
      scale[size_t(i)] = m == 1 ? e / float(amax) : 1.0f / float(wmax * amax);
    }
    std::vector<uint64_t> packed(size_t(oc) * m * bitconv_row_words(taps, c));
    pack_weights_q(levels.data(), oc, taps, c, m, packed.data());
    std::vector<float> s, t;
    bn_affine(bn, oc, s, t);
    const float* cb = cv.bias().defined() ? cv.bias().value().f32() : nullptr;
    // The epilogue computes (I*mul + add + residual) in units of sum_unit; when the output
    // quantizer's clip differs from that unit (a packed identity residual of another clip), the
    // sum is written as float and a quant_act rescales it.
    const bool fused = out_bits > 0 && sum_unit == out_alpha;
    std::vector<float> mul(static_cast<size_t>(oc)), add(static_cast<size_t>(oc));
    for (int i = 0; i < oc; ++i) {
      mul[size_t(i)] = scale[size_t(i)] * s[size_t(i)] * unit(in) / sum_unit;
      add[size_t(i)] = ((cb ? cb[i] : 0.0f) * s[size_t(i)] + t[size_t(i)]) / sum_unit;
    }
    blobs.push_back(rt::make_blob(name + ".weight", packed));
    blobs.push_back(rt::make_blob(name + ".mul", mul));
    blobs.push_back(rt::make_blob(name + ".add", add));
    std::vector<std::string> ins{in};
    if (!residual.empty()) ins.push_back(residual);
    const std::string conv_out = out_bits > 0 && !fused ? out + ".sum" : out;
    nlohmann::json j = conv_json(name, "bitconv", ins, conv_out, o);
    j["w_bits"] = m;
    j["a_bits"] = a;
    j["out_bits"] = fused ? out_bits : 0;
    if (relu && out_bits == 0) j["relu"] = true;
    layers.push_back(j);
    bits[conv_out] = fused ? out_bits : 0;
    chans[conv_out] = oc;
    units[conv_out] = sum_unit;
    if (out_bits > 0 && !fused) quant_act(name + ".act", conv_out, out, out_bits, out_alpha);
  }

  // The clip of an activation module: the learned alpha, 1 for DoReFa's fixed clip or a ReLU.
  float act_clip(const std::string& name) const {
    const auto* q = dynamic_cast<QuantAct*>(find(name));
    return q ? q->clip_value() : 1.0f;
  }

  // a_bits of an activation module: QuantAct k, or 0 for ReLU (FP).
  int act_bits(const std::string& name) const {
    Module* m = find(name);
    if (auto* q = dynamic_cast<QuantAct*>(m)) {
      BFCN_CHECK(q->a_bits() <= 4 || q->a_bits() == 32, "export: '", name,
                 "': the runtime packs 1..4-bit activations, got ", q->a_bits());
      return q->a_bits() >= 32 ? 0 : q->a_bits();
    }
    BFCN_CHECK(dynamic_cast<ReLU*>(m), "export: '", name, "' is not a QuantAct or ReLU");
    return 0;
  }
};

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
  Walker w{{}, nlohmann::json::array(), blobs, {{"image", 0}}, {{"image", 3}}, {}};
  for (const auto& [name, m] : model.named_modules()) w.mods[name] = m;

  // Stem: conv1+bn1 (FP32), maxpool, then act1 (maxpool commutes with the monotone quantizer).
  // With the fp residual policy act1 is a ReLU and the stem output stays float.
  const auto* conv1 = w.get<Conv2d>("conv1");
  const int a0 = w.act_bits("act1");
  w.conv_f32("conv1", *conv1, w.get<BatchNorm2d>("bn1"), "image", "conv1", 1.0f, a0 == 0);
  const auto* mp = w.get<MaxPool2d>("maxpool");
  w.layers.push_back({{"name", "maxpool"},
                      {"type", "maxpool"},
                      {"inputs", {"conv1"}},
                      {"output", a0 ? "pool" : "stem"},
                      {"kernel", mp->args().kernel_h},
                      {"stride", mp->args().stride_h},
                      {"pad", mp->args().pad_h}});
  w.chans[a0 ? "pool" : "stem"] = conv1->options().out_channels;
  w.bits[a0 ? "pool" : "stem"] = 0;
  if (a0) w.quant_act("act1", "pool", "stem", a0, w.act_clip("act1"));
  BFCN_CHECK(a0 || w.find("layer1.0.act_in"),
             "export: act1 is a ReLU (FP activations); the runtime needs quantized "
             "activations (a_bits 1..4)");

  std::string x = "stem";
  std::vector<std::string> feats;
  for (int stage = 1; stage <= 4; ++stage) {
    for (int blk = 0;; ++blk) {
      const std::string p = "layer" + std::to_string(stage) + "." + std::to_string(blk);
      if (!w.find(p)) break;
      const int a1 = w.act_bits(p + ".act1"), a2 = w.act_bits(p + ".act2");
      const bool fp_res = w.find(p + ".act_in") != nullptr;
      BFCN_CHECK(a1 > 0 && (a2 > 0 || fp_res), "export: block '", p,
                 "' has FP activations; the runtime needs a_bits 1..4");
      const auto* block = w.get<BasicBlock>(p);
      std::string xin = x;  // what conv1 (and a bit downsample) reads
      if (fp_res) {
        const int ai = w.act_bits(p + ".act_in");
        BFCN_CHECK(ai > 0, "export: block '", p, "': act_in must quantize (a_bits 1..4)");
        xin = p + ".in";
        w.quant_act(p + ".act_in", x, xin, ai, w.act_clip(p + ".act_in"));
      }
      w.conv(p + ".conv1", *w.get<Conv2d>(p + ".conv1"), w.get<BatchNorm2d>(p + ".bn1"), xin, "",
             p + ".conv1", a1, w.act_clip(p + ".act1"));
      std::string res = x;
      if (w.find(p + ".downsample")) {
        // The downsample output only feeds the sum: produce it in the sum's units.
        const float ds_unit = fp_res ? 1.0f : w.act_clip(p + ".act2");
        w.conv(p + ".downsample.0", *w.get<Conv2d>(p + ".downsample.0"),
               w.get<BatchNorm2d>(p + ".downsample.1"), block->downsample_reads_fp ? x : xin, "",
               p + ".downsample", 0, 1.0f, false, ds_unit);
        res = p + ".downsample";
      }
      w.conv(p + ".conv2", *w.get<Conv2d>(p + ".conv2"), w.get<BatchNorm2d>(p + ".bn2"),
             p + ".conv1", res, p, fp_res ? 0 : a2, w.act_clip(p + ".act2"), fp_res);
      x = p;
    }
    feats.push_back(x);
  }
  auto score = [&](const std::string& name, const std::string& in, const std::string& out) {
    w.conv_f32(name, *w.get<Conv2d>(name), nullptr, in, out);
  };
  auto push = [&](nlohmann::json j) { w.layers.push_back(std::move(j)); };
  score("score_layer4", feats[3], "score4");
  std::string s = "score4";
  if (head != "fcn32s") {
    score("score_layer3", feats[2], "score3");
    push({{"name", "up4"},
          {"type", "upsample"},
          {"inputs", {s}},
          {"output", "up4"},
          {"size_of", "score3"}});
    push({{"name", "fuse3"}, {"type", "add"}, {"inputs", {"up4", "score3"}}, {"output", "fuse3"}});
    s = "fuse3";
  }
  if (head == "fcn8s") {
    score("score_layer2", feats[1], "score2");
    push({{"name", "up3"},
          {"type", "upsample"},
          {"inputs", {s}},
          {"output", "up3"},
          {"size_of", "score2"}});
    push({{"name", "fuse2"}, {"type", "add"}, {"inputs", {"up3", "score2"}}, {"output", "fuse2"}});
    s = "fuse2";
  }
  push({{"name", "logits"},
        {"type", "upsample"},
        {"inputs", {s}},
        {"output", "logits"},
        {"size_of", "image"}});

  // Input normalisation, class names and palette from the data section.
  DataConfig data;
  if (config.contains("data") && config["data"].is_object())
    data = DataConfig::from_json(config["data"], "checkpoint config");
  const int nc = model.n_classes();
  std::vector<std::string> names;
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
  nlohmann::json palette = nlohmann::json::array();
  for (int c = 0; c < nc && c < int(pal.size()); ++c)
    palette.push_back({pal[size_t(c)][0], pal[size_t(c)][1], pal[size_t(c)][2]});
  header = {{"format", "bfcn-model"},
            {"arch", head + "_" + backbone},
            {"num_classes", nc},
            {"class_names", names},
            {"palette", palette},
            {"input", {{"channels", 3}, {"mean", data.mean}, {"std", data.std}}},
            {"output", "logits"},
            {"model_config", mc},
            {"layers", w.layers}};
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
