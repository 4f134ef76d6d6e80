// Graph validation and execution for rt::Model. Every layer is checked at load (types, channel
// counts, bit widths, blob sizes) so run() only meets shape errors that depend on the image size.
// Buffers are released after their last use, so peak memory is a few feature maps.
#include "runtime/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>

#include "core/error.h"
#include "kernels/act_pack.h"
#include "kernels/bitconv.h"
#include "kernels/bitpack.h"
#include "kernels/conv_stem.h"
#include "kernels/gemm.h"

namespace bfcn::rt {

namespace {

enum class Op { conv_f32, bitconv, quant_act, add, maxpool, upsample };

struct TensorInfo {
  std::string name;
  int c = 0, bits = 0;  // bits 0 = float NHWC, else packed NHWC planes
};

struct Layer {
  std::string name;
  Op op = Op::conv_f32;
  std::vector<int> in;  // tensor ids
  int out = -1;
  int size_of = -1;  // upsample: tensor id, or -1 = the image
  // conv
  int in_c = 0, out_c = 0, kernel = 1, stride = 1, pad = 0, dilation = 1;
  int w_bits = 0, a_bits = 0, out_bits = 0;
  bool relu = false;
  std::vector<float> weight, bias, mul, add;  // f32 weight [OC][K][K][C]
  std::vector<uint64_t> wbits;                // packed [OC][M][row_words]
  // bitconv: wbits re-laid-out for the variants that ran (prepared on first use, not per run)
  struct Prepared {
    std::mutex mu;
    std::vector<std::unique_ptr<PreparedBitWeights>> by_variant;
    std::unique_ptr<RequantThresholds> thresholds;  // of its packed epilogue, once
  };
  std::shared_ptr<Prepared> prepared = std::make_shared<Prepared>();
};

// L's packed-epilogue thresholds (the epilogue e of every run of L has the same kind).
const RequantThresholds* layer_thresholds(const Layer& L, const BitConvShape& s,
                                          const BitConvEpilogue& e) {
  const std::lock_guard<std::mutex> lock(L.prepared->mu);
  if (!L.prepared->thresholds)
    L.prepared->thresholds = std::make_unique<RequantThresholds>(make_requant_thresholds(s, e));
  return L.prepared->thresholds.get();
}

// L's weights prepared for variant v (s: the layer's shape at this input size).
const PreparedBitWeights& prepared_weights(const Layer& L, const BitConvShape& s,
                                           const BgemmVariant& v) {
  const std::lock_guard<std::mutex> lock(L.prepared->mu);
  for (const auto& p : L.prepared->by_variant)
    if (p->variant == &v && p->fits(s)) return *p;
  L.prepared->by_variant.push_back(
      std::make_unique<PreparedBitWeights>(prepare_bitconv_weights(s, L.wbits.data(), v)));
  return *L.prepared->by_variant.back();
}

struct Buf {
  int h = 0, w = 0, c = 0, bits = 0;
  std::vector<float> f;
  std::vector<uint64_t> p;
};

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int conv_out(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

// Float NHWC view of a tensor: itself, or its dequantized copy (q / (2^bits-1)) in tmp.
const float* float_view(const Buf& b, std::vector<float>& tmp) {
  if (b.bits == 0) return b.f.data();
  const int64_t pix = int64_t(b.h) * b.w;
  tmp.resize(size_t(pix) * b.c);
  unpack_dequant_act(b.p.data(), pix, b.c, b.bits, tmp.data());
  return tmp.data();
}

// Writes float values [pixels][c] to out as float (bits 0, optional relu) or clip+quantize+pack.
void store(Buf& out, std::vector<float>&& v, int bits, bool relu) {
  out.bits = bits;
  if (bits == 0) {
    if (relu)
      for (float& x : v) x = x > 0.0f ? x : 0.0f;
    out.f = std::move(v);
    return;
  }
  const int64_t pix = int64_t(out.h) * out.w;
  out.p.assign(size_t(pix) * bits * bit_words(out.c), 0);
  quantize_pack_act(v.data(), pix, out.c, bits, nullptr, nullptr, out.p.data());
}

// y [OH*OW][OC] = conv(x NHWC, w [OC][K*K*C]) + bias: im2col of a block of output rows (>= ~256
// pixels so the GEMM amortises its packing) + sgemm, OpenMP over row blocks.
ConvStemShape stem_shape(const Layer& L, int h, int w) {
  ConvStemShape s;
  s.in_h = h;
  s.in_w = w;
  s.in_c = L.in_c;
  s.out_c = L.out_c;
  s.kernel = L.kernel;
  s.stride = L.stride;
  s.pad = L.pad;
  s.dilation = L.dilation;
  return s;
}

void conv_f32_nhwc(const Layer& L, const float* x, int h, int w, float* y, int oh, int ow) {
  const int k = L.kernel, c = L.in_c, kk = k * k * c, oc = L.out_c;
  if (c < 16) {  // the RGB stem: contiguous tap runs + GEMM on pre-packed weights
    ConvStemEpilogue e;
    e.bias = L.bias.data();
    e.out_f32 = y;
    conv_stem_forward(stem_shape(L, h, w), x, L.weight.data(), e);
    return;
  }
  if (k == 1 && L.stride == 1 && L.pad == 0) {
    // 1x1 (score layers, few output channels): the input rows are the GEMM's A read in place
    // (no A packing), the weights packed once; blocks of 192 pixels per task.
    const int64_t m = int64_t(oh) * ow, panels = (oc + kGemmNr - 1) / kGemmNr;
    std::vector<float> bbuf(size_t(panels) * kGemmNr * c + 16);
    float* bp = bbuf.data() + (16 - (reinterpret_cast<uintptr_t>(bbuf.data()) / 4) % 16) % 16;
    sgemm_pack_b(c, oc, L.weight.data(), 1, c, bp);
    const int64_t blocks = (m + 191) / 192;
#pragma omp parallel for schedule(static) if (m * oc * c > (1 << 20))
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t i0 = blk * 192, n = std::min<int64_t>(192, m - i0);
      for (int64_t i = i0; i < i0 + n; ++i)
        std::memcpy(y + i * oc, L.bias.data(), sizeof(float) * oc);
      sgemm_arows_packed_b(n, oc, c, x + i0 * c, c, bp, y + i0 * oc, oc, true);
    }
    return;
  }
  const int rows = std::max(1, std::min(oh, (256 + ow - 1) / ow));
  const int blocks = (oh + rows - 1) / rows;
#pragma omp parallel
  {
    std::vector<float> col(size_t(rows) * ow * kk);
#pragma omp for schedule(dynamic, 1)
    for (int blk = 0; blk < blocks; ++blk) {
      const int y0 = blk * rows, y1 = std::min(oh, y0 + rows);
      for (int oy = y0; oy < y1; ++oy)
        for (int ox = 0; ox < ow; ++ox) {
          float* dst = col.data() + (int64_t(oy - y0) * ow + ox) * kk;
          for (int ky = 0; ky < k; ++ky) {
            const int iy = oy * L.stride - L.pad + ky * L.dilation;
            for (int kx = 0; kx < k; ++kx) {
              const int ix = ox * L.stride - L.pad + kx * L.dilation;
              float* d = dst + (ky * k + kx) * c;
              if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
                std::fill_n(d, c, 0.0f);
              } else {
                const float* src = x + (int64_t(iy) * w + ix) * c;
                if (c < 16)  // the RGB stem: a loop beats a memcpy call per 3-float tap
                  for (int ch = 0; ch < c; ++ch) d[ch] = src[ch];
                else
                  std::memcpy(d, src, sizeof(float) * c);
              }
            }
          }
        }
      const int64_t m = int64_t(y1 - y0) * ow;
      float* yr = y + int64_t(y0) * ow * oc;
      for (int64_t i = 0; i < m; ++i) std::memcpy(yr + i * oc, L.bias.data(), sizeof(float) * oc);
      sgemm(m, oc, kk, col.data(), kk, 1, L.weight.data(), 1, kk, yr, oc, true, 1);
    }
  }
}

void maxpool_nhwc(const float* x, int h, int w, int c, int k, int s, int p, float* y, int oh,
                  int ow) {
#pragma omp parallel for schedule(static) if (int64_t(oh) * ow * c > 65536)
  for (int oy = 0; oy < oh; ++oy)
    for (int ox = 0; ox < ow; ++ox) {
      float* d = y + (int64_t(oy) * ow + ox) * c;
      std::fill(d, d + c, -std::numeric_limits<float>::infinity());
      for (int ky = 0; ky < k; ++ky) {
        const int iy = oy * s - p + ky;
        if (iy < 0 || iy >= h) continue;
        for (int kx = 0; kx < k; ++kx) {
          const int ix = ox * s - p + kx;
          if (ix < 0 || ix >= w) continue;
          const float* src = x + (int64_t(iy) * w + ix) * c;
          for (int ch = 0; ch < c; ++ch) d[ch] = std::max(d[ch], src[ch]);
        }
      }
    }
}

// Source taps of PyTorch's bilinear resize, align_corners false: src = max(0, (d+0.5)*in/out-0.5).
struct Tap {
  int i0, i1;
  float l0, l1;
};
std::vector<Tap> axis_taps(int in, int out) {
  std::vector<Tap> t(static_cast<size_t>(out));
  const float scale = float(in) / float(out);
  for (int d = 0; d < out; ++d) {
    float src = scale * (float(d) + 0.5f) - 0.5f;
    if (src < 0.0f) src = 0.0f;
    int i0 = int(src);
    if (i0 > in - 1) i0 = in - 1;
    const int i1 = i0 + 1 < in ? i0 + 1 : in - 1;
    const float l1 = src - float(i0);
    t[size_t(d)] = {i0, i1, 1.0f - l1, l1};
  }
  return t;
}

// Horizontal pass of the separable bilinear resize: every source row of x [h][w][c] is resized to
// ow pixels into rows, element (sy, ox, ch) at sy*ow*c + ox*pixel_stride + ch*channel_stride
// (NHWC: c, 1; channel-planar rows: 1, ow).
void resize_rows(const float* x, int h, int w, int c, int ow, const std::vector<Tap>& tw,
                 int64_t pixel_stride, int64_t channel_stride, float* rows) {
  const int64_t row = int64_t(ow) * c;
#pragma omp parallel for schedule(static) if (int64_t(h) * row > 65536)
  for (int sy = 0; sy < h; ++sy) {
    const float* src = x + int64_t(sy) * w * c;
    float* dst = rows + sy * row;
    for (int ox = 0; ox < ow; ++ox) {
      const Tap& t = tw[size_t(ox)];
      const float* a = src + int64_t(t.i0) * c;
      const float* b = src + int64_t(t.i1) * c;
      float* d = dst + ox * pixel_stride;
      for (int ch = 0; ch < c; ++ch) d[ch * channel_stride] = t.l0 * a[ch] + t.l1 * b[ch];
    }
  }
}

// NHWC bilinear resize, separable: every source row is resized horizontally once, then each
// output row blends two of those rows.
std::vector<float> upsample_nhwc(const float* x, int h, int w, int c, int oh, int ow) {
  const std::vector<Tap> th = axis_taps(h, oh), tw = axis_taps(w, ow);
  const int64_t row = int64_t(ow) * c;
  std::vector<float> rows(size_t(h) * row), y(size_t(oh) * row);
  resize_rows(x, h, w, c, ow, tw, c, 1, rows.data());
#pragma omp parallel for schedule(static) if (int64_t(oh) * row > 65536)
  for (int oy = 0; oy < oh; ++oy) {
    const Tap& t = th[size_t(oy)];
    const float* r0 = rows.data() + t.i0 * row;
    const float* r1 = rows.data() + t.i1 * row;
    float* d = y.data() + oy * row;
    for (int64_t i = 0; i < row; ++i) d[i] = t.l0 * r0[i] + t.l1 * r1[i];
  }
  return y;
}

// Index of the first maximum (std::max_element's tie and NaN behaviour).
uint8_t argmax(const float* v, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[best] < v[i]) best = i;
  return uint8_t(best);
}

// The graph's final upsample fused with the output conversion: source rows are resized
// horizontally into channel-planar rows [c][ow], each output row is blended (the same arithmetic
// as upsample_nhwc) into a per-thread buffer and written as logits [c][oh][ow] (plane copies)
// and/or argmax labels (vectorised over pixels), so no full-resolution NHWC float map is kept.
void upsample_emit(const float* x, int h, int w, int c, int oh, int ow, std::vector<float>* logits,
                   std::vector<uint8_t>* labels) {
  const std::vector<Tap> th = axis_taps(h, oh), tw = axis_taps(w, ow);
  const int64_t row = int64_t(ow) * c, pix = int64_t(oh) * ow;
  std::vector<float> rows(size_t(h) * row);
  resize_rows(x, h, w, c, ow, tw, 1, ow, rows.data());
  if (logits) logits->resize(size_t(pix) * c);
  if (labels) labels->resize(size_t(pix));
#pragma omp parallel if (int64_t(oh) * row > 65536)
  {
    std::vector<float> buf(static_cast<size_t>(row));
    float* d = buf.data();
#pragma omp for schedule(static)
    for (int oy = 0; oy < oh; ++oy) {
      const Tap& t = th[size_t(oy)];
      const float* r0 = rows.data() + t.i0 * row;
      const float* r1 = rows.data() + t.i1 * row;
      for (int64_t i = 0; i < row; ++i) d[i] = t.l0 * r0[i] + t.l1 * r1[i];
      if (logits)
        for (int ch = 0; ch < c; ++ch)
          std::memcpy(logits->data() + ch * pix + int64_t(oy) * ow, d + int64_t(ch) * ow,
                      sizeof(float) * size_t(ow));
      if (labels) argmax_planar(d, c, ow, ow, labels->data() + int64_t(oy) * ow);
    }
  }
}

}  // namespace

struct Model::Impl {
  nlohmann::json header;
  std::vector<TensorInfo> tensors;  // id 0 = "image" (float, 3 channels)
  std::vector<Layer> layers;
  std::vector<int> last_use;  // per tensor: index of the last layer reading it
  int output = -1;
  int num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<std::array<uint8_t, 3>> palette;
  std::array<float, 3> mean{0, 0, 0}, std{1, 1, 1};
  mutable std::vector<LayerTiming>* profile = nullptr;
  // Per layer: kStemHead = conv_f32 -> maxpool -> quant_act run as one fused kernel (conv with the
  // quantizer in its epilogue, then max pool on codes + pack); kAbsorbed = the two layers it
  // replaces. Set by plan_fusions().
  std::vector<uint8_t> fusion;
};

namespace {

constexpr uint8_t kStemHead = 1, kAbsorbed = 2;

// Pool-after-quantize is exact when the quantizer's affine is non-decreasing (mul >= 0) and the
// intermediate tensors have no other reader.
void plan_fusions(Model::Impl& I) {
  I.fusion.assign(I.layers.size(), 0);
  for (size_t li = 0; li + 2 < I.layers.size(); ++li) {
    const Layer &c = I.layers[li], &p = I.layers[li + 1], &q = I.layers[li + 2];
    if (c.op != Op::conv_f32 || c.out_bits != 0 || c.in_c >= 16 || p.op != Op::maxpool ||
        q.op != Op::quant_act || p.in[0] != c.out || q.in[0] != p.out ||
        I.last_use[size_t(c.out)] != int(li + 1) || I.last_use[size_t(p.out)] != int(li + 2) ||
        q.out_bits < 1 || q.out_bits > 8)
      continue;
    if (!std::all_of(q.mul.begin(), q.mul.end(), [](float m) { return m >= 0.0f; })) continue;
    I.fusion[li] = kStemHead;
    I.fusion[li + 1] = I.fusion[li + 2] = kAbsorbed;
  }
}

}  // namespace

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

int Model::num_classes() const { return impl_->num_classes; }
const std::vector<std::string>& Model::class_names() const { return impl_->class_names; }
const std::vector<std::array<uint8_t, 3>>& Model::palette() const { return impl_->palette; }
const nlohmann::json& Model::header() const { return impl_->header; }
void Model::set_profile(std::vector<LayerTiming>* sink) const { impl_->profile = sink; }

Model Model::load(const std::string& path) { return from_file(read_model_file(path)); }

Model Model::from_file(ModelFile file) {
  Model m;
  Impl& I = *m.impl_;
  const std::string& path = file.path;
  const std::string hint = "; re-export it with `bfcn export`";
  const nlohmann::json& h = file.header;
  I.header = h;
  auto where = [&](const std::string& what) { return path + ": " + what; };
  auto need = [&](const nlohmann::json& j, const char* key, const std::string& ctx) {
    const auto it = j.find(key);
    BFCN_CHECK_IO(it != j.end(), where(ctx), ": missing key '", key, "'", hint);
    return *it;
  };
  auto get_int = [&](const nlohmann::json& j, const char* key, const std::string& ctx, int lo,
                     int hi) {
    const nlohmann::json v = need(j, key, ctx);
    BFCN_CHECK_IO(v.is_number_integer(), where(ctx), ": '", key, "' must be an integer", hint);
    const int64_t x = v.get<int64_t>();
    BFCN_CHECK_IO(x >= lo && x <= hi, where(ctx), ": '", key, "' must be ", lo, "..", hi, ", got ",
                  x, hint);
    return int(x);
  };

  I.num_classes = get_int(h, "num_classes", "header", 1, 255);
  if (h.contains("class_names") && h["class_names"].is_array())
    for (const auto& n : h["class_names"])
      I.class_names.push_back(n.is_string() ? n.get<std::string>() : "");
  if (h.contains("palette") && h["palette"].is_array())
    for (const auto& c : h["palette"]) {
      std::array<uint8_t, 3> rgb{0, 0, 0};
      if (c.is_array() && c.size() == 3)
        for (int i = 0; i < 3; ++i)
          rgb[size_t(i)] =
              c[size_t(i)].is_number_integer() ? uint8_t(c[size_t(i)].get<int>() & 255) : 0;
      I.palette.push_back(rgb);
    }
  if (h.contains("input") && h["input"].is_object()) {
    const nlohmann::json& in = h["input"];
    for (const char* key : {"mean", "std"})
      if (in.contains(key)) {
        const nlohmann::json& v = in[key];
        BFCN_CHECK_IO(v.is_array() && v.size() == 3, where("input"), ": '", key,
                      "' must be 3 numbers", hint);
        for (size_t i = 0; i < 3; ++i) {
          BFCN_CHECK_IO(v[i].is_number(), where("input"), ": '", key, "' must be 3 numbers", hint);
          (key[0] == 'm' ? I.mean : I.std)[i] = v[i].get<float>();
        }
      }
    for (float s : I.std) BFCN_CHECK_IO(s > 0.0f, where("input"), ": std must be positive", hint);
  }

  std::map<std::string, int> ids;
  I.tensors.push_back({"image", 3, 0});
  ids["image"] = 0;
  const nlohmann::json layers = need(h, "layers", "header");
  BFCN_CHECK_IO(layers.is_array() && !layers.empty(), where("header"),
                ": 'layers' must be a non-empty array", hint);
  for (size_t li = 0; li < layers.size(); ++li) {
    const nlohmann::json& j = layers[li];
    const std::string ctx = "layers[" + std::to_string(li) + "]";
    BFCN_CHECK_IO(j.is_object(), where(ctx), ": must be an object", hint);
    Layer L;
    const nlohmann::json nm = need(j, "name", ctx), ty = need(j, "type", ctx),
                         ins = need(j, "inputs", ctx), outn = need(j, "output", ctx);
    BFCN_CHECK_IO(nm.is_string() && ty.is_string() && outn.is_string() && ins.is_array() &&
                      !ins.empty() && ins.size() <= 2,
                  where(ctx), ": name/type/output must be strings, inputs 1-2 names", hint);
    L.name = nm.get<std::string>();
    const std::string lctx = ctx + " '" + L.name + "'";
    const std::string type = ty.get<std::string>();
    const std::map<std::string, Op> kOps = {
        {"conv_f32", Op::conv_f32}, {"bitconv", Op::bitconv}, {"quant_act", Op::quant_act},
        {"add", Op::add},           {"maxpool", Op::maxpool}, {"upsample", Op::upsample}};
    BFCN_CHECK_IO(kOps.count(type), where(lctx), ": unknown layer type '", type, "'", hint);
    L.op = kOps.at(type);
    for (const auto& n : ins) {
      BFCN_CHECK_IO(n.is_string() && ids.count(n.get<std::string>()), where(lctx),
                    ": input must name an earlier tensor", hint);
      L.in.push_back(ids[n.get<std::string>()]);
    }
    const TensorInfo& x = I.tensors[size_t(L.in[0])];
    TensorInfo out{outn.get<std::string>(), x.c, 0};
    BFCN_CHECK_IO(!ids.count(out.name), where(lctx), ": output '", out.name, "' defined twice",
                  hint);
    if (j.contains("relu")) L.relu = j["relu"].is_boolean() && j["relu"].get<bool>();
    if (j.contains("out_bits")) L.out_bits = get_int(j, "out_bits", lctx, 0, 8);
    const size_t nin = L.in.size();
    switch (L.op) {
      case Op::conv_f32:
      case Op::bitconv: {
        L.in_c = get_int(j, "in_c", lctx, 1, 1 << 16);
        L.out_c = get_int(j, "out_c", lctx, 1, 1 << 16);
        L.kernel = get_int(j, "kernel", lctx, 1, 15);
        L.stride = get_int(j, "stride", lctx, 1, 16);
        L.pad = get_int(j, "pad", lctx, 0, 64);
        L.dilation = get_int(j, "dilation", lctx, 1, 64);
        BFCN_CHECK_IO(x.c == L.in_c, where(lctx), ": in_c ", L.in_c, " but input '", x.name,
                      "' has ", x.c, " channels", hint);
        out.c = L.out_c;
        const uint64_t taps = uint64_t(L.kernel) * L.kernel;
        if (L.op == Op::conv_f32) {
          BFCN_CHECK_IO(nin == 1, where(lctx), ": conv_f32 takes one input", hint);
          const float* wp = file.f32(L.name + ".weight", uint64_t(L.out_c) * taps * L.in_c);
          L.weight.assign(wp, wp + uint64_t(L.out_c) * taps * L.in_c);
          const float* bp = file.f32(L.name + ".bias", uint64_t(L.out_c));
          L.bias.assign(bp, bp + L.out_c);
        } else {
          L.w_bits = get_int(j, "w_bits", lctx, 1, 4);
          L.a_bits = get_int(j, "a_bits", lctx, 1, 4);
          BFCN_CHECK_IO(x.bits == L.a_bits, where(lctx), ": a_bits ", L.a_bits, " but input '",
                        x.name, "' has ", x.bits, " bits (0 = float)", hint);
          if (nin == 2)
            BFCN_CHECK_IO(I.tensors[size_t(L.in[1])].c == L.out_c, where(lctx),
                          ": residual channels must equal out_c", hint);
          const uint64_t words =
              uint64_t(L.out_c) * L.w_bits * bitconv_row_words(int(taps), L.in_c);
          const uint64_t* wp = file.u64(L.name + ".weight", words);
          L.wbits.assign(wp, wp + words);
          const float* mp = file.f32(L.name + ".mul", uint64_t(L.out_c));
          const float* ap = file.f32(L.name + ".add", uint64_t(L.out_c));
          L.mul.assign(mp, mp + L.out_c);
          L.add.assign(ap, ap + L.out_c);
        }
        break;
      }
      case Op::quant_act: {
        L.out_bits = get_int(j, "bits", lctx, 1, 4);
        BFCN_CHECK_IO(nin == 1, where(lctx), ": quant_act takes one input", hint);
        if (j.contains("affine") && j["affine"].is_boolean() && j["affine"].get<bool>()) {
          const float* mp = file.f32(L.name + ".mul", uint64_t(x.c));
          const float* ap = file.f32(L.name + ".add", uint64_t(x.c));
          L.mul.assign(mp, mp + x.c);
          L.add.assign(ap, ap + x.c);
        }
        break;
      }
      case Op::add:
        BFCN_CHECK_IO(nin == 2 && I.tensors[size_t(L.in[1])].c == x.c, where(lctx),
                      ": add takes two inputs with equal channels", hint);
        break;
      case Op::maxpool:
        L.kernel = get_int(j, "kernel", lctx, 1, 15);
        L.stride = get_int(j, "stride", lctx, 1, 16);
        L.pad = get_int(j, "pad", lctx, 0, 7);
        BFCN_CHECK_IO(2 * L.pad <= L.kernel, where(lctx), ": pad must be <= kernel/2", hint);
        L.out_bits = 0;
        break;
      case Op::upsample: {
        const nlohmann::json so = need(j, "size_of", lctx);
        BFCN_CHECK_IO(so.is_string() &&
                          (so.get<std::string>() == "image" || ids.count(so.get<std::string>())),
                      where(lctx), ": size_of must name an earlier tensor or \"image\"", hint);
        L.size_of = so.get<std::string>() == "image" ? -1 : ids[so.get<std::string>()];
        L.out_bits = 0;
        break;
      }
    }
    out.bits = L.out_bits;
    L.out = int(I.tensors.size());
    ids[out.name] = L.out;
    I.tensors.push_back(out);
    I.layers.push_back(std::move(L));
  }
  const nlohmann::json on = need(h, "output", "header");
  BFCN_CHECK_IO(on.is_string() && ids.count(on.get<std::string>()), where("header"),
                ": 'output' must name a tensor", hint);
  I.output = ids[on.get<std::string>()];
  BFCN_CHECK_IO(
      I.tensors[size_t(I.output)].c == I.num_classes && I.tensors[size_t(I.output)].bits == 0,
      where("header"), ": output tensor must be float with num_classes channels", hint);
  I.last_use.assign(I.tensors.size(), -1);
  for (size_t li = 0; li < I.layers.size(); ++li) {
    for (int t : I.layers[li].in) I.last_use[size_t(t)] = int(li);
    if (I.layers[li].size_of >= 0) I.last_use[size_t(I.layers[li].size_of)] = int(li);
  }
  I.last_use[size_t(I.output)] = int(I.layers.size());
  plan_fusions(I);
  return m;
}

void Model::run(const float* image, int h, int w, std::vector<float>* logits,
                std::vector<uint8_t>* labels, bool normalize) const {
  const Impl& I = *impl_;
  BFCN_CHECK(h > 0 && w > 0 && h <= 16384 && w <= 16384,
             "Model::run: image size must be 1..16384, got ", h, "x", w);
  std::vector<Buf> bufs(I.tensors.size());
  double input_ms = 0;
  {
    Buf& b = bufs[0];
    b.h = h;
    b.w = w;
    b.c = 3;
    b.f.resize(size_t(h) * w * 3);
    float mu[3], inv[3];
    for (int ch = 0; ch < 3; ++ch) {
      mu[ch] = normalize ? I.mean[size_t(ch)] : 0.0f;
      inv[ch] = normalize ? 1.0f / I.std[size_t(ch)] : 1.0f;
    }
    const int64_t pix = int64_t(h) * w;
    const double t0 = I.profile ? now_ms() : 0;
#pragma omp parallel for schedule(static) if (pix > 16384)
    for (int64_t p = 0; p < pix; ++p)
      for (int ch = 0; ch < 3; ++ch)
        b.f[size_t(p) * 3 + ch] = (image[ch * pix + p] - mu[ch]) * inv[ch];
    input_ms = I.profile ? now_ms() - t0 : 0;
  }
  bool emitted = false;  // the output layer wrote logits/labels itself
  for (size_t li = 0; li < I.layers.size(); ++li) {
    const Layer& L = I.layers[li];
    const double t0 = I.profile ? now_ms() : 0;
    if (I.fusion[li] == kAbsorbed) {  // done by the fused stem head
      if (I.profile)
        I.profile->push_back(
            {L.name, I.header["layers"][li]["type"].get<std::string>(), 0.0, 0, ""});
      continue;
    }
    const Buf& x = bufs[size_t(L.in[0])];
    Buf& y = bufs[size_t(L.out)];
    y.c = I.tensors[size_t(L.out)].c;
    int64_t macs = 0;
    const char* kernel = "";
    std::vector<float> tmp;
    switch (L.op) {
      case Op::conv_f32: {
        y.h = conv_out(x.h, L.kernel, L.stride, L.pad, L.dilation);
        y.w = conv_out(x.w, L.kernel, L.stride, L.pad, L.dilation);
        BFCN_CHECK(y.h > 0 && y.w > 0, "layer '", L.name, "': input ", x.h, "x", x.w,
                   " is too small");
        macs = int64_t(y.h) * y.w * y.c * L.in_c * L.kernel * L.kernel;
        if (I.fusion[li] == kStemHead) {  // conv -> codes -> max pool + pack, into act's output
          const Layer &P = I.layers[li + 1], &Q = I.layers[li + 2];
          // Every code is written by the conv: no zero-fill pass over the 4 MB, and the buffer
          // is kept between runs (fresh pages cost page faults on every image).
          thread_local std::vector<uint8_t> codes;
          if (codes.size() < size_t(y.h) * y.w * y.c) codes.resize(size_t(y.h) * y.w * y.c);
          ConvStemEpilogue e;
          e.bias = L.bias.data();
          e.relu = L.relu;
          e.out_q = codes.data();
          e.mul = Q.mul.empty() ? nullptr : Q.mul.data();
          e.add = Q.add.empty() ? nullptr : Q.add.data();
          e.bits = Q.out_bits;
          conv_stem_forward(stem_shape(L, x.h, x.w), float_view(x, tmp), L.weight.data(), e);
          Buf& z = bufs[size_t(Q.out)];
          z.c = y.c;
          z.bits = Q.out_bits;
          z.h = (y.h + 2 * P.pad - P.kernel) / P.stride + 1;
          z.w = (y.w + 2 * P.pad - P.kernel) / P.stride + 1;
          BFCN_CHECK(z.h > 0 && z.w > 0, "layer '", P.name, "': input too small");
          z.p.assign(size_t(z.h) * z.w * z.bits * bit_words(z.c), 0);
          maxpool_pack_q(codes.data(), y.h, y.w, y.c, P.kernel, P.stride, P.pad, z.bits, z.p.data(),
                         z.h, z.w);
          y = Buf{};
          break;
        }
        std::vector<float> v(size_t(y.h) * y.w * y.c);
        conv_f32_nhwc(L, float_view(x, tmp), x.h, x.w, v.data(), y.h, y.w);
        store(y, std::move(v), L.out_bits, L.relu);
        break;
      }
      case Op::bitconv: {
        BitConvShape s;
        s.in_h = x.h;
        s.in_w = x.w;
        s.in_c = L.in_c;
        s.out_c = L.out_c;
        s.kh = s.kw = L.kernel;
        s.stride = L.stride;
        s.pad = L.pad;
        s.dilation = L.dilation;
        s.a_bits = L.a_bits;
        s.w_bits = L.w_bits;
        y.h = s.out_h();
        y.w = s.out_w();
        BFCN_CHECK(y.h > 0 && y.w > 0, "layer '", L.name, "': input ", x.h, "x", x.w,
                   " is too small");
        macs = s.macs();
        const BgemmVariant& variant = bgemm_for_shape(s);  // timed once per shape, cached
        kernel = variant.name;
        BitConvEpilogue e;
        e.mul = L.mul.data();
        e.add = L.add.data();
        if (L.in.size() == 2) {
          const Buf& r = bufs[size_t(L.in[1])];
          BFCN_CHECK(r.h == y.h && r.w == y.w, "layer '", L.name, "': residual is ", r.h, "x", r.w,
                     ", output is ", y.h, "x", y.w);
          if (r.bits > 0) {  // identity shortcut: codes dequantized inside the conv, per row
            e.residual_packed = r.p.data();
            e.residual_bits = r.bits;
          } else {
            e.residual = r.f.data();
          }
        }
        // Fused re-quantization: no float output tensor. A ReLU before the quantizer changes
        // nothing (the quantizer clips at 0, NaN -> 0 both ways), so ReLU layers fuse too.
        if (L.out_bits > 0) {
          y.bits = L.out_bits;
          y.p.assign(size_t(y.h) * y.w * L.out_bits * bit_words(y.c), 0);
          e.out_packed = y.p.data();
          e.out_bits = L.out_bits;
          e.thresholds = layer_thresholds(L, s, e);
          bitconv_forward(s, x.p.data(), prepared_weights(L, s, variant), e);
          break;
        }
        std::vector<float> v(size_t(y.h) * y.w * y.c);
        e.out_f32 = v.data();
        bitconv_forward(s, x.p.data(), prepared_weights(L, s, variant), e);
        store(y, std::move(v), L.out_bits, L.relu);
        break;
      }
      case Op::quant_act: {
        y.h = x.h;
        y.w = x.w;
        y.bits = L.out_bits;
        y.p.assign(size_t(y.h) * y.w * y.bits * bit_words(y.c), 0);
        quantize_pack_act(float_view(x, tmp), int64_t(y.h) * y.w, y.c, y.bits,
                          L.mul.empty() ? nullptr : L.mul.data(),
                          L.add.empty() ? nullptr : L.add.data(), y.p.data());
        break;
      }
      case Op::add: {
        const Buf& b = bufs[size_t(L.in[1])];
        BFCN_CHECK(b.h == x.h && b.w == x.w, "layer '", L.name, "': adding ", x.h, "x", x.w,
                   " and ", b.h, "x", b.w);
        y.h = x.h;
        y.w = x.w;
        std::vector<float> tb;
        const float* pa = float_view(x, tmp);
        const float* pb = float_view(b, tb);
        std::vector<float> v(size_t(y.h) * y.w * y.c);
        for (size_t i = 0; i < v.size(); ++i) v[i] = pa[i] + pb[i];
        store(y, std::move(v), L.out_bits, L.relu);
        break;
      }
      case Op::maxpool: {
        y.h = (x.h + 2 * L.pad - L.kernel) / L.stride + 1;
        y.w = (x.w + 2 * L.pad - L.kernel) / L.stride + 1;
        BFCN_CHECK(y.h > 0 && y.w > 0, "layer '", L.name, "': input too small");
        std::vector<float> v(size_t(y.h) * y.w * y.c);
        maxpool_nhwc(float_view(x, tmp), x.h, x.w, x.c, L.kernel, L.stride, L.pad, v.data(), y.h,
                     y.w);
        store(y, std::move(v), 0, false);
        break;
      }
      case Op::upsample: {
        y.h = L.size_of < 0 ? h : bufs[size_t(L.size_of)].h;
        y.w = L.size_of < 0 ? w : bufs[size_t(L.size_of)].w;
        if (L.out == I.output && y.h == h && y.w == w) {  // straight into logits / labels
          upsample_emit(float_view(x, tmp), x.h, x.w, x.c, h, w, logits, labels);
          emitted = true;
          break;
        }
        store(y, upsample_nhwc(float_view(x, tmp), x.h, x.w, x.c, y.h, y.w), 0, false);
        break;
      }
    }
    for (int t : L.in)
      if (I.last_use[size_t(t)] == int(li)) bufs[size_t(t)] = Buf{};
    if (L.size_of >= 0 && I.last_use[size_t(L.size_of)] == int(li)) bufs[size_t(L.size_of)] = Buf{};
    if (I.profile)
      I.profile->push_back(
          {L.name, I.header["layers"][li]["type"].get<std::string>(), now_ms() - t0, macs, kernel});
  }
  if (I.profile) I.profile->push_back({"(input)", "normalize", input_ms, 0, ""});
  if (emitted) return;
  const Buf& out = bufs[size_t(I.output)];
  BFCN_CHECK(out.h == h && out.w == w, "Model::run: output is ", out.h, "x", out.w,
             ", expected the input size ", h, "x", w, " (is the graph's output upsampled?)");
  const int nc = out.c;
  const int64_t pix = int64_t(h) * w;
  if (logits) {
    logits->resize(size_t(pix) * nc);
#pragma omp parallel for schedule(static) if (pix * nc > 65536)
    for (int64_t p = 0; p < pix; ++p)
      for (int ch = 0; ch < nc; ++ch) (*logits)[size_t(ch * pix + p)] = out.f[size_t(p * nc + ch)];
  }
  if (labels) {
    labels->resize(size_t(pix));
#pragma omp parallel for schedule(static) if (pix * nc > 65536)
    for (int64_t p = 0; p < pix; ++p) (*labels)[size_t(p)] = argmax(out.f.data() + p * nc, nc);
  }
}

Model Model::to_fp32() const {
  Model m;
  Impl& J = *m.impl_;
  J = Impl{impl_->header,      impl_->tensors, impl_->layers,
           impl_->last_use,    impl_->output,  impl_->num_classes,
           impl_->class_names, impl_->palette, impl_->mean,
           impl_->std,         nullptr,        {}};
  for (TensorInfo& t : J.tensors) t.bits = 0;
  for (Layer& L : J.layers) {
    L.out_bits = 0;
    if (L.op == Op::quant_act) {
      // Identity-like affine on floats: keep the op's cost as a clip.
      L.op = Op::add;
      L.in.push_back(L.in[0]);
      L.relu = true;
    }
    if (L.op != Op::bitconv) continue;
    const int taps = L.kernel * L.kernel, lp = bitconv_row_words(taps, L.in_c),
              cw = bit_words(L.in_c);
    const float wmax = float((1 << L.w_bits) - 1);
    L.weight.assign(size_t(L.out_c) * taps * L.in_c, 0.0f);
    for (int o = 0; o < L.out_c; ++o)
      for (int t = 0; t < taps; ++t)
        for (int c = 0; c < L.in_c; ++c) {
          int p = 0;
          for (int mb = 0; mb < L.w_bits; ++mb)
            p |= int((L.wbits[(size_t(o) * L.w_bits + mb) * lp + t * cw + c / 64] >> (c % 64)) & 1)
                 << mb;
          L.weight[(size_t(o) * taps + t) * L.in_c + c] =
              (2.0f * p - wmax) * L.mul[size_t(o)] * float((1 << L.a_bits) - 1);
        }
    L.bias = L.add;
    L.op = Op::conv_f32;
    if (L.in.size() == 2) {  // residual: conv then add
      L.in.pop_back();
    }
    L.wbits.clear();
  }
  plan_fusions(J);
  return m;
}

}  // namespace bfcn::rt
