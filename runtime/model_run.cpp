// Execute stage: one image through the planned graph. Tensors are NHWC; quantized activations
// stay bit-packed between bit layers (the bitconv epilogue re-quantizes directly), floats appear
// only around FP layers and residual sums. Every tensor and temporary lives at its planned offset
// of an arena (plan_arena) that is kept between runs, so a run allocates, zero-fills and
// page-faults none of its feature maps; the only errors (from the plan) depend on the image size.
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
#include "kernels/conv_stem_int8.h"
#include "kernels/gemm.h"
#include "runtime/engine_internal.h"

namespace bfcn::rt {

namespace {

// A tensor in the arena: float NHWC (bits 0, f) or packed NHWC planes (p).
struct Buf {
  int h = 0, w = 0, c = 0, bits = 0;
  float* f = nullptr;
  uint64_t* p = nullptr;
};

// One layer's temporaries, cut in order from its planned scratch slot (plan_sizes in
// model_plan.cpp sizes the slot from the same parts).
class Scratch {
 public:
  Scratch(std::byte* at, size_t bytes) : at_(at), bytes_(bytes) {}
  template <class T>
  T* take(size_t n) {
    const size_t b = scratch_part(n * sizeof(T));
    BFCN_CHECK(used_ + b <= bytes_, "Model::run: a layer's temporaries exceed its planned ", bytes_,
               " bytes (plan_arena and execute disagree)");
    T* p = reinterpret_cast<T*>(at_ + used_);
    used_ += b;
    return p;
  }

 private:
  std::byte* at_;
  size_t bytes_, used_ = 0;
};

double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Float NHWC view of a tensor: itself, or its dequantized copy (q / (2^bits-1)) in scratch.
const float* float_view(const Buf& b, Scratch& scratch) {
  if (b.bits == 0) return b.f;
  const int64_t pix = int64_t(b.h) * b.w;
  float* tmp = scratch.take<float>(size_t(pix) * b.c);
  unpack_dequant_act(b.p, pix, b.c, b.bits, tmp);
  return tmp;
}

// Where a layer writes its float result: y itself when y is float, else a temporary that
// finish() quantizes into y.
float* float_result(Buf& y, Scratch& scratch) {
  return y.bits == 0 ? y.f : scratch.take<float>(size_t(y.h) * y.w * y.c);
}

// The float result v (float_result) into y: ReLU in place (float y), or clip+quantize+pack.
void finish(Buf& y, float* v, bool relu) {
  const int64_t n = int64_t(y.h) * y.w * y.c;
  if (y.bits == 0) {
    if (relu)
      for (int64_t i = 0; i < n; ++i) v[i] = v[i] > 0.0f ? v[i] : 0.0f;
    return;
  }
  quantize_pack_act(v, int64_t(y.h) * y.w, y.c, y.bits, nullptr, nullptr, y.p);
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

// 1x1 conv, pad 0 (score layers; a trained model's FP32 downsample convs at stride 2): the input
// pixels are the GEMM's A rows read in place (stride s: every s-th pixel of every s-th row, so A's
// leading dimension is s*C within an output row), the weights packed once; blocks of 192 pixels
// (stride 1) or output rows per task.
void conv1x1_f32_nhwc(const Layer& L, const float* x, int w, float* y, int oh, int ow) {
  const int c = L.in_c, oc = L.out_c, st = L.stride;
  const int64_t m = int64_t(oh) * ow, panels = (oc + kGemmNr - 1) / kGemmNr;
  std::vector<float> bbuf(size_t(panels) * kGemmNr * c + 16);
  float* bp = bbuf.data() + (16 - (reinterpret_cast<uintptr_t>(bbuf.data()) / 4) % 16) % 16;
  sgemm_pack_b(c, oc, L.weight.data(), 1, c, bp);
  // Stride 1: the image is one run of pixels; else one output row is one run.
  const int64_t run = st == 1 ? 192 : ow, blocks = st == 1 ? (m + 191) / 192 : oh;
#pragma omp parallel for schedule(static) if (m * oc * c > (1 << 20))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t i0 = blk * run, n = std::min<int64_t>(run, m - i0);
    const float* a = st == 1 ? x + i0 * c : x + blk * st * int64_t(w) * c;
    for (int64_t i = i0; i < i0 + n; ++i)
      std::memcpy(y + i * oc, L.bias.data(), sizeof(float) * oc);
    sgemm_arows_packed_b(n, oc, c, a, int64_t(st) * c, bp, y + i0 * oc, oc, true);
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
  if (L.kernel == 1 && L.pad == 0 && L.dilation == 1) {
    conv1x1_f32_nhwc(L, x, w, y, oh, ow);
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

// NHWC bilinear resize into y, separable: every source row is resized horizontally once (into
// rows [h][ow][c]), then each output row blends two of those rows.
void upsample_nhwc(const float* x, int h, int w, int c, int oh, int ow, float* rows, float* y) {
  const std::vector<Tap> th = axis_taps(h, oh), tw = axis_taps(w, ow);
  const int64_t row = int64_t(ow) * c;
  resize_rows(x, h, w, c, ow, tw, c, 1, rows);
#pragma omp parallel for schedule(static) if (int64_t(oh) * row > 65536)
  for (int oy = 0; oy < oh; ++oy) {
    const Tap& t = th[size_t(oy)];
    const float* r0 = rows + t.i0 * row;
    const float* r1 = rows + t.i1 * row;
    float* d = y + oy * row;
    for (int64_t i = 0; i < row; ++i) d[i] = t.l0 * r0[i] + t.l1 * r1[i];
  }
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
// rows: [h][c][ow] floats.
void upsample_emit(const float* x, int h, int w, int c, int oh, int ow, float* rows,
                   std::vector<float>* logits, std::vector<uint8_t>* labels) {
  const std::vector<Tap> th = axis_taps(h, oh), tw = axis_taps(w, ow);
  const int64_t row = int64_t(ow) * c, pix = int64_t(oh) * ow;
  resize_rows(x, h, w, c, ow, tw, 1, ow, rows);
  if (logits) logits->resize(size_t(pix) * c);
  if (labels) labels->resize(size_t(pix));
#pragma omp parallel if (int64_t(oh) * row > 65536)
  {
    std::vector<float> buf(static_cast<size_t>(row));
    float* d = buf.data();
#pragma omp for schedule(static)
    for (int oy = 0; oy < oh; ++oy) {
      const Tap& t = th[size_t(oy)];
      const float* r0 = rows + t.i0 * row;
      const float* r1 = rows + t.i1 * row;
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
  const char* kernel = "";  // bit-conv layers: the bgemm variant that ran; stem heads: theirs
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

// One image through the graph: every tensor at its offset of the arena (Buf views of the plan),
// each layer run by the function of its op with its temporaries cut from its scratch slot.
class Execution {
 public:
  Execution(const Model::Impl& I, Arena& arena, std::vector<float>* logits,
            std::vector<uint8_t>* labels)
      : I_(I),
        P_(arena.plan),
        data_(arena.data),
        h_(P_.h),
        w_(P_.w),
        logits_(logits),
        labels_(labels),
        bufs_(I.tensors.size()) {
    for (size_t t = 0; t < bufs_.size(); ++t) {
      Buf& b = bufs_[t];
      b.h = P_.shape[t][0];
      b.w = P_.shape[t][1];
      b.c = I.tensors[t].c;
      b.bits = I.tensors[t].bits;
      if (P_.tensor[t].bytes == 0) continue;
      std::byte* at = data_ + P_.tensor[t].offset;
      if (b.bits == 0)
        b.f = reinterpret_cast<float*>(at);
      else
        b.p = reinterpret_cast<uint64_t*>(at);
    }
    for (size_t li = 0; li < I.layers.size(); ++li) int8_stem_reads_image_ |= int8_stem(li);
  }

  // The image [3,h,w] into tensor 0 as NHWC floats, (x - mean) / std when normalize; returns the
  // time it took when profiling.
  double load_input(const float* image, bool normalize) {
    image_ = image;
    for (int ch = 0; ch < 3; ++ch) {
      mu_[ch] = normalize ? I_.mean[size_t(ch)] : 0.0f;
      inv_[ch] = normalize ? 1.0f / I_.std[size_t(ch)] : 1.0f;
    }
    if (int8_stem_reads_image_) return 0;  // the int8 stem quantizes the image itself
    float* dst = bufs_[0].f;
    const float *mu = mu_, *inv = inv_;
    const int64_t pix = int64_t(h_) * w_;
    const double t0 = I_.profile ? now_ms() : 0;
#pragma omp parallel for schedule(static) if (pix > 16384)
    for (int64_t p = 0; p < pix; ++p)
      for (int ch = 0; ch < 3; ++ch) dst[p * 3 + ch] = (image[ch * pix + p] - mu[ch]) * inv[ch];
    return I_.profile ? now_ms() - t0 : 0;
  }

  // Runs layer li (nothing for a layer absorbed by a fusion) and appends its timing when
  // profiling.
  void run_layer(size_t li) {
    const Layer& L = I_.layers[li];
    const double t0 = I_.profile ? now_ms() : 0;
    if (I_.fusion[li] == kAbsorbed || I_.fusion[li] == kResidualConv) {  // done by another layer
      if (I_.profile) I_.profile->push_back({L.name, layer_type(li), 0.0, 0, ""});
      return;
    }
    const Buf& x = bufs_[size_t(L.in[0])];
    Buf& y = bufs_[size_t(L.out)];
    Scratch scratch(data_ + P_.scratch[li].offset, P_.scratch[li].bytes);
    const LayerCost cost = run_op(li, x, y, scratch);
    if (I_.trace)
      trace_output(I_.fusion[li] == kStemHead ? li + 2 : I_.fusion[li] == kStemPool ? li + 1 : li);
    if (I_.profile)
      I_.profile->push_back({L.name, layer_type(li), now_ms() - t0, cost.macs, cost.kernel});
  }

  // logits [C,h,w] and labels [h,w] from the output tensor, unless the final upsample wrote them.
  void emit_output() const {
    if (P_.emit_layer >= 0) return;
    const Buf& out = bufs_[size_t(I_.output)];
    const int nc = out.c;
    const int64_t pix = int64_t(h_) * w_;
    if (logits_) {
      logits_->resize(size_t(pix) * nc);
#pragma omp parallel for schedule(static) if (pix * nc > 65536)
      for (int64_t p = 0; p < pix; ++p)
        for (int ch = 0; ch < nc; ++ch) (*logits_)[size_t(ch * pix + p)] = out.f[p * nc + ch];
    }
    if (labels_) {
      labels_->resize(size_t(pix));
#pragma omp parallel for schedule(static) if (pix * nc > 65536)
      for (int64_t p = 0; p < pix; ++p) (*labels_)[size_t(p)] = argmax(out.f + p * nc, nc);
    }
  }

 private:
  std::string layer_type(size_t li) const {
    return I_.header["layers"][li]["type"].get<std::string>();
  }

  LayerCost run_op(size_t li, const Buf& x, Buf& y, Scratch& scratch) {
    const Layer& L = I_.layers[li];
    switch (L.op) {
      case Op::conv_f32:
        return run_conv_f32(li, x, y, scratch);
      case Op::bitconv:
        return run_bitconv(li, x, y);
      case Op::quant_act:
        run_quant_act(L, x, y, scratch);
        break;
      case Op::add:
        run_add(L, x, y, scratch);
        break;
      case Op::maxpool:
        maxpool_nhwc(float_view(x, scratch), x.h, x.w, x.c, L.kernel, L.stride, L.pad, y.f, y.h,
                     y.w);
        break;
      case Op::upsample:
        run_upsample(li, x, y, scratch);
        break;
    }
    return {};
  }

  LayerCost run_conv_f32(size_t li, const Buf& x, Buf& y, Scratch& scratch) {
    const Layer& L = I_.layers[li];
    const LayerCost cost{int64_t(y.h) * y.w * y.c * L.in_c * L.kernel * L.kernel, ""};
    if (I_.fusion[li] == kStemHead) {
      run_stem_head(li, x, y, scratch);
      return {cost.macs, int8_stem(li) ? conv_stem_int8_active().name : conv_stem_active().name};
    }
    if (I_.fusion[li] == kStemPool) {  // bias, ReLU and the pool in the stem's epilogue
      const Layer& P = I_.layers[li + 1];
      Buf& z = bufs_[size_t(P.out)];
      ConvStemEpilogue e;
      e.bias = L.bias.data();
      e.relu = L.relu;
      e.out_f32 = z.f;
      e.pool = {P.kernel, P.stride, P.pad, z.h, z.w};
      if (int8_stem(li)) {
        conv_stem_int8_forward(stem_shape(L, x.h, x.w), image_, mu_, inv_, L.weight.data(), e,
                               I_.stem_int8_weight_bits);
        return {cost.macs, conv_stem_int8_active().name};
      }
      conv_stem_forward(stem_shape(L, x.h, x.w), float_view(x, scratch), L.weight.data(), e);
      return {cost.macs, conv_stem_active().name};
    }
    float* v = float_result(y, scratch);
    if (int8_stem(li)) {  // bias and ReLU in its epilogue
      ConvStemEpilogue e;
      e.bias = L.bias.data();
      e.relu = L.relu;
      e.out_f32 = v;
      conv_stem_int8_forward(stem_shape(L, x.h, x.w), image_, mu_, inv_, L.weight.data(), e,
                             I_.stem_int8_weight_bits);
      finish(y, v, false);
      return {cost.macs, conv_stem_int8_active().name};
    }
    conv_f32_nhwc(L, float_view(x, scratch), x.h, x.w, v, y.h, y.w);
    finish(y, v, L.relu);
    return cost;
  }

  // conv (layer li; y is its shape only, never stored) -> codes -> max pool + pack, into the
  // output of layer li + 2 (the quant_act). Every code is written by the conv: no zero-fill.
  void run_stem_head(size_t li, const Buf& x, const Buf& y, Scratch& scratch) {
    const Layer &L = I_.layers[li], &P = I_.layers[li + 1], &Q = I_.layers[li + 2];
    Buf& z = bufs_[size_t(Q.out)];
    ConvStemEpilogue e;
    e.bias = L.bias.data();
    e.relu = L.relu;
    e.mul = Q.mul.empty() ? nullptr : Q.mul.data();
    e.add = Q.add.empty() ? nullptr : Q.add.data();
    e.bits = Q.out_bits;
    if (L.dilation == 1) {  // pooled and packed from a few code rows at a time
      e.pool = {P.kernel, P.stride, P.pad, z.h, z.w};
      e.out_packed = z.p;
    } else {
      e.out_q = scratch.take<uint8_t>(size_t(y.h) * y.w * y.c);
    }
    if (int8_stem(li))
      conv_stem_int8_forward(stem_shape(L, x.h, x.w), image_, mu_, inv_, L.weight.data(), e,
                             I_.stem_int8_weight_bits);
    else
      conv_stem_forward(stem_shape(L, x.h, x.w), float_view(x, scratch), L.weight.data(), e);
    if (L.dilation != 1)
      maxpool_pack_q(e.out_q, y.h, y.w, y.c, P.kernel, P.stride, P.pad, z.bits, z.p, z.h, z.w);
  }

  // Layer li is an RGB conv (a stem head or not) that runs in int8 on the image itself
  // (Model::set_stem_int8): it reads the image and nothing else does, so the image is never
  // stored as floats.
  bool int8_stem(size_t li) const {
    const Layer& L = I_.layers[li];
    return I_.stem_int8 && L.op == Op::conv_f32 && I_.fusion[li] != kAbsorbed && L.in[0] == 0 &&
           I_.last_use[0] == int(li) && L.dilation == 1 && L.in_c <= 4;
  }

  LayerCost run_bitconv(size_t li, const Buf& x, Buf& y) {
    const Layer& L = I_.layers[li];
    const BitConvShape s = bitconv_shape(L, x.h, x.w);
    const BgemmVariant& variant = bgemm_for_shape(s);  // timed once per shape, cached
    BitConvEpilogue e;
    e.mul = L.mul.data();
    e.add = L.add.data();
    ResidualConv rc;
    int64_t macs = s.macs();
    if (const int di = I_.residual_conv[li]; di >= 0) {  // its rows computed in e (kResidualConv)
      const Layer& D = I_.layers[size_t(di)];
      const Buf& dx = bufs_[size_t(D.in[0])];
      rc.shape = bitconv_shape(D, dx.h, dx.w);
      rc.in = dx.p;
      rc.weights = &prepared_weights(D, rc.shape, bgemm_for_shape(rc.shape));
      rc.mul = D.mul.data();
      rc.add = D.add.data();
      e.residual_conv = &rc;
      macs += rc.shape.macs();
    } else if (L.in.size() == 2) {
      attach_residual(L, e);
    }
    // Fused re-quantization: no float output tensor. A ReLU before the quantizer changes nothing
    // (the quantizer clips at 0, NaN -> 0 both ways), so ReLU layers fuse too.
    if (L.out_bits > 0) {
      e.out_packed = y.p;
      e.out_bits = L.out_bits;
      e.thresholds = layer_thresholds(L, s, e);
      bitconv_forward(s, x.p, prepared_weights(L, s, variant), e);
    } else if (y.bits == 0) {  // the ReLU in its epilogue, row by row
      e.out_f32 = y.f;
      e.relu = L.relu;
      bitconv_forward(s, x.p, prepared_weights(L, s, variant), e);
    } else {
      e.out_f32 = y.f;
      bitconv_forward(s, x.p, prepared_weights(L, s, variant), e);
      finish(y, y.f, L.relu);
    }
    return {macs, variant.name};
  }

  // The residual (second input) of bit conv L into its epilogue (its shape checked by the plan).
  void attach_residual(const Layer& L, BitConvEpilogue& e) const {
    const Buf& r = bufs_[size_t(L.in[1])];
    if (r.bits > 0) {  // identity shortcut: codes dequantized inside the conv, per row
      e.residual_packed = r.p;
      e.residual_bits = r.bits;
    } else {
      e.residual = r.f;
    }
  }

  static void run_quant_act(const Layer& L, const Buf& x, Buf& y, Scratch& scratch) {
    quantize_pack_act(float_view(x, scratch), int64_t(y.h) * y.w, y.c, y.bits,
                      L.mul.empty() ? nullptr : L.mul.data(),
                      L.add.empty() ? nullptr : L.add.data(), y.p);
  }

  void run_add(const Layer& L, const Buf& x, Buf& y, Scratch& scratch) const {
    const Buf& b = bufs_[size_t(L.in[1])];
    const float* pa = float_view(x, scratch);
    const float* pb = float_view(b, scratch);
    float* v = float_result(y, scratch);
    const int64_t n = int64_t(y.h) * y.w * y.c;
    for (int64_t i = 0; i < n; ++i) v[i] = pa[i] + pb[i];
    finish(y, v, L.relu);
  }

  // The graph's output at the image size goes straight into logits / labels (upsample_emit).
  void run_upsample(size_t li, const Buf& x, Buf& y, Scratch& scratch) {
    const float* in = float_view(x, scratch);
    float* rows = scratch.take<float>(size_t(x.h) * y.w * x.c);
    if (int(li) == P_.emit_layer) {
      upsample_emit(in, x.h, x.w, x.c, h_, w_, rows, logits_, labels_);
      return;
    }
    upsample_nhwc(in, x.h, x.w, x.c, y.h, y.w, rows, y.f);
  }

  // Hands layer li's output to the trace sink (codes unpacked) while it is still live.
  void trace_output(size_t li) const {
    const Layer& L = I_.layers[li];
    const Buf& b = bufs_[size_t(L.out)];
    TracedTensor t{L.name, I_.tensors[size_t(L.out)].name, b.h, b.w, b.c, b.bits, {}, {}};
    const int64_t n = int64_t(b.h) * b.w * b.c;
    if (b.bits > 0 && b.p) {
      t.codes.resize(size_t(n));
      unpack_act_q(b.p, int64_t(b.h) * b.w, b.c, b.bits, t.codes.data());
    } else if (b.bits == 0 && b.f && int(li) != P_.emit_layer) {  // emit: logits written out
      t.values.assign(b.f, b.f + n);
    }
    I_.trace(t);
  }

  const Model::Impl& I_;
  const ArenaPlan& P_;
  std::byte* data_;
  const int h_, w_;
  std::vector<float>* logits_;
  std::vector<uint8_t>* labels_;
  std::vector<Buf> bufs_;
  const float* image_ = nullptr;  // load_input's image [3][h][w] and its normalization
  float mu_[3] = {0, 0, 0}, inv_[3] = {1, 1, 1};
  bool int8_stem_reads_image_ = false;
};

}  // namespace

void execute(const Model::Impl& I, const float* image_nchw, int h, int w,
             std::vector<float>* logits, std::vector<uint8_t>* labels, bool normalize) {
  BFCN_CHECK(h > 0 && w > 0 && h <= 16384 && w <= 16384,
             "Model::run: image size must be 1..16384, got ", h, "x", w);
  // This run's arena, given back when it ends (also on an error).
  struct Lease {
    ArenaPool& pool;
    std::unique_ptr<Arena> arena;
    ~Lease() { pool.give_back(std::move(arena)); }
  } lease{I.arenas, I.arenas.take(h, w)};
  Arena& arena = *lease.arena;
  if (arena.plan.h != h || arena.plan.w != w || arena.plan.tensor.size() != I.tensors.size())
    arena.plan = plan_arena(I, h, w);
  arena.reserve();
  Execution run(I, arena, logits, labels);
  const double input_ms = run.load_input(image_nchw, normalize);
  for (size_t li = 0; li < I.layers.size(); ++li) run.run_layer(li);
  if (I.profile) I.profile->push_back({"(input)", "normalize", input_ms, 0, ""});
  run.emit_output();
}

}  // namespace bfcn::rt
