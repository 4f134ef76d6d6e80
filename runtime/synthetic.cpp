// Builds the random FCN-8s graph layer by layer with the same naming as export (train/export.cpp).
#include "runtime/synthetic.h"

#include <cmath>
#include <random>
#include <string>

#include "kernels/bitpack.h"

namespace bfcn::rt {

namespace {

struct Builder {
  const SyntheticOptions& o;
  nlohmann::json layers = nlohmann::json::array();
  std::vector<BlobData>& blobs;
  std::mt19937_64 gen;

  nlohmann::json conv_json(const std::string& name, const std::string& type,
                           std::vector<std::string> ins, const std::string& out, int in_c,
                           int out_c, int k, int s, int p) {
    return {{"name", name},   {"type", type}, {"inputs", ins}, {"output", out}, {"in_c", in_c},
            {"out_c", out_c}, {"kernel", k},  {"stride", s},   {"pad", p},      {"dilation", 1}};
  }

  void conv_f32(const std::string& name, const std::string& in, const std::string& out, int in_c,
                int out_c, int k, int s, int p) {
    std::normal_distribution<float> nd(0.0f, std::sqrt(2.0f / float(in_c * k * k)));
    std::vector<float> w(size_t(out_c) * k * k * in_c), b(static_cast<size_t>(out_c));
    for (float& v : w) v = nd(gen);
    for (float& v : b) v = 0.1f * nd(gen);
    blobs.push_back(make_blob(name + ".weight", w));
    blobs.push_back(make_blob(name + ".bias", b));
    layers.push_back(conv_json(name, "conv_f32", {in}, out, in_c, out_c, k, s, p));
  }

  // out_bits 0 = float output.
  void bitconv(const std::string& name, std::vector<std::string> ins, const std::string& out,
               int in_c, int out_c, int k, int s, int p, int out_bits) {
    const int taps = k * k, levels = (1 << o.w_bits);
    std::vector<uint8_t> q(size_t(out_c) * taps * in_c);
    for (uint8_t& v : q) v = uint8_t(gen() % uint64_t(levels));
    std::vector<uint64_t> packed(size_t(out_c) * o.w_bits * bitconv_row_words(taps, in_c));
    pack_weights_q(q.data(), out_c, taps, in_c, o.w_bits, packed.data());
    // I has std ~ sqrt(N * E[w^2 q^2]); map +-2 std onto [0,1] so every level appears.
    const double amax = (1 << o.a_bits) - 1;
    const double sd = std::sqrt(double(taps) * in_c * double(levels - 1) * double(levels - 1) *
                                amax * amax / 3.0);
    std::uniform_real_distribution<float> jitter(0.8f, 1.2f);
    std::vector<float> mul(static_cast<size_t>(out_c)), add(static_cast<size_t>(out_c));
    for (int c = 0; c < out_c; ++c) {
      mul[size_t(c)] = float(0.25 / sd) * jitter(gen) * (c % 7 == 3 ? -1.0f : 1.0f);
      add[size_t(c)] = (ins.size() == 2 ? 0.0f : 0.5f) * jitter(gen);
    }
    blobs.push_back(make_blob(name + ".weight", packed));
    blobs.push_back(make_blob(name + ".mul", mul));
    blobs.push_back(make_blob(name + ".add", add));
    nlohmann::json j = conv_json(name, "bitconv", ins, out, in_c, out_c, k, s, p);
    j["w_bits"] = o.w_bits;
    j["a_bits"] = o.a_bits;
    j["out_bits"] = out_bits;
    layers.push_back(j);
  }
};

}  // namespace

void make_synthetic_fcn8s(const SyntheticOptions& o, nlohmann::json& header,
                          std::vector<BlobData>& blobs) {
  blobs.clear();
  Builder b{o, nlohmann::json::array(), blobs, std::mt19937_64(o.seed)};
  const int c0 = o.base_channels;
  b.conv_f32("conv1", "image", "conv1", 3, c0, 7, 2, 3);
  b.layers.push_back({{"name", "maxpool"},
                      {"type", "maxpool"},
                      {"inputs", {"conv1"}},
                      {"output", "pool"},
                      {"kernel", 3},
                      {"stride", 2},
                      {"pad", 1}});
  {
    std::vector<float> mul(static_cast<size_t>(c0), 0.25f), add(static_cast<size_t>(c0), 0.5f);
    b.blobs.push_back(make_blob("act1.mul", mul));
    b.blobs.push_back(make_blob("act1.add", add));
    b.layers.push_back({{"name", "act1"},
                        {"type", "quant_act"},
                        {"inputs", {"pool"}},
                        {"output", "stem"},
                        {"bits", o.a_bits},
                        {"affine", true}});
  }
  std::string x = "stem";
  int in_c = c0;
  std::vector<std::string> feats;
  std::vector<int> feat_c;
  for (int stage = 0; stage < 4; ++stage) {
    const int planes = c0 << stage;
    for (int blk = 0; blk < o.blocks[size_t(stage)]; ++blk) {
      const std::string p = "layer" + std::to_string(stage + 1) + "." + std::to_string(blk);
      const int stride = (stage > 0 && blk == 0) ? 2 : 1;
      b.bitconv(p + ".conv1", {x}, p + ".conv1", in_c, planes, 3, stride, 1, o.a_bits);
      std::string res = x;
      if (stride != 1 || in_c != planes) {
        b.bitconv(p + ".downsample.0", {x}, p + ".downsample", in_c, planes, 1, stride, 0, 0);
        res = p + ".downsample";
      }
      b.bitconv(p + ".conv2", {p + ".conv1", res}, p, planes, planes, 3, 1, 1, o.a_bits);
      x = p;
      in_c = planes;
    }
    feats.push_back(x);
    feat_c.push_back(in_c);
  }
  const int nc = o.num_classes;
  b.conv_f32("score_layer4", feats[3], "score4", feat_c[3], nc, 1, 1, 0);
  b.conv_f32("score_layer3", feats[2], "score3", feat_c[2], nc, 1, 1, 0);
  b.conv_f32("score_layer2", feats[1], "score2", feat_c[1], nc, 1, 1, 0);
  auto up = [&](const std::string& name, const std::string& in, const std::string& size_of) {
    b.layers.push_back({{"name", name},
                        {"type", "upsample"},
                        {"inputs", {in}},
                        {"output", name},
                        {"size_of", size_of}});
  };
  auto add = [&](const std::string& name, const std::string& a, const std::string& c) {
    b.layers.push_back({{"name", name}, {"type", "add"}, {"inputs", {a, c}}, {"output", name}});
  };
  up("up4", "score4", "score3");
  add("fuse3", "up4", "score3");
  up("up3", "fuse3", "score2");
  add("fuse2", "up3", "score2");
  up("logits", "fuse2", "image");
  header = {
      {"format", "bfcn-model"},
      {"arch", "fcn8s_synthetic"},
      {"num_classes", nc},
      {"class_names", nlohmann::json::array()},
      {"palette", nlohmann::json::array()},
      {"input", {{"channels", 3}, {"mean", {0.485, 0.456, 0.406}}, {"std", {0.229, 0.224, 0.225}}}},
      {"output", "logits"},
      {"layers", b.layers}};
  for (int c = 0; c < nc; ++c) {
    header["class_names"].push_back("class" + std::to_string(c));
    header["palette"].push_back({(c * 67) & 255, (c * 131) & 255, (c * 29) & 255});
  }
}

}  // namespace bfcn::rt
