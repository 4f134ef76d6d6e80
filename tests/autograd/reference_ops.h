// Double-precision reference forwards of the differentiable ops of autograd/ops.h: plain loops over
// RefTensor written from each op's definition (PyTorch's semantics where it has the op), sharing no
// code with kernels/. gradcheck_reference differentiates these by central differences (eps 1e-6)
// and compares with the ops' real f32 backward, and checks the f32 forwards against them.
// Header-only: tests/autograd/grad_cases_test.cpp is the one user.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/rng.h"

namespace bfcn::ref {

inline RefTensor zeros(const Shape& s) {
  return {s, std::vector<double>(static_cast<size_t>(s.numel()), 0.0)};
}
inline RefTensor scalar(double v) { return {Shape{1}, {v}}; }

// Flat index of [n,c,h,w] in an NCHW tensor.
inline size_t at(const Shape& s, int64_t n, int64_t c, int64_t h, int64_t w) {
  return static_cast<size_t>(((n * s[1] + c) * s[2] + h) * s[3] + w);
}

// ---- elementwise ----
template <class F>
RefTensor map(const RefTensor& x, F f) {
  RefTensor y = x;
  for (double& v : y.v) v = f(v);
  return y;
}
// b of a's shape or one element (broadcast).
template <class F>
RefTensor zip(const RefTensor& a, const RefTensor& b, F f) {
  RefTensor y = a;
  for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = f(a.v[i], b.v.size() == 1 ? b.v[0] : b.v[i]);
  return y;
}
inline RefTensor add(const RefTensor& a, const RefTensor& b) {
  return zip(a, b, [](double p, double q) { return p + q; });
}
inline RefTensor sub(const RefTensor& a, const RefTensor& b) {
  return zip(a, b, [](double p, double q) { return p - q; });
}
inline RefTensor mul(const RefTensor& a, const RefTensor& b) {
  return zip(a, b, [](double p, double q) { return p * q; });
}
inline RefTensor div(const RefTensor& a, const RefTensor& b) {
  return zip(a, b, [](double p, double q) { return p / q; });
}
inline RefTensor clamp(const RefTensor& x, double lo, double hi) {
  return map(x, [lo, hi](double v) { return std::min(hi, std::max(lo, v)); });
}

// ---- reductions and shape ----
inline RefTensor sum(const RefTensor& x) {
  double s = 0.0;
  for (double v : x.v) s += v;
  return scalar(s);
}
inline RefTensor mean(const RefTensor& x) {
  return scalar(sum(x).v[0] / static_cast<double>(x.v.size()));
}
inline RefTensor max_all(const RefTensor& x) {
  return scalar(*std::max_element(x.v.begin(), x.v.end()));
}
inline RefTensor reshape(const RefTensor& x, const Shape& s) { return {s, x.v}; }

inline RefTensor concat_channels(const std::vector<RefTensor>& xs) {
  const Shape& s0 = xs[0].shape;
  int64_t c_total = 0;
  for (const RefTensor& x : xs) c_total += x.shape[1];
  RefTensor y = zeros(Shape{s0[0], c_total, s0[2], s0[3]});
  for (int64_t n = 0; n < s0[0]; ++n) {
    int64_t c_off = 0;
    for (const RefTensor& x : xs) {
      for (int64_t c = 0; c < x.shape[1]; ++c)
        for (int64_t h = 0; h < s0[2]; ++h)
          for (int64_t w = 0; w < s0[3]; ++w)
            y.v[at(y.shape, n, c_off + c, h, w)] = x.v[at(x.shape, n, c, h, w)];
      c_off += x.shape[1];
    }
  }
  return y;
}

// ---- conv2d: y[n,k,oh,ow] = bias[k] + Σ x[n, g*Cg + c, oh*s - p + i*d, ...] * w[k,c,i,j] ----
inline RefTensor conv2d(const RefTensor& x, const RefTensor& w, const RefTensor* bias,
                        const Conv2dArgs& a) {
  const int64_t n_ = x.shape[0], h_ = x.shape[2], w_ = x.shape[3];
  const int64_t k_ = w.shape[0], cg = w.shape[1], kh = w.shape[2], kw = w.shape[3];
  const int64_t ho = (h_ + 2 * a.pad_h - a.dilation_h * (kh - 1) - 1) / a.stride_h + 1;
  const int64_t wo = (w_ + 2 * a.pad_w - a.dilation_w * (kw - 1) - 1) / a.stride_w + 1;
  const int64_t k_per_group = k_ / a.groups;
  RefTensor y = zeros(Shape{n_, k_, ho, wo});
  for (int64_t n = 0; n < n_; ++n)
    for (int64_t k = 0; k < k_; ++k) {
      const int64_t g = k / k_per_group;
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          double acc = bias != nullptr ? bias->v[static_cast<size_t>(k)] : 0.0;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t i = 0; i < kh; ++i)
              for (int64_t j = 0; j < kw; ++j) {
                const int64_t ih = oh * a.stride_h - a.pad_h + i * a.dilation_h;
                const int64_t iw = ow * a.stride_w - a.pad_w + j * a.dilation_w;
                if (ih < 0 || ih >= h_ || iw < 0 || iw >= w_) continue;
                acc += x.v[at(x.shape, n, g * cg + c, ih, iw)] * w.v[at(w.shape, k, c, i, j)];
              }
          y.v[at(y.shape, n, k, oh, ow)] = acc;
        }
    }
  return y;
}

// ---- pooling (PyTorch: windows may not start in the right padding under ceil_mode) ----
inline int64_t pool_out(int64_t in, int k, int s, int p, bool ceil_mode) {
  const double q = static_cast<double>(in + 2 * p - k) / s;
  int64_t out = static_cast<int64_t>(ceil_mode ? std::ceil(q) : std::floor(q)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// max: padding never wins (as -inf); avg: divisor is the window clipped to the padded input
// (count_include_pad) or to the input itself.
inline RefTensor pool2d(const RefTensor& x, const Pool2dArgs& a, bool is_max) {
  const int64_t n_ = x.shape[0], c_ = x.shape[1], h_ = x.shape[2], w_ = x.shape[3];
  const int64_t ho = pool_out(h_, a.kernel_h, a.stride_h, a.pad_h, a.ceil_mode);
  const int64_t wo = pool_out(w_, a.kernel_w, a.stride_w, a.pad_w, a.ceil_mode);
  RefTensor y = zeros(Shape{n_, c_, ho, wo});
  for (int64_t n = 0; n < n_; ++n)
    for (int64_t c = 0; c < c_; ++c)
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow) {
          int64_t h0 = oh * a.stride_h - a.pad_h, w0 = ow * a.stride_w - a.pad_w;
          int64_t h1 = std::min<int64_t>(h0 + a.kernel_h, h_ + a.pad_h);
          int64_t w1 = std::min<int64_t>(w0 + a.kernel_w, w_ + a.pad_w);
          const int64_t padded_count = (h1 - h0) * (w1 - w0);
          h0 = std::max<int64_t>(h0, 0);
          w0 = std::max<int64_t>(w0, 0);
          h1 = std::min(h1, h_);
          w1 = std::min(w1, w_);
          double acc = is_max ? -INFINITY : 0.0;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w) {
              const double v = x.v[at(x.shape, n, c, h, w)];
              acc = is_max ? std::max(acc, v) : acc + v;
            }
          if (!is_max)
            acc /= static_cast<double>(a.count_include_pad ? padded_count : (h1 - h0) * (w1 - w0));
          y.v[at(y.shape, n, c, oh, ow)] = acc;
        }
  return y;
}
inline RefTensor max_pool2d(const RefTensor& x, const Pool2dArgs& a) { return pool2d(x, a, true); }
inline RefTensor avg_pool2d(const RefTensor& x, const Pool2dArgs& a) { return pool2d(x, a, false); }

inline RefTensor global_avg_pool(const RefTensor& x) {
  const Shape& s = x.shape;
  RefTensor y = zeros(Shape{s[0], s[1], 1, 1});
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c) {
      double acc = 0.0;
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w) acc += x.v[at(s, n, c, h, w)];
      y.v[at(y.shape, n, c, 0, 0)] = acc / static_cast<double>(s[2] * s[3]);
    }
  return y;
}

// ---- batch norm: y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel; training uses
// the batch mean and biased variance over N,H,W, eval the running statistics ----
inline RefTensor batch_norm2d(const RefTensor& x, const RefTensor* gamma, const RefTensor* beta,
                              const std::vector<double>& running_mean,
                              const std::vector<double>& running_var, bool training, double eps) {
  const Shape& s = x.shape;
  const double m = static_cast<double>(s[0] * s[2] * s[3]);
  RefTensor y = zeros(s);
  for (int64_t c = 0; c < s[1]; ++c) {
    const size_t ci = static_cast<size_t>(c);
    double mu = running_mean[ci], var = running_var[ci];
    if (training) {
      mu = 0.0;
      for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t h = 0; h < s[2]; ++h)
          for (int64_t w = 0; w < s[3]; ++w) mu += x.v[at(s, n, c, h, w)];
      mu /= m;
      var = 0.0;
      for (int64_t n = 0; n < s[0]; ++n)
        for (int64_t h = 0; h < s[2]; ++h)
          for (int64_t w = 0; w < s[3]; ++w) {
            const double d = x.v[at(s, n, c, h, w)] - mu;
            var += d * d;
          }
      var /= m;
    }
    const double g = gamma != nullptr ? gamma->v[ci] : 1.0;
    const double b = beta != nullptr ? beta->v[ci] : 0.0;
    for (int64_t n = 0; n < s[0]; ++n)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w) {
          const size_t i = at(s, n, c, h, w);
          y.v[i] = (x.v[i] - mu) / std::sqrt(var + eps) * g + b;
        }
  }
  return y;
}

// ---- bilinear resize, PyTorch's source index: align_corners maps corner to corner
// (dst*(in-1)/(out-1), 0 when out == 1); otherwise pixel centres ((dst+0.5)*in/out - 0.5,
// clamped at 0). The right/bottom neighbour is clamped to the last row/column ----
inline RefTensor upsample_bilinear(const RefTensor& x, int64_t out_h, int64_t out_w,
                                   bool align_corners) {
  const Shape& s = x.shape;
  const auto src = [align_corners](int64_t dst, int64_t in, int64_t out) {
    if (align_corners)
      return out > 1 ? static_cast<double>(dst) * static_cast<double>(in - 1) /
                           static_cast<double>(out - 1)
                     : 0.0;
    return std::max(
        0.0, (static_cast<double>(dst) + 0.5) * static_cast<double>(in) / static_cast<double>(out) -
                 0.5);
  };
  RefTensor y = zeros(Shape{s[0], s[1], out_h, out_w});
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c)
      for (int64_t oh = 0; oh < out_h; ++oh) {
        const double sh = src(oh, s[2], out_h);
        const int64_t h0 = std::min<int64_t>(static_cast<int64_t>(std::floor(sh)), s[2] - 1);
        const int64_t h1 = std::min<int64_t>(h0 + 1, s[2] - 1);
        const double lh = sh - static_cast<double>(h0);
        for (int64_t ow = 0; ow < out_w; ++ow) {
          const double sw = src(ow, s[3], out_w);
          const int64_t w0 = std::min<int64_t>(static_cast<int64_t>(std::floor(sw)), s[3] - 1);
          const int64_t w1 = std::min<int64_t>(w0 + 1, s[3] - 1);
          const double lw = sw - static_cast<double>(w0);
          const auto v = [&](int64_t h, int64_t w) { return x.v[at(s, n, c, h, w)]; };
          y.v[at(y.shape, n, c, oh, ow)] = (1 - lh) * ((1 - lw) * v(h0, w0) + lw * v(h0, w1)) +
                                           lh * ((1 - lw) * v(h1, w0) + lw * v(h1, w1));
        }
      }
  return y;
}

// ---- dropout in training: the op's documented mask, re-derived from the caller's seed (one draw
// seeds the generator, forked per chunk of 2^14 elements; drop where uniform() < p), then
// y = x * mask / (1 - p) ----
inline RefTensor dropout(const RefTensor& x, float p, uint64_t seed) {
  constexpr size_t kChunk = size_t{1} << 14;
  Rng caller(seed);
  const Rng base(caller.next_u64());
  RefTensor y = x;
  for (size_t chunk = 0; chunk * kChunk < y.v.size(); ++chunk) {
    Rng r = base.fork(chunk);
    for (size_t i = chunk * kChunk; i < std::min(y.v.size(), (chunk + 1) * kChunk); ++i)
      y.v[i] = r.uniform() < p ? 0.0 : y.v[i] / (1.0 - static_cast<double>(p));
  }
  return y;
}

// ---- losses ----
// log Σ_k exp(z[base + k*stride]) over k < c, stabilised by the max.
inline double log_sum_exp(const std::vector<double>& z, size_t base, size_t stride, int64_t c,
                          double scale = 1.0) {
  double mx = -INFINITY;
  for (int64_t k = 0; k < c; ++k)
    mx = std::max(mx, z[base + static_cast<size_t>(k) * stride] * scale);
  double s = 0.0;
  for (int64_t k = 0; k < c; ++k)
    s += std::exp(z[base + static_cast<size_t>(k) * stride] * scale - mx);
  return mx + std::log(s);
}

// Σ_pixels w[t]·(lse - x_t) / Σ_pixels w[t] over pixels whose label t != ignore_index.
inline RefTensor softmax_cross_entropy(const RefTensor& logits, const std::vector<int64_t>& labels,
                                       int64_t ignore_index, const std::vector<double>& weights) {
  const Shape& s = logits.shape;
  const size_t hw = static_cast<size_t>(s[2] * s[3]);
  double loss = 0.0, total = 0.0;
  for (int64_t n = 0; n < s[0]; ++n)
    for (size_t p = 0; p < hw; ++p) {
      const int64_t t = labels[static_cast<size_t>(n) * hw + p];
      if (t == ignore_index) continue;
      const size_t base = static_cast<size_t>(n * s[1]) * hw + p;
      const double w = weights.empty() ? 1.0 : weights[static_cast<size_t>(t)];
      loss += w * (log_sum_exp(logits.v, base, hw, s[1]) -
                   logits.v[base + static_cast<size_t>(t) * hw]);
      total += w;
    }
  return scalar(total > 0.0 ? loss / total : 0.0);
}

// T^2 * mean over pixels of KL(softmax(teacher/T) || softmax(student/T)).
inline RefTensor distill_kl(const RefTensor& student, const RefTensor& teacher, double t) {
  const Shape& s = student.shape;
  const size_t hw = static_cast<size_t>(s[2] * s[3]);
  double kl = 0.0;
  for (int64_t n = 0; n < s[0]; ++n)
    for (size_t p = 0; p < hw; ++p) {
      const size_t base = static_cast<size_t>(n * s[1]) * hw + p;
      const double lzs = log_sum_exp(student.v, base, hw, s[1], 1.0 / t);
      const double lzt = log_sum_exp(teacher.v, base, hw, s[1], 1.0 / t);
      for (int64_t k = 0; k < s[1]; ++k) {
        const size_t i = base + static_cast<size_t>(k) * hw;
        const double log_ps = student.v[i] / t - lzs, log_pt = teacher.v[i] / t - lzt;
        kl += std::exp(log_pt) * (log_pt - log_ps);
      }
    }
  return scalar(t * t * kl / static_cast<double>(static_cast<size_t>(s[0]) * hw));
}

// pact_quantize at k = 32 (no rounding): alpha * clamp(x / alpha, 0, 1).
inline RefTensor pact_k32(const RefTensor& x, const RefTensor& alpha) {
  const double a = alpha.v[0];
  return map(x, [a](double v) { return a * std::min(1.0, std::max(0.0, v / a)); });
}

}  // namespace bfcn::ref
