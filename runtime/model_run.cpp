// Execute stage: one image through the planned graph. Tensors are NHWC; quantized activations
// stay bit-packed between bit layers (the bitconv epilogue re-quantizes directly), floats appear
// only around FP layers and residual sums. Buffers are released after their last use, so peak
// memory is a few feature maps. The only errors here depend on the image size.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "kernels/act_pack.h"
#include "kernels/bitconv.h"
#include "kernels/bitpack.h"
#include "kernels/conv_stem.h"
#include "kernels/gemm.h"
#include "runtime/engine_internal.h"

namespace bfcn::rt {

namespace {

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

// 1x1 stride-1 conv (score layers, few output channels): the input rows are the GEMM's A read in
// place (no A packing), the weights packed once; blocks of 192 pixels per task.
void conv1x1_f32_nhwc(const Layer& L, const float* x, float* y, int oh, int ow) {
  const int c = L.in_c, oc = L.out_c;
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
}

// im2col of output rows [y0, y1) into col [(y1-y0)*ow][K*K*C] (zeros outside the image); C >= 16
// (smaller inputs take the stem kernel), so each tap is one memcpy.
void im2col_rows(const Layer& L, const float* x, int h, int w, int y0, int y1, int ow, float* col) {
  const int k = L.kernel, c = L.in_c, kk = k * k * c;
  for (int oy = y0; oy < y1; ++oy)
    for (int ox = 0; ox < ow; ++ox) {
      float* dst = col + (int64_t(oy - y0) * ow + ox) * kk;
      for (int ky = 0; ky < k; ++ky) {
        const int iy = oy * L.stride - L.pad + ky * L.dilation;
        for (int kx = 0; kx < k; ++kx) {
          const int ix = ox * L.stride - L.pad + kx * L.dilation;
          float* d = dst + (ky * k + kx) * c;
          if (iy < 0 || iy >= h || ix < 0 || ix >= w) {
            std::fill_n(d, c, 0.0f);
          } else {
            std::memcpy(d, x + (int64_t(iy) * w + ix) * c, sizeof(float) * c);
          }
        }
      }
    }
}

// y [OH*OW][OC] = conv(x NHWC, w [OC][K*K*C]) + bias: the RGB stem by its direct kernel, 1x1 by
// conv1x1_f32_nhwc, else im2col of a block of output rows (>= ~256 pixels so the GEMM amortises
// its packing) + sgemm, OpenMP over row blocks.
void conv_f32_nhwc(const Layer& L, const float* x, int h, int w, float* y, int oh, int ow) {
  const int kk = L.kernel * L.kernel * L.in_c, oc = L.out_c;
  if (L.in_c < 16) {  // the RGB stem: contiguous tap runs + GEMM on pre-packed weights
    ConvStemEpilogue e;
    e.bias = L.bias.data();
    e.out_f32 = y;
    conv_stem_forward(stem_shape(L, h, w), x, L.weight.data(), e);
    return;
  }
  if (L.kernel == 1 && L.stride == 1 && L.pad == 0) {
    conv1x1_f32_nhwc(L, x, y, oh, ow);
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
      im2col_rows(L, x, h, w, y0, y1, ow, col.data());
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

// What one layer reports to the profile.
struct LayerCost {
  int64_t macs = 0;
  const char* kernel = "";  // bit-conv layers: the bgemm variant that ran
};

BitConvShape bitconv_shape(const Layer& L, int h, int w) {
  BitConvShape s;
  s.in_h = h;
  s.in_w = w;
  s.in_c = L.in_c;
  s.out_c = L.out_c;
  s.kh = s.kw = L.kernel;
  s.stride = L.stride;
  s.pad = L.pad;
  s.dilation = L.dilation;
  s.a_bits = L.a_bits;
  s.w_bits = L.w_bits;
  return s;
}

// One image through the graph: a buffer per tensor (empty until written, freed after its last
// reader), each layer run by the function of its op.
class Execution {
 public:
  Execution(const Model::Impl& I, int h, int w, std::vector<float>* logits,
            std::vector<uint8_t>* labels)
      : I_(I), h_(h), w_(w), logits_(logits), labels_(labels), bufs_(I.tensors.size()) {}

  // The image [3,h,w] into tensor 0 as NHWC floats, (x - mean) / std when normalize; returns the
  // time it took when profiling.
  double load_input(const float* image, bool normalize) {
    Buf& b = bufs_[0];
    b.h = h_;
    b.w = w_;
    b.c = 3;
    b.f.resize(size_t(h_) * w_ * 3);
    float mu[3], inv[3];
    for (int ch = 0; ch < 3; ++ch) {
      mu[ch] = normalize ? I_.mean[size_t(ch)] : 0.0f;
      inv[ch] = normalize ? 1.0f / I_.std[size_t(ch)] : 1.0f;
    }
    const int64_t pix = int64_t(h_) * w_;
    const double t0 = I_.profile ? now_ms() : 0;
#pragma omp parallel for schedule(static) if (pix > 16384)
    for (int64_t p = 0; p < pix; ++p)
      for (int ch = 0; ch < 3; ++ch)
        b.f[size_t(p) * 3 + ch] = (image[ch * pix + p] - mu[ch]) * inv[ch];
    return I_.profile ? now_ms() - t0 : 0;
  }

  // Runs layer li (nothing for a layer absorbed by a fusion), frees the tensors it read last and
  // appends its timing when profiling.
  void run_layer(size_t li) {
    const Layer& L = I_.layers[li];
    const double t0 = I_.profile ? now_ms() : 0;
    if (I_.fusion[li] == kAbsorbed) {  // done by the fused stem head
      if (I_.profile) I_.profile->push_back({L.name, layer_type(li), 0.0, 0, ""});
      return;
    }
    const Buf& x = bufs_[size_t(L.in[0])];
    Buf& y = bufs_[size_t(L.out)];
    y.c = I_.tensors[size_t(L.out)].c;
    const LayerCost cost = run_op(li, x, y);
    release_after(li);
    if (I_.profile)
      I_.profile->push_back({L.name, layer_type(li), now_ms() - t0, cost.macs, cost.kernel});
  }

  // logits [C,h,w] and labels [h,w] from the output tensor, unless the final upsample wrote them.
  void emit_output() const {
    if (emitted_) return;
    const Buf& out = bufs_[size_t(I_.output)];
    BFCN_CHECK(out.h == h_ && out.w == w_, "Model::run: output is ", out.h, "x", out.w,
               ", expected the input size ", h_, "x", w_, " (is the graph's output upsampled?)");
    const int nc = out.c;
    const int64_t pix = int64_t(h_) * w_;
    if (logits_) {
      logits_->resize(size_t(pix) * nc);
#pragma omp parallel for schedule(static) if (pix * nc > 65536)
      for (int64_t p = 0; p < pix; ++p)
        for (int ch = 0; ch < nc; ++ch)
          (*logits_)[size_t(ch * pix + p)] = out.f[size_t(p * nc + ch)];
    }
    if (labels_) {
      labels_->resize(size_t(pix));
#pragma omp parallel for schedule(static) if (pix * nc > 65536)
      for (int64_t p = 0; p < pix; ++p) (*labels_)[size_t(p)] = argmax(out.f.data() + p * nc, nc);
    }
  }

 private:
  std::string layer_type(size_t li) const {
    return I_.header["layers"][li]["type"].get<std::string>();
  }

  LayerCost run_op(size_t li, const Buf& x, Buf& y) {
    const Layer& L = I_.layers[li];
    switch (L.op) {
      case Op::conv_f32:
        return run_conv_f32(li, x, y);
      case Op::bitconv:
        return run_bitconv(L, x, y);
      case Op::quant_act:
        run_quant_act(L, x, y);
        break;
      case Op::add:
        run_add(L, x, y);
        break;
      case Op::maxpool:
        run_maxpool(L, x, y);
        break;
      case Op::upsample:
        run_upsample(L, x, y);
        break;
    }
    return {};
  }

  LayerCost run_conv_f32(size_t li, const Buf& x, Buf& y) {
    const Layer& L = I_.layers[li];
    y.h = conv_out(x.h, L.kernel, L.stride, L.pad, L.dilation);
    y.w = conv_out(x.w, L.kernel, L.stride, L.pad, L.dilation);
    BFCN_CHECK(y.h > 0 && y.w > 0, "layer '", L.name, "': input ", x.h, "x", x.w, " is too small");
    const LayerCost cost{int64_t(y.h) * y.w * y.c * L.in_c * L.kernel * L.kernel, ""};
    if (I_.fusion[li] == kStemHead) {
      run_stem_head(li, x, y);
      return cost;
    }
    std::vector<float> tmp, v(size_t(y.h) * y.w * y.c);
    conv_f32_nhwc(L, float_view(x, tmp), x.h, x.w, v.data(), y.h, y.w);
    store(y, std::move(v), L.out_bits, L.relu);
    return cost;
  }

  // conv (layer li, y sized) -> codes -> max pool + pack, into the output of layer li + 2 (the
  // quant_act); y itself stays empty.
  void run_stem_head(size_t li, const Buf& x, Buf& y) {
    const Layer &L = I_.layers[li], &P = I_.layers[li + 1], &Q = I_.layers[li + 2];
    // Every code is written by the conv: no zero-fill pass over the 4 MB, and the buffer is kept
    // between runs (fresh pages cost page faults on every image).
    thread_local std::vector<uint8_t> codes;
    if (codes.size() < size_t(y.h) * y.w * y.c) codes.resize(size_t(y.h) * y.w * y.c);
    ConvStemEpilogue e;
    e.bias = L.bias.data();
    e.relu = L.relu;
    e.out_q = codes.data();
    e.mul = Q.mul.empty() ? nullptr : Q.mul.data();
    e.add = Q.add.empty() ? nullptr : Q.add.data();
    e.bits = Q.out_bits;
    std::vector<float> tmp;
    conv_stem_forward(stem_shape(L, x.h, x.w), float_view(x, tmp), L.weight.data(), e);
    Buf& z = bufs_[size_t(Q.out)];
    z.c = y.c;
    z.bits = Q.out_bits;
    z.h = (y.h + 2 * P.pad - P.kernel) / P.stride + 1;
    z.w = (y.w + 2 * P.pad - P.kernel) / P.stride + 1;
    BFCN_CHECK(z.h > 0 && z.w > 0, "layer '", P.name, "': input too small");
    z.p.assign(size_t(z.h) * z.w * z.bits * bit_words(z.c), 0);
    maxpool_pack_q(codes.data(), y.h, y.w, y.c, P.kernel, P.stride, P.pad, z.bits, z.p.data(), z.h,
                   z.w);
    y = Buf{};
  }

  LayerCost run_bitconv(const Layer& L, const Buf& x, Buf& y) {
    const BitConvShape s = bitconv_shape(L, x.h, x.w);
    y.h = s.out_h();
    y.w = s.out_w();
    BFCN_CHECK(y.h > 0 && y.w > 0, "layer '", L.name, "': input ", x.h, "x", x.w, " is too small");
    const BgemmVariant& variant = bgemm_for_shape(s);  // timed once per shape, cached
    BitConvEpilogue e;
    e.mul = L.mul.data();
    e.add = L.add.data();
    if (L.in.size() == 2) attach_residual(L, y, e);
    // Fused re-quantization: no float output tensor. A ReLU before the quantizer changes nothing
    // (the quantizer clips at 0, NaN -> 0 both ways), so ReLU layers fuse too.
    if (L.out_bits > 0) {
      y.bits = L.out_bits;
      y.p.assign(size_t(y.h) * y.w * L.out_bits * bit_words(y.c), 0);
      e.out_packed = y.p.data();
      e.out_bits = L.out_bits;
      e.thresholds = layer_thresholds(L, s, e);
      bitconv_forward(s, x.p.data(), prepared_weights(L, s, variant), e);
    } else {
      std::vector<float> v(size_t(y.h) * y.w * y.c);
      e.out_f32 = v.data();
      bitconv_forward(s, x.p.data(), prepared_weights(L, s, variant), e);
      store(y, std::move(v), L.out_bits, L.relu);
    }
    return {s.macs(), variant.name};
  }

  // The residual (second input) of bit conv L into its epilogue; y is L's sized output.
  void attach_residual(const Layer& L, const Buf& y, BitConvEpilogue& e) const {
    const Buf& r = bufs_[size_t(L.in[1])];
    BFCN_CHECK(r.h == y.h && r.w == y.w, "layer '", L.name, "': residual is ", r.h, "x", r.w,
               ", output is ", y.h, "x", y.w);
    if (r.bits > 0) {  // identity shortcut: codes dequantized inside the conv, per row
      e.residual_packed = r.p.data();
      e.residual_bits = r.bits;
    } else {
      e.residual = r.f.data();
    }
  }

  static void run_quant_act(const Layer& L, const Buf& x, Buf& y) {
    y.h = x.h;
    y.w = x.w;
    y.bits = L.out_bits;
    y.p.assign(size_t(y.h) * y.w * y.bits * bit_words(y.c), 0);
    std::vector<float> tmp;
    quantize_pack_act(float_view(x, tmp), int64_t(y.h) * y.w, y.c, y.bits,
                      L.mul.empty() ? nullptr : L.mul.data(),
                      L.add.empty() ? nullptr : L.add.data(), y.p.data());
  }

  void run_add(const Layer& L, const Buf& x, Buf& y) const {
    const Buf& b = bufs_[size_t(L.in[1])];
    BFCN_CHECK(b.h == x.h && b.w == x.w, "layer '", L.name, "': adding ", x.h, "x", x.w, " and ",
               b.h, "x", b.w);
    y.h = x.h;
    y.w = x.w;
    std::vector<float> ta, tb;
    const float* pa = float_view(x, ta);
    const float* pb = float_view(b, tb);
    std::vector<float> v(size_t(y.h) * y.w * y.c);
    for (size_t i = 0; i < v.size(); ++i) v[i] = pa[i] + pb[i];
    store(y, std::move(v), L.out_bits, L.relu);
  }

  static void run_maxpool(const Layer& L, const Buf& x, Buf& y) {
    y.h = (x.h + 2 * L.pad - L.kernel) / L.stride + 1;
    y.w = (x.w + 2 * L.pad - L.kernel) / L.stride + 1;
    BFCN_CHECK(y.h > 0 && y.w > 0, "layer '", L.name, "': input too small");
    std::vector<float> tmp, v(size_t(y.h) * y.w * y.c);
    maxpool_nhwc(float_view(x, tmp), x.h, x.w, x.c, L.kernel, L.stride, L.pad, v.data(), y.h, y.w);
    store(y, std::move(v), 0, false);
  }

  // The graph's output at the image size goes straight into logits / labels (upsample_emit).
  void run_upsample(const Layer& L, const Buf& x, Buf& y) {
    y.h = L.size_of < 0 ? h_ : bufs_[size_t(L.size_of)].h;
    y.w = L.size_of < 0 ? w_ : bufs_[size_t(L.size_of)].w;
    std::vector<float> tmp;
    if (L.out == I_.output && y.h == h_ && y.w == w_) {
      upsample_emit(float_view(x, tmp), x.h, x.w, x.c, h_, w_, logits_, labels_);
      emitted_ = true;
      return;
    }
    store(y, upsample_nhwc(float_view(x, tmp), x.h, x.w, x.c, y.h, y.w), 0, false);
  }

  // Frees every tensor whose last reader is layer li.
  void release_after(size_t li) {
    const Layer& L = I_.layers[li];
    for (int t : L.in)
      if (I_.last_use[size_t(t)] == int(li)) bufs_[size_t(t)] = Buf{};
    if (L.size_of >= 0 && I_.last_use[size_t(L.size_of)] == int(li))
      bufs_[size_t(L.size_of)] = Buf{};
  }

  const Model::Impl& I_;
  const int h_, w_;
  std::vector<float>* logits_;
  std::vector<uint8_t>* labels_;
  std::vector<Buf> bufs_;
  bool emitted_ = false;  // the output layer wrote logits/labels itself
};

}  // namespace

void execute(const Model::Impl& I, const float* image_nchw, int h, int w,
             std::vector<float>* logits, std::vector<uint8_t>* labels, bool normalize) {
  BFCN_CHECK(h > 0 && w > 0 && h <= 16384 && w <= 16384,
             "Model::run: image size must be 1..16384, got ", h, "x", w);
  Execution run(I, h, w, logits, labels);
  const double input_ms = run.load_input(image_nchw, normalize);
  for (size_t li = 0; li < I.layers.size(); ++li) run.run_layer(li);
  if (I.profile) I.profile->push_back({"(input)", "normalize", input_ms, 0, ""});
  run.emit_output();
}

}  // namespace bfcn::rt
