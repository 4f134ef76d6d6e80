// The int8 stem's driver (kernels/conv_stem_int8.h): quantize the image into a padded planar byte
// buffer and the weights into 16-channel panels (both per call: the weight steps depend on the
// image's steps), then per output row the microkernel computes 6 pixels at a time and the row's
// int32 sums go through the dequantizing epilogue.
#include "kernels/conv_stem_int8.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "kernels/bitpack.h"
#include "kernels/variant.h"

namespace bfcn {

namespace {

constexpr int kPanel = 16;  // output channels per weight panel (one zmm of int32 sums)
// The largest integer weight of 15 bits: 127 * 128 + 63 splits into hi = 127, lo = 63.
constexpr int kWeightMax15 = 16319;
// How far from a multiple of 1/255 an 8-bit level can read after float rounding (k / 255.0f
// times 255 is within 3e-5 of k).
constexpr float kOffGrid = 1e-3f;

// Rounds t (NaN -> lo) into [lo, hi], to nearest even; |lo|, |hi| < 2^22.
inline float clamp_round(float t, float lo, float hi) {
  t = t > lo ? (t < hi ? t : hi) : lo;
  return (t + 12582912.0f) - 12582912.0f;  // 1.5*2^23: round to nearest even
}

// The padding's byte: the zero point rounded.
inline uint8_t pad_byte(float zero) { return uint8_t(clamp_round(zero, 0.0f, 255.0f)); }

}  // namespace

StemInputQuant stem_input_quant(const float* x, int c, int64_t pixels, const float* mean,
                                const float* inv_std) {
  BFCN_CHECK(c >= 1 && c <= 4, "int8 stem: 1..4 input channels, got ", c);
  StemInputQuant q;
  for (int ch = 0; ch < c; ++ch) {
    float mn, mx, off_grid;
    conv_stem_int8_active().range(x + ch * pixels, pixels, &mn, &mx, &off_grid);
    const float mu = mean ? mean[ch] : 0.0f, inv = inv_std ? inv_std[ch] : 1.0f;
    // 8-bit levels: 255 x is within float rounding (~1e-5) of an integer.
    if (mn >= 0.0f && mx <= 1.0f && off_grid <= kOffGrid && mu >= 0.0f && mu <= 1.0f &&
        inv > 0.0f && std::isfinite(inv)) {
      q.step[ch] = inv / 255.0f;
      q.zero[ch] = 255.0f * mu;
      continue;
    }
    const float a = (mn - mu) * inv, b = (mx - mu) * inv;
    const float lo = std::min({a, b, 0.0f}), hi = std::max({a, b, 0.0f});
    const float step = (hi - lo) / 255.0f;
    if (!(step > 0.0f) || !std::isfinite(step)) continue;  // constant (or no finite) values
    q.step[ch] = step;
    const float z = -lo / step;  // in [0, 255] up to rounding
    q.zero[ch] = z > 0.0f ? (z < 255.0f ? z : 255.0f) : 0.0f;
  }
  return q;
}

void stem_int8_range__ref(const float* x, int64_t n, float* mn, float* mx, float* off_grid) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo, dev = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
    const float t = x[i] * 255.0f, d = std::fabs(t - std::nearbyint(t));
    dev = d > dev ? d : dev;
  }
  *mn = lo;
  *mx = hi;
  *off_grid = dev;
}

void stem_int8_quantize_row__ref(const float* x, int64_t n, float mu, float inv, float rstep,
                                 float zf, uint8_t* q) {
  for (int64_t i = 0; i < n; ++i) {
    const float t = (x[i] - mu) * inv * rstep;
    q[i] = uint8_t(clamp_round(t + zf, 0.0f, 255.0f));
  }
}

void conv_stem_int8_ukernel_6x16__ref(const uint8_t* a, int64_t lda, const int64_t* row_off,
                                      int nrows, int groups, int passes, const int8_t* bp,
                                      int32_t* c, int64_t ldc) {
  int32_t t[6][kPanel] = {};
  for (int pass = 0; pass < passes; ++pass) {
    int32_t part[6][kPanel] = {};  // this pass's bytes of the weights
    for (int r = 0; r < nrows; ++r)
      for (int g = 0; g < groups; ++g, bp += 4 * kPanel)
        for (int i = 0; i < 6; ++i) {
          const uint8_t* ai = a + i * lda + row_off[r] + 4 * g;
          for (int j = 0; j < kPanel; ++j)
            for (int b = 0; b < 4; ++b) part[i][j] += int32_t(ai[b]) * int32_t(bp[j * 4 + b]);
        }
    for (int i = 0; i < 6; ++i)
      for (int j = 0; j < kPanel; ++j) t[i][j] = t[i][j] * 128 + part[i][j];
  }
  for (int i = 0; i < 6; ++i) std::memcpy(c + i * ldc, t[i], sizeof(t[i]));
}

namespace {

// (float(acc - corr) - corr_frac) * scale + bias, then the ReLU: the float output, and the code's
// start.
inline float stem_int8_value(int32_t acc, int o, const StemInt8Dequant& d) {
  float v = (float(acc - d.corr[o]) - d.corr_frac[o]) * d.scale[o];
  v = v + d.bias[o];
  return d.relu ? (v > 0.0f ? v : 0.0f) : v;
}

}  // namespace

uint8_t stem_int8_code(int32_t acc, int o, const StemInt8Dequant& d) {
  float v = stem_int8_value(acc, o, d);
  if (d.mul) v = v * d.mul[o];
  if (d.add) v = v + d.add[o];
  return quantize_level(v, float((1 << d.bits) - 1));
}

bool stem_int8_thresholds(const StemInt8Dequant& d, int oc, std::vector<int32_t>& t) {
  if (d.mul && std::any_of(d.mul, d.mul + oc, [](float m) { return !(m >= 0.0f); })) return false;
  const int levels = (1 << d.bits) - 1;
  t.assign(size_t(levels) * oc, INT32_MAX);
  for (int o = 0; o < oc; ++o)
    for (int k = 1; k <= levels; ++k) {
      int64_t lo = -(int64_t(1) << 30), hi = int64_t(1) << 30;
      if (stem_int8_code(int32_t(hi), o, d) < k) continue;
      if (stem_int8_code(int32_t(lo), o, d) >= k) {
        t[size_t((k - 1) * oc + o)] = INT32_MIN;
        continue;
      }
      while (hi - lo > 1) {  // code(lo) < k <= code(hi)
        const int64_t mid = lo + (hi - lo) / 2;
        (stem_int8_code(int32_t(mid), o, d) >= k ? hi : lo) = mid;
      }
      t[size_t((k - 1) * oc + o)] = int32_t(hi);
    }
  return true;
}

void conv_stem_int8_epilogue__ref(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                  const StemInt8Dequant& d, uint8_t* q) {
  const int levels = (1 << d.bits) - 1;
  for (int64_t i = 0; i < m; ++i, acc += ldc, q += oc)
    for (int o = 0; o < oc; ++o) {
      if (d.thresholds == nullptr) {
        q[o] = stem_int8_code(acc[o], o, d);
        continue;
      }
      int code = 0;
      for (int k = 0; k < levels; ++k) code += acc[o] >= d.thresholds[k * oc + o];
      q[o] = uint8_t(code);
    }
}

void conv_stem_int8_dequant__ref(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                 const StemInt8Dequant& d, float* y) {
  for (int64_t i = 0; i < m; ++i, acc += ldc, y += oc)
    for (int o = 0; o < oc; ++o) y[o] = stem_int8_value(acc[o], o, d);
}

std::span<const ConvStemInt8Variant> conv_stem_int8_variants() {
  static const ConvStemInt8Variant kVariants[] = {
    {Isa::ref,
     "conv_stem_int8__ref",
     {conv_stem_int8_ukernel_6x16__ref},
     1,
     conv_stem_int8_epilogue__ref,
     conv_stem_int8_dequant__ref,
     stem_int8_range__ref,
     stem_int8_quantize_row__ref},
#if BFCN_X86
    // 4 panels: 24 zmm accumulators, per 4-byte group four weight loads and 6 broadcasts
    {Isa::avx512vnni,
     "conv_stem_int8__avx512vnni",
     {conv_stem_int8_ukernel__avx512vnni<1>, conv_stem_int8_ukernel__avx512vnni<2>,
      conv_stem_int8_ukernel__avx512vnni<3>, conv_stem_int8_ukernel__avx512vnni<4>},
     4,
     conv_stem_int8_epilogue__avx512vnni,
     conv_stem_int8_dequant__avx512vnni,
     stem_int8_range__avx512vnni,
     stem_int8_quantize_row__avx512vnni},
#endif
  };
  return kVariants;
}

namespace {
const ConvStemInt8Variant* g_forced = nullptr;  // conv_stem_int8_use_variant
}  // namespace

const ConvStemInt8Variant& conv_stem_int8_active() {
  if (g_forced != nullptr) return *g_forced;
  static const ConvStemInt8Variant& chosen = best_variant(conv_stem_int8_variants());
  return chosen;
}

const ConvStemInt8Variant* conv_stem_int8_use_variant(const ConvStemInt8Variant* v) {
  const ConvStemInt8Variant* old = g_forced;
  g_forced = v;
  return old;
}

namespace {

// The weights in integers for one set of input steps and zero points: the packed microkernel
// bytes and what the epilogue needs. They depend on the weights and the image's steps and zero
// points only, and every 8-bit image has the same ones, so each thread keeps the last set and
// reuses it while the weights (compared in full) and the steps match.
struct StemInt8Weights {
  // the key
  std::vector<float> w;
  int oc = 0, c = 0, k = 0, weight_bits = 0;
  StemInputQuant iq;
  // w' = w * step[c] (the input step folded in), one scale per output channel so the largest |w'|
  // is the largest integer weight. 8 bits: one byte, one microkernel pass. 15 bits: two bytes,
  // hi * 128 + lo (hi in [-127, 127], lo in [-64, 63]), one pass each. Packed
  // [panel][pass][c][ky][group][16][4], bytes past K zero.
  std::vector<int8_t> bp;
  std::vector<int32_t> wqs;   // the integer weights [o][c][ky][kx]
  std::vector<int32_t> corr;  // per output channel: the zero points' share of acc, in integers
  std::vector<float> corr_frac, scale;
};

const StemInt8Weights& stem_int8_weights(const float* w, int oc, int c, int k, int weight_bits,
                                         const StemInputQuant& iq) {
  thread_local StemInt8Weights sw;
  const size_t n = size_t(oc) * k * k * c;
  if (sw.oc == oc && sw.c == c && sw.k == k && sw.weight_bits == weight_bits &&
      std::memcmp(sw.iq.step, iq.step, sizeof(iq.step)) == 0 &&
      std::memcmp(sw.iq.zero, iq.zero, sizeof(iq.zero)) == 0 && sw.w.size() == n &&
      std::memcmp(sw.w.data(), w, n * sizeof(float)) == 0)
    return sw;
  sw.w.assign(w, w + n);
  sw.oc = oc;
  sw.c = c;
  sw.k = k;
  sw.weight_bits = weight_bits;
  sw.iq = iq;
  const int passes = weight_bits == 8 ? 1 : 2;
  const int groups = (k + 3) / 4, nrows = c * k, panels = (oc + kPanel - 1) / kPanel;
  const int64_t pass_bytes = int64_t(nrows) * groups * 4 * kPanel;
  const int64_t panel_bytes = passes * pass_bytes;
  sw.bp.assign(size_t(panels * panel_bytes), 0);
  sw.wqs.assign(n, 0);
  sw.corr.assign(size_t(oc), 0);
  sw.corr_frac.assign(size_t(oc), 0.0f);
  sw.scale.assign(size_t(oc), 1.0f);
  // The sums stay within +-2^30 (taps * 255 * the largest weight), where the thresholds are exact
  // and acc - corr fits in 32 bits: the RGB 7x7 stem keeps all 15 bits.
  const float wmax =
      passes == 1 ? 127.0f
                  : float(std::min<int64_t>(kWeightMax15, (int64_t(1) << 30) / (255 * k * k * c)));
  for (int o = 0; o < oc; ++o) {
    const float* wo = w + int64_t(o) * k * k * c;
    float mx = 0.0f;
    for (int t = 0; t < k * k * c; ++t) mx = std::max(mx, std::fabs(wo[t] * iq.step[t % c]));
    if (mx > 0.0f && std::isfinite(mx)) sw.scale[size_t(o)] = mx / wmax;
    const float inv = 1.0f / sw.scale[size_t(o)];
    int8_t* po = sw.bp.data() + (o / kPanel) * panel_bytes + (o % kPanel) * 4;
    double zero_share = 0;  // sum of wq * zero over the taps: what the zero points add to acc
    for (int ch = 0; ch < c; ++ch)
      for (int ky = 0; ky < k; ++ky)
        for (int kx = 0; kx < k; ++kx) {
          const float wv = wo[(ky * k + kx) * c + ch] * iq.step[ch];
          const int wq = int(clamp_round(wv * inv, -wmax, wmax));
          const int64_t at = ((int64_t(ch) * k + ky) * groups + kx / 4) * 4 * kPanel + kx % 4;
          if (passes == 1) {
            po[at] = int8_t(wq);
          } else {
            const int hi = (wq + 64) >> 7;  // floor: lo in [-64, 63]
            po[at] = int8_t(hi);
            po[pass_bytes + at] = int8_t(wq - hi * 128);
          }
          zero_share += double(wq) * iq.zero[ch];
          sw.wqs[size_t(((int64_t(o) * c + ch) * k + ky) * k + kx)] = wq;
        }
    sw.corr[size_t(o)] = int32_t(std::nearbyint(zero_share));
    sw.corr_frac[size_t(o)] = float(zero_share - sw.corr[size_t(o)]);
  }
  return sw;
}

}  // namespace

void conv_stem_int8_forward(const ConvStemShape& s, const float* x, const float* mean,
                            const float* inv_std, const float* w, const ConvStemEpilogue& e,
                            int weight_bits) {
  BFCN_CHECK(weight_bits == 8 || weight_bits == 15, "int8 stem: weights of 8 or 15 bits, got ",
             weight_bits);
  BFCN_CHECK(s.dilation == 1 && s.in_c >= 1 && s.in_c <= 4,
             "int8 stem: dilation 1 and 1..4 input channels only, got dilation ", s.dilation, ", ",
             s.in_c, " channels");
  BFCN_CHECK(e.bias != nullptr && (e.out_f32 != nullptr || (e.bits >= 1 && e.bits <= 8)),
             "int8 stem: needs a bias and float output or codes of 1..8 bits");
  const int oh = s.out_h(), ow = s.out_w(), oc = s.out_c, c = s.in_c, k = s.kernel;
  if (oh <= 0 || ow <= 0) return;
  const int64_t pixels = int64_t(s.in_h) * s.in_w;
  const ConvStemInt8Variant& uk = conv_stem_int8_active();
  const StemInputQuant iq = stem_input_quant(x, c, pixels, mean, inv_std);

  const int passes = weight_bits == 8 ? 1 : 2;
  const int groups = (k + 3) / 4, nrows = c * k, panels = (oc + kPanel - 1) / kPanel;
  const int64_t pass_bytes = int64_t(nrows) * groups * 4 * kPanel;
  const int64_t panel_bytes = passes * pass_bytes;
  const StemInt8Weights& sw = stem_int8_weights(w, oc, c, k, weight_bits, iq);
  const std::vector<int8_t>& bp = sw.bp;
  const std::vector<int32_t>& wqs = sw.wqs;

  // The padded planar image: rows/columns the windows reach, the last 6-pixel group of a row
  // may read past the image (those tile rows are dropped), padding = the rounded zero point.
  const int tiles = (ow + 5) / 6;
  const int hp = std::max(s.in_h + 2 * s.pad, (oh - 1) * s.stride + k);
  const int wp = std::max(s.in_w + 2 * s.pad, (tiles * 6 - 1) * s.stride + 4 * groups);
  const int64_t plane = int64_t(hp) * wp;
  thread_local std::vector<uint8_t> xbuf;  // kept between calls (page faults, as the FP32 stem)
  if (xbuf.size() < size_t(c * plane)) xbuf.resize(size_t(c * plane));
  uint8_t* xp = xbuf.data();
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
  for (int64_t r = 0; r < int64_t(c) * hp; ++r) {
    const int ch = int(r / hp), py = int(r % hp), iy = py - s.pad;
    uint8_t* row = xp + r * wp;
    const uint8_t z = pad_byte(iq.zero[ch]);
    if (iy < 0 || iy >= s.in_h) {
      std::memset(row, z, size_t(wp));
      continue;
    }
    std::memset(row, z, size_t(s.pad));
    const float* src = x + ch * pixels + int64_t(iy) * s.in_w;
    const float mu = mean ? mean[ch] : 0.0f, inv = inv_std ? inv_std[ch] : 1.0f;
    uk.quantize_row(src, s.in_w, mu, inv, 1.0f / iq.step[ch], iq.zero[ch], row + s.pad);
    std::memset(row + s.pad + s.in_w, z, size_t(wp - s.pad - s.in_w));
  }

  std::vector<int64_t> row_off(static_cast<size_t>(nrows));
  for (int ch = 0; ch < c; ++ch)
    for (int ky = 0; ky < k; ++ky) row_off[size_t(ch * k + ky)] = ch * plane + int64_t(ky) * wp;
  // Padding. A padded tap reads the rounded zero point, not the zero point: a window that overlaps
  // the border is off by (zero - pad byte) * (its padded taps' weights). Its taps inside the image
  // are a rectangle [ky0, ky1) x [kx0, kx1), the same for every window of a border row or column,
  // so the fix is one integer vector per (row range, column range), added to the sums.
  auto tap_class = [&](int outs, int in_size, std::vector<int>& cls) {
    std::vector<std::pair<int, int>> ranges = {{0, k}};  // class 0: every tap inside
    cls.assign(size_t(outs), 0);
    for (int i = 0; i < outs; ++i) {
      const int start = i * s.stride - s.pad;
      const int lo = std::min(k, std::max(0, -start));  // empty when all in the padding
      const std::pair<int, int> r{lo, std::max(lo, std::min(k, in_size - start))};
      const auto it = std::find(ranges.begin(), ranges.end(), r);
      cls[size_t(i)] = int(it - ranges.begin());
      if (it == ranges.end()) ranges.push_back(r);
    }
    return ranges;
  };
  std::vector<int> row_class, col_class;
  const auto row_ranges = tap_class(oh, s.in_h, row_class);
  const auto col_ranges = tap_class(ow, s.in_w, col_class);
  std::vector<int> border_cols;  // the columns with windows over the left or right padding
  for (int ox = 0; ox < ow; ++ox)
    if (col_class[size_t(ox)] != 0) border_cols.push_back(ox);
  const int ncols = int(col_ranges.size());
  std::vector<int32_t> pad_fix(row_ranges.size() * ncols * size_t(oc), 0);
  {
    // Per (o, ch): prefix sums of the integer weights over (ky, kx), then each rectangle's sum.
    std::vector<int64_t> prefix(size_t((k + 1) * (k + 1)));
    std::vector<double> fix(pad_fix.size() / size_t(oc), 0.0);
    for (int o = 0; o < oc; ++o) {
      std::fill(fix.begin(), fix.end(), 0.0);
      for (int ch = 0; ch < c; ++ch) {
        const int32_t* wk = wqs.data() + (int64_t(o) * c + ch) * k * k;
        for (int ky = 0; ky <= k; ++ky)
          for (int kx = 0; kx <= k; ++kx)
            prefix[size_t(ky * (k + 1) + kx)] =
                ky == 0 || kx == 0
                    ? 0
                    : wk[(ky - 1) * k + kx - 1] + prefix[size_t((ky - 1) * (k + 1) + kx)] +
                          prefix[size_t(ky * (k + 1) + kx - 1)] -
                          prefix[size_t((ky - 1) * (k + 1) + kx - 1)];
        auto rect = [&](std::pair<int, int> ry, std::pair<int, int> rx) {
          auto at = [&](int ty, int tx) { return prefix[size_t(ty * (k + 1) + tx)]; };
          return at(ry.second, rx.second) - at(ry.first, rx.second) - at(ry.second, rx.first) +
                 at(ry.first, rx.first);
        };
        const int64_t total = rect({0, k}, {0, k});
        const double off = double(iq.zero[ch]) - double(pad_byte(iq.zero[ch]));
        for (size_t ry = 0; ry < row_ranges.size(); ++ry)
          for (int rx = 0; rx < ncols; ++rx)
            fix[ry * size_t(ncols) + size_t(rx)] +=
                off * double(total - rect(row_ranges[ry], col_ranges[size_t(rx)]));
      }
      for (size_t i = 0; i < fix.size(); ++i)
        pad_fix[i * size_t(oc) + size_t(o)] = int32_t(std::nearbyint(fix[i]));
    }
  }

  StemInt8Dequant dq{
      sw.corr.data(), sw.corr_frac.data(), sw.scale.data(), e.bias, e.relu, e.mul, e.add, e.bits};
  std::vector<int32_t> thresholds;  // 1-2 bit codes: compares instead of float operations
  if (!e.out_f32 && e.bits <= 2 && stem_int8_thresholds(dq, oc, thresholds))
    dq.thresholds = thresholds.data();
  const int64_t ldc = int64_t(panels) * kPanel;
  // Conv row oy's int32 sums [ow][ldc], in this thread's buffer.
  auto row_sums = [&](int oy) -> const int32_t* {
    thread_local std::vector<int32_t> acc;
    acc.resize(size_t(tiles) * 6 * size_t(ldc));
    const uint8_t* arow = xp + int64_t(oy) * s.stride * wp;
    for (int t = 0; t < tiles; ++t)
      for (int p = 0; p < panels;) {
        const int np = std::min(uk.max_panels, panels - p);
        uk.by_panels[np - 1](arow + int64_t(t) * 6 * s.stride, s.stride, row_off.data(), nrows,
                             groups, passes, bp.data() + p * panel_bytes,
                             acc.data() + int64_t(t) * 6 * ldc + p * kPanel, ldc);
        p += np;
      }
    auto add_fix = [&](int ox) {
      const int32_t* fix =
          pad_fix.data() + (int64_t(row_class[size_t(oy)]) * ncols + col_class[size_t(ox)]) * oc;
      int32_t* a = acc.data() + int64_t(ox) * ldc;
      for (int o = 0; o < oc; ++o) a[o] += fix[o];
    };
    if (row_class[size_t(oy)] != 0)
      for (int ox = 0; ox < ow; ++ox) add_fix(ox);
    else
      for (int ox : border_cols) add_fix(ox);
    return acc.data();
  };
  if (e.out_f32 && e.pool.kernel > 0) {
    stem_pool_rows(
        oh, ow, oc, e.pool, e.out_f32,
        [&](int oy, float* dst) { uk.dequant(row_sums(oy), ow, oc, ldc, dq, dst); }, ow);
    return;
  }
  if (e.out_packed) {
    stem_pool_pack_rows(oh, ow, oc, e.pool, e.bits, e.out_packed, [&](int oy, uint8_t* dst) {
      uk.epilogue(row_sums(oy), ow, oc, ldc, dq, dst);
    });
    return;
  }
#pragma omp parallel for schedule(dynamic, 1) if (int64_t(oh) * ow * oc * k * k * c > (1 << 20))
  for (int oy = 0; oy < oh; ++oy) {
    if (e.out_f32)
      uk.dequant(row_sums(oy), ow, oc, ldc, dq, e.out_f32 + int64_t(oy) * ow * oc);
    else
      uk.epilogue(row_sums(oy), ow, oc, ldc, dq, e.out_q + int64_t(oy) * ow * oc);
  }
}

}  // namespace bfcn
