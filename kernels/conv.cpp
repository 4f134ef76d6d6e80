// conv2d kernels: im2col/col2im on bounded column chunks + kernels/gemm.h, and direct references.
// Per (image, group) with Cg = c/groups, Kg = k/groups, R = Cg*kh*kw rows, P = Ho*Wo columns:
//   forward          Y[Kg,P]  = W[Kg,R] · col[R,P]
//   backward-input   dcol[R,P] = W^T · dY, then col2im (scatter-add) into dx
//   backward-weight  dW[Kg,R] += dY[Kg,P] · col^T   (summed over images, then chunks, in order)
// With multi-panel (AVX-512) tiles and output rows of >= 64 (no groups), forward and
// backward-weight skip im2col: the GEMM reads its operand in place from zero-padded bands of input
// rows (forward_rows_in_place; with strides > 1 along the width on rows split into column phases,
// by the row variant's phase tiles, kernels/conv_direct__avx512.cpp); backward-data of <= 4 input
// channels with stride 2 along the width (the RGB stem) runs a direct kernel
// (kernels/conv_dgrad__avx512.cpp). 3x3 stride-1 convs of rows 16 to 48 wide (the 256- and
// 512-channel layers) run direct register tiles on a zero-padded copy of the input
// (kernels/conv_direct__avx512.cpp): forward, backward-data and backward-weight. The pixel
// dimension is cut into cache-sized chunks (256 pixels forward, ~1 MiB of col backward). Each call
// opens one parallel region and gives every thread a disjoint slice of the output (forward:
// pixel-chunk tasks; backward-input: image and input-channel tasks; backward-weight: rows of dW),
// so every output element has one fixed summation order and results do not depend on the thread
// count.
#include "kernels/conv.h"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/variant.h"

namespace bfcn {

void gather_stride2__ref(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[2 * i];
}
void scatter_add_stride2__ref(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[2 * i] += src[i];
}

std::span<const ConvRowVariant> conv_row_variants() {
  static const ConvRowVariant kVariants[] = {
    {Isa::ref, "conv_rows__ref", gather_stride2__ref, scatter_add_stride2__ref},
#if BFCN_X86
    {Isa::avx2, "conv_rows__avx2", gather_stride2__avx2, scatter_add_stride2__avx2},
    {Isa::avx512,
     "conv_rows__avx512",
     gather_stride2__avx512,
     scatter_add_stride2__avx512,
     conv2d_dgrad_rows_w2__avx512,
     {{{conv3x3_tile__avx512<1, 1, false>, conv3x3_tile__avx512<1, 2, false>},
       {conv3x3_tile__avx512<2, 1, false>, conv3x3_tile__avx512<2, 2, false>}},
      {{conv3x3_tile__avx512<1, 1, true>, conv3x3_tile__avx512<1, 2, true>},
       {conv3x3_tile__avx512<2, 1, true>, conv3x3_tile__avx512<2, 2, true>}}},
     {{conv3x3_wgrad_tile__avx512<2, 1>, conv3x3_wgrad_tile__avx512<2, 2>},
      {conv3x3_wgrad_tile__avx512<4, 1>, conv3x3_wgrad_tile__avx512<4, 2>}},
     conv3x3_wgrad_store__avx512,
     {conv_fwd_phase_tile__avx512<1>, conv_fwd_phase_tile__avx512<2>}},
#endif
  };
  return kVariants;
}

namespace {
const ConvRowVariant& conv_rows() {
  static const ConvRowVariant& v = best_variant(conv_row_variants());
  return v;
}

int64_t g_col_budget = int64_t{1} << 21;  // backward chunks use budget/8 floats (1 MiB)
}  // namespace

int64_t conv2d_set_col_budget(int64_t floats) {
  const int64_t old = g_col_budget;
  g_col_budget = floats > 0 ? floats : old;
  return old;
}

bool ConvGeom::valid() const {
  if (n < 1 || c < 1 || h < 1 || w < 1 || k < 1 || kh < 1 || kw < 1) return false;
  if (stride_h < 1 || stride_w < 1 || dilation_h < 1 || dilation_w < 1) return false;
  if (pad_h < 0 || pad_w < 0 || groups < 1 || c % groups != 0 || k % groups != 0) return false;
  return out_h() >= 1 && out_w() >= 1 && h + 2 * pad_h >= dilation_h * (kh - 1) + 1 &&
         w + 2 * pad_w >= dilation_w * (kw - 1) + 1;
}

namespace {

// Forward pixel chunk: the col block [R, 256] is read in place by the GEMM, 256 floats per row
// keep the rows of one 256-deep k slice within a few pages (TLB) and the block mostly in L2.
constexpr int64_t kFwdChunk = 256;
constexpr int64_t kParallelMinMacs = int64_t{1} << 18;  // below this one thread is faster

// Grow-only aligned scratch for the column chunk of the calling thread.
class ColBuffer {
 public:
  ColBuffer() = default;
  ColBuffer(const ColBuffer&) = delete;
  ColBuffer& operator=(const ColBuffer&) = delete;
  ~ColBuffer() { std::free(p_); }
  float* get(size_t n) {
    if (n > cap_) {
      std::free(p_);
      p_ = static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64));
      if (p_ == nullptr) std::abort();  // out of memory inside a kernel
      cap_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};
thread_local ColBuffer t_col;    // im2col / dcol chunk
thread_local ColBuffer t_wpack;  // forward: packed weights (shared by the team); bwd-w: dW^T sums
thread_local ColBuffer t_tmp;    // backward-weight: the packed GEMM B operand

struct Dims {
  int64_t cg, kg, r, p, hw, ho, wo;
  bool direct;  // 1x1, stride 1, no padding: the input image is already the col matrix
};
Dims dims_of(const ConvGeom& g) {
  Dims d{};
  d.cg = g.c / g.groups;
  d.kg = g.k / g.groups;
  d.r = d.cg * g.kh * g.kw;
  d.ho = g.out_h();
  d.wo = g.out_w();
  d.p = d.ho * d.wo;
  d.hw = g.h * g.w;
  d.direct =
      g.kh == 1 && g.kw == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 && g.pad_w == 0;
  return d;
}

// Equal chunks of at most max(min_cols, budget/R) columns, rounded up to the 16-wide GEMM tile.
int64_t chunk_cols(const Dims& d, int64_t budget, int64_t min_cols) {
  const int64_t max_cols = std::max<int64_t>(min_cols, budget / d.r);
  const int64_t nchunks = (d.p + max_cols - 1) / max_cols;
  const int64_t per = (d.p + nchunks - 1) / nchunks;
  return std::min(d.p, (per + kGemmNr - 1) / kGemmNr * kGemmNr);
}

int64_t ceil_div_nonneg(int64_t a, int64_t b) { return a <= 0 ? 0 : (a + b - 1) / b; }

// For kernel tap (i, j): the output columns ow whose input column iw = ow*sw + off_w is inside
// [0, w) form [lo, hi).
void valid_ow(const ConvGeom& g, int64_t wo, int64_t off_w, int64_t& lo, int64_t& hi) {
  lo = std::min(wo, ceil_div_nonneg(-off_w, g.stride_w));
  hi = g.w - 1 - off_w < 0 ? 0 : std::min(wo, (g.w - 1 - off_w) / g.stride_w + 1);
  hi = std::max(hi, lo);
}

// Rows [r0, r1) of im2col(x_g) restricted to the columns [p0, p0+np): col[(r-r0)*ld + j],
// x_g [Cg,h,w].
void im2col_rows(const ConvGeom& g, const Dims& d, const float* xg, int64_t p0, int64_t np,
                 int64_t r0, int64_t r1, float* col, int64_t ld) {
  const int64_t khw = g.kh * g.kw;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t ch = r / khw, ki = (r / g.kw) % g.kh, kj = r % g.kw;
    const float* xc = xg + ch * d.hw;
    const int64_t off_h = ki * g.dilation_h - g.pad_h, off_w = kj * g.dilation_w - g.pad_w;
    int64_t lo, hi;
    valid_ow(g, d.wo, off_w, lo, hi);
    float* dst = col + (r - r0) * ld;
    for (int64_t p = p0; p < p0 + np;) {
      const int64_t oh = p / d.wo, ow0 = p % d.wo, ow1 = std::min(d.wo, ow0 + (p0 + np - p));
      float* dd = dst + (p - p0);  // dd[ow - ow0] is column (oh, ow)
      const int64_t ih = oh * g.stride_h + off_h;
      if (ih < 0 || ih >= g.h) {
        std::fill(dd, dd + (ow1 - ow0), 0.0f);
      } else {
        const int64_t a = std::clamp(lo, ow0, ow1), b = std::clamp(hi, a, ow1);
        std::fill(dd, dd + (a - ow0), 0.0f);
        const float* src = xc + ih * g.w;
        if (g.stride_w == 1) {
          std::memcpy(dd + (a - ow0), src + (a + off_w),
                      static_cast<size_t>(b - a) * sizeof(float));
        } else if (g.stride_w == 2) {
          if (b > a) conv_rows().gather_stride2(src + (2 * a + off_w), dd + (a - ow0), b - a);
        } else {
          for (int64_t ow = a; ow < b; ++ow) dd[ow - ow0] = src[ow * g.stride_w + off_w];
        }
        std::fill(dd + (b - ow0), dd + (ow1 - ow0), 0.0f);
      }
      p += ow1 - ow0;
    }
  }
}

// dx_g channels [c0, c1) += col2im of col, whose rows are [c0*kh*kw, c1*kh*kw) and columns
// [p0, p0+np). Taps in a fixed order.
void col2im_channels(const ConvGeom& g, const Dims& d, const float* col, int64_t p0, int64_t np,
                     int64_t c0, int64_t c1, float* dxg) {
  const int64_t khw = g.kh * g.kw;
  for (int64_t ch = c0; ch < c1; ++ch) {
    float* xc = dxg + ch * d.hw;
    for (int64_t t = 0; t < khw; ++t) {
      const int64_t ki = t / g.kw, kj = t % g.kw;
      const int64_t off_h = ki * g.dilation_h - g.pad_h, off_w = kj * g.dilation_w - g.pad_w;
      int64_t lo, hi;
      valid_ow(g, d.wo, off_w, lo, hi);
      const float* src = col + ((ch - c0) * khw + t) * np;
      for (int64_t p = p0; p < p0 + np;) {
        const int64_t oh = p / d.wo, ow0 = p % d.wo, ow1 = std::min(d.wo, ow0 + (p0 + np - p));
        const float* ss = src + (p - p0);  // ss[ow - ow0] is column (oh, ow)
        const int64_t ih = oh * g.stride_h + off_h;
        if (ih >= 0 && ih < g.h) {
          const int64_t a = std::clamp(lo, ow0, ow1), b = std::clamp(hi, a, ow1);
          float* row = xc + ih * g.w;
          if (g.stride_w == 2) {
            if (b > a)
              conv_rows().scatter_add_stride2(ss + (a - ow0), row + (2 * a + off_w), b - a);
          } else if (g.stride_w == 1) {  // contiguous: a loop the compiler vectorizes
            float* dst = row + off_w;
            for (int64_t ow = a; ow < b; ++ow) dst[ow] += ss[ow - ow0];
          } else {
            for (int64_t ow = a; ow < b; ++ow) row[ow * g.stride_w + off_w] += ss[ow - ow0];
          }
        }
        p += ow1 - ow0;
      }
    }
  }
}

// Threads for one conv call: one parallel region per call (no per-chunk barriers); nested calls
// and tiny problems stay on the calling thread.
int conv_threads(const ConvGeom& g) {
  if (omp_in_parallel() || g.macs() < kParallelMinMacs) return 1;
  return omp_get_max_threads();
}

// [lo, hi) of `total` for thread t of nt, in multiples of `unit` (the last part takes the rest).
void split_range(int64_t total, int64_t unit, int t, int nt, int64_t& lo, int64_t& hi) {
  const int64_t per = ((total + nt - 1) / nt + unit - 1) / unit * unit;
  lo = std::min(total, t * per);
  hi = std::min(total, lo + per);
}

}  // namespace

namespace {

thread_local ColBuffer t_wflip;  // backward-data: the flipped, transposed or repacked weights
thread_local ColBuffer t_wrows;  // forward by output rows: the weights per column tap
thread_local ColBuffer t_xpad;   // forward by output rows: the zero-padded input, rows interleaved

// No groups, rows of >= 64 outputs (multi-panel AVX-512 tiles): the input is copied once per band
// of output rows into a zero-padded buffer from which the GEMM's B operand of one output row is
// read in place, with a uniform row stride ld:
// - stride 1 along the width: xpad[ih + pad_h][c][pad_w + iw]; for a column tap kj, B[(ki, c), ow]
//   = xpad[((oh*stride_h + ki)*C + c)*ld + kj*dw + ow], so Y row oh = sum over kj of
//   W_kj [K, kh*C] · B: kw GEMM calls (the 64-channel 128^2 layer had spent a sixth of its time
//   writing and re-reading 576 im2col rows per pixel chunk);
// - other strides: xpad[ih + pad_h][kj][c][ow] = x[c][ih][ow*stride_w - pad_w + kj*dw], the
//   column taps gathered once per input row (kw copies of it, not kh*kw as im2col), and B[(ki, kj,
//   c), ow] = xpad[(((oh*stride_h + ki)*kw + kj)*C + c)*ld + ow]: one GEMM call per output row
//   (the 7x7/2 stem).
// One output row per GEMM, so only for rows of >= 64.
// The band layout above for one call: GEMM calls per output row, column taps per call, depth per
// call, row stride ld, floats per padded input row, output rows per band.
// With `phases` (forward, stride > 1 along the width, a row variant with phase tiles), each input
// row is instead split once into stride_w column phases, xpad[ih + pad_h][c][ph][j] =
// x[c][ih][j*stride_w + ph - pad_w], and the phase tiles read column tap kj at phase
// (kj*dw) % stride_w, offset (kj*dw) / stride_w: stride_w copies of a row instead of kw.
struct RowBands {
  bool gathered, phases;
  int64_t ncalls, ktaps, kdepth, ld, row_floats, band, nbands;
};

bool row_bands_of(const ConvGeom& g, const Dims& d, int nt, RowBands& rb, bool phases = false) {
  if (d.direct || g.groups != 1 || g.dilation_h != 1 || d.wo < 64 || !sgemm_has_arows_brows())
    return false;
  rb.gathered = g.stride_w != 1;
  rb.phases = phases && rb.gathered && conv_rows().fwd_phase[0] != nullptr;
  rb.ncalls = rb.gathered ? 1 : g.kw;
  rb.ktaps = rb.gathered ? g.kw : 1;
  rb.kdepth = g.kh * rb.ktaps * g.c;
  const int64_t wo16 = (d.wo + kGemmNr - 1) / kGemmNr * kGemmNr;
  rb.ld = rb.gathered ? wo16 : std::max(g.w + 2 * g.pad_w, (g.kw - 1) * g.dilation_w + wo16);
  if (rb.phases)  // 32-column tiles, plus the largest column offset of a tap
    rb.ld = (d.wo + 31) / 32 * 32 + (g.kw - 1) * g.dilation_w / g.stride_w;
  rb.ld = (rb.ld + 15) / 16 * 16;
  if (rb.ld / 16 % 2 == 0) rb.ld += 16;  // an odd number of cache lines: rows spread over the sets
  rb.row_floats = (rb.phases ? g.stride_w : rb.ktaps) * g.c * rb.ld;
  // Bands of output rows whose padded input rows take about 512 KiB (L2), at least 4 per thread.
  rb.band = std::max<int64_t>(1, ((int64_t{1} << 17) / rb.row_floats - g.kh) / g.stride_h + 1);
  rb.band = std::max<int64_t>(1, std::min(rb.band, (d.ho + 4 * nt - 1) / (4 * nt)));
  rb.nbands = (d.ho + rb.band - 1) / rb.band;
  return true;
}

int64_t band_floats(const ConvGeom& g, const RowBands& rb) {
  return ((rb.band - 1) * g.stride_h + g.kh) * rb.row_floats;
}

// fill_band on column phases (RowBands::phases): padded rows [r0, r1), each channel's row split
// into stride_w phase rows.
void fill_phase_rows(const ConvGeom& g, const Dims& d, const RowBands& rb, const float* xn,
                     int64_t r0, int64_t r1, float* xpad) {
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t ih = r - g.pad_h, s = g.stride_w;
    for (int64_t q = 0; q < g.c * s; ++q) {             // (channel, phase)
      const int64_t cc = q / s, off = q % s - g.pad_w;  // dst[j] = x row[j*s + off]
      float* dst = xpad + ((r - r0) * g.c * s + q) * rb.ld;
      const int64_t lo = std::min(rb.ld, ceil_div_nonneg(-off, s));
      const int64_t hi =
          std::max(lo, g.w - 1 - off < 0 ? 0 : std::min(rb.ld, (g.w - 1 - off) / s + 1));
      if (ih < 0 || ih >= g.h) {
        std::fill(dst, dst + rb.ld, 0.0f);
        continue;
      }
      const float* src = xn + cc * d.hw + ih * g.w;
      std::fill(dst, dst + lo, 0.0f);
      if (s == 2 && hi > lo)
        conv_rows().gather_stride2(src + 2 * lo + off, dst + lo, hi - lo);
      else
        for (int64_t j = lo; j < hi; ++j) dst[j] = src[j * s + off];
      std::fill(dst + hi, dst + rb.ld, 0.0f);
    }
  }
}

// The padded input rows of output rows [oh0, oh1) of image xn [C,h,w] into xpad (layout above).
void fill_band(const ConvGeom& g, const Dims& d, const RowBands& rb, const float* xn, int64_t oh0,
               int64_t oh1, float* xpad) {
  const int64_t r0 = oh0 * g.stride_h, r1 = (oh1 - 1) * g.stride_h + g.kh;  // padded rows
  if (rb.phases) {
    fill_phase_rows(g, d, rb, xn, r0, r1, xpad);
    return;
  }
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t ih = r - g.pad_h;
    for (int64_t tap = 0; tap < rb.ktaps; ++tap) {
      const int64_t off_w = tap * g.dilation_w - g.pad_w;  // gathered: iw = ow*sw + off_w
      int64_t lo = 0, hi = 0;
      if (rb.gathered) valid_ow(g, d.wo, off_w, lo, hi);
      for (int64_t cc = 0; cc < g.c; ++cc) {
        float* dst = xpad + (((r - r0) * rb.ktaps + tap) * g.c + cc) * rb.ld;
        const float* src = xn + cc * d.hw + ih * g.w;
        if (ih < 0 || ih >= g.h) {
          std::fill(dst, dst + rb.ld, 0.0f);
        } else if (!rb.gathered) {
          std::fill(dst, dst + g.pad_w, 0.0f);
          std::memcpy(dst + g.pad_w, src, static_cast<size_t>(g.w) * sizeof(float));
          std::fill(dst + g.pad_w + g.w, dst + rb.ld, 0.0f);
        } else {
          std::fill(dst, dst + lo, 0.0f);
          if (g.stride_w == 2 && hi > lo)
            conv_rows().gather_stride2(src + 2 * lo + off_w, dst + lo, hi - lo);
          else
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * g.stride_w + off_w];
          std::fill(dst + hi, dst + rb.ld, 0.0f);
        }
      }
    }
  }
}

// Direct 3x3 stride-1 convolution of narrow rows (16 <= width < 64, a multiple of 16: the deep
// ResNet layers), on the row variant's register tiles (ConvTile3x3Fn), for forward and, through the
// rotated kernel, backward-data: out [m, ho*wo] (+ bias) from src [n, cin, hin, win] and weights
// read in place, A(i, (ch, t)) = wgt[i*a_rs + ch*a_cs + t]. Each image is copied once into a
// zero-padded buffer [cin][hin + 2*ph][win + 2*pw] (shared by the team), so output pixel (oh, ow)
// of tap (ki, kj) reads it at row oh + ki, column ow + kj: no im2col (the 256- and 512-channel
// layers had spent a tenth of their forward time writing and re-reading 9 copies of the input)
// and no weight repacking. Threads take blocks of output columns; every output sums the depth
// blocks of kDirectCb channels in order, so results do not depend on the thread count.
// One channel [h, w] into dst [h + 2*ph][w + 2*pw], zeros around it.
void pad_channel(const float* src, int64_t h, int64_t w, int64_t ph, int64_t pw, float* dst) {
  const int64_t ld = w + 2 * pw;
  std::fill(dst, dst + ph * ld, 0.0f);
  for (int64_t r = 0; r < h; ++r) {
    float* row = dst + (ph + r) * ld;
    std::fill(row, row + pw, 0.0f);
    std::memcpy(row + pw, src + r * w, static_cast<size_t>(w) * sizeof(float));
    std::fill(row + pw + w, row + ld, 0.0f);
  }
  std::fill(dst + (ph + h) * ld, dst + (2 * ph + h) * ld, 0.0f);
}

struct Direct3x3 {
  int64_t cin, hin, win, ph, pw;  // source image and its padding
  int64_t m, ho, wo;              // output rows (channels) and image
  const float* wgt;
  int64_t a_rs, a_cs;
  bool flip;
};

constexpr int64_t kDirectCb = 32;     // channels per depth block: 288-deep, A panel 13.5 KiB
constexpr int64_t kDirectCols = 256;  // output columns per task (B block and C block in L2)

bool direct3x3_fits(const ConvGeom& g, int64_t out_w) {
  return conv_rows().tile3x3[0][0][0] != nullptr && g.kh == 3 && g.kw == 3 && g.stride_h == 1 &&
         g.stride_w == 1 && g.dilation_h == 1 && g.dilation_w == 1 && g.groups == 1 &&
         out_w % kGemmNr == 0 && out_w < 64;
}

// Columns [j0, j1) of out (one image): every depth block, 12-row tiles (6 at the end, the last
// rows through a zero-padded copy of their weights), 32-column tiles (16 at the end).
void direct3x3_block(const Direct3x3& p, const float* xpad, int64_t j0, int64_t j1, float* out,
                     float* arows) {
  const ConvRowVariant& v = conv_rows();
  const int64_t hp = p.hin + 2 * p.ph, ld = p.win + 2 * p.pw, np_out = p.ho * p.wo;
  alignas(64) float scratch[12 * 32];
  auto boff = [&](int64_t j) { return (j / p.wo) * ld + j % p.wo; };
  for (int64_t ch0 = 0; ch0 < p.cin; ch0 += kDirectCb) {
    const int64_t nch = std::min(kDirectCb, p.cin - ch0);
    const bool acc = ch0 > 0;
    const float* bch = xpad + ch0 * hp * ld;
    for (int64_t ir = 0; ir < p.m;) {
      const int mp = p.m - ir >= 12 ? 2 : 1;
      const int64_t mr = std::min<int64_t>(p.m - ir, 6 * mp);
      const float* a = p.wgt + ir * p.a_rs + ch0 * p.a_cs;
      int64_t a_rs = p.a_rs, a_cs = p.a_cs;
      if (mr < 6) {  // rows past m are zero: arows[(i*nch + ch)*9 + t]
        for (int64_t i = 0; i < 6; ++i)
          for (int64_t ch = 0; ch < nch; ++ch)
            for (int64_t t = 0; t < 9; ++t)
              arows[(i * nch + ch) * 9 + t] = i < mr ? a[i * a_rs + ch * a_cs + t] : 0.0f;
        a = arows;
        a_rs = nch * 9;
        a_cs = 9;
      }
      for (int64_t jr = j0; jr < j1; jr += 32) {
        const int np = j1 - jr > 16 ? 2 : 1;
        const ConvTile3x3Fn fn = v.tile3x3[p.flip ? 1 : 0][mp - 1][np - 1];
        const float* b = bch + boff(jr);
        const int64_t b_next = np > 1 ? boff(jr + 16) - boff(jr) : 0;
        float* c = out + ir * np_out + jr;
        if (mr == 6 * mp) {
          fn(nch, a, a_rs, a_cs, b, hp * ld, ld, b_next, c, np_out, acc);
          continue;
        }
        fn(nch, a, a_rs, a_cs, b, hp * ld, ld, b_next, scratch, 32, false);
        for (int64_t i = 0; i < mr; ++i)
          for (int64_t j = 0; j < 16 * np; ++j)
            c[i * np_out + j] = acc ? c[i * np_out + j] + scratch[i * 32 + j] : scratch[i * 32 + j];
      }
      ir += mr;
    }
  }
}

void direct3x3(const ConvGeom& g, const Direct3x3& p, const float* src, const float* bias,
               float* out) {
  const int nt = conv_threads(g);
  const int64_t hp = p.hin + 2 * p.ph, ld = p.win + 2 * p.pw, np_out = p.ho * p.wo;
  assert(p.ho == hp - 2 && p.wo == ld - 2 && p.wo % kGemmNr == 0);
  float* xpad = t_xpad.get(static_cast<size_t>(p.cin * hp * ld));
  const int64_t per = ((np_out + nt - 1) / nt + 31) / 32 * 32;
  const int64_t cols = std::min(kDirectCols, per);
  const int64_t nblk = (np_out + cols - 1) / cols;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* arows = t_wrows.get(static_cast<size_t>(6 * kDirectCb * 9));
    for (int64_t in = 0; in < g.n; ++in) {
      const float* xs = src + in * p.cin * p.hin * p.win;
#pragma omp for schedule(static)
      for (int64_t ch = 0; ch < p.cin; ++ch)
        pad_channel(xs + ch * p.hin * p.win, p.hin, p.win, p.ph, p.pw, xpad + ch * hp * ld);
      float* on = out + in * p.m * np_out;
#pragma omp for schedule(dynamic, 1)
      for (int64_t blk = 0; blk < nblk; ++blk) {
        const int64_t j0 = blk * cols, j1 = std::min(np_out, j0 + cols);
        direct3x3_block(p, xpad, j0, j1, on, arows);
        if (bias != nullptr)
          for (int64_t kk = 0; kk < p.m; ++kk)
            for (int64_t j = j0; j < j1; ++j) on[kk * np_out + j] += bias[kk];
      }
    }
  }
}

bool forward_direct3x3(const ConvGeom& g, const Dims& d, const float* x, const float* w,
                       const float* bias, float* y) {
  if (!direct3x3_fits(g, d.wo)) return false;
  const Direct3x3 p{g.c, g.h, g.w, g.pad_h, g.pad_w, g.k, d.ho, d.wo, w, g.c * 9, 9, false};
  direct3x3(g, p, x, bias, y);
  return true;
}

// Forward's band tasks: (image, band of output rows), taken dynamically; each thread fills its
// bands into its own buffer and calls row(image, oh, the padded input rows of output row oh).
template <class RowFn>
void for_each_band_row(const ConvGeom& g, const Dims& d, const RowBands& rb, int nt, const float* x,
                       RowFn&& row) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* xpad = t_xpad.get(static_cast<size_t>(band_floats(g, rb)));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < g.n * rb.nbands; ++task) {
      const int64_t in = task / rb.nbands, oh0 = (task % rb.nbands) * rb.band;
      const int64_t oh1 = std::min(d.ho, oh0 + rb.band);
      fill_band(g, d, rb, x + in * g.c * d.hw, oh0, oh1, xpad);
      for (int64_t oh = oh0; oh < oh1; ++oh)
        row(in, oh, xpad + (oh - oh0) * g.stride_h * rb.row_floats);
    }
  }
}

// forward_rows_in_place on column phases (RowBands): the weights packed once per call into panels
// of 12 output channels (6 for a last remainder of up to 6), [p][12] with depth p = (ki, kj, c),
// then per output row every panel's 32-column tiles, the bias added as they are stored.
void forward_row_phases(const ConvGeom& g, const Dims& d, const RowBands& rb, const float* x,
                        const float* w, const float* bias, float* y) {
  const int nt = conv_threads(g);
  const int64_t kdepth = rb.kdepth, khw = g.kh * g.kw;
  float* wp = t_wrows.get(static_cast<size_t>((g.k + 11) / 12 * 12 * kdepth));
  for (int64_t ir = 0; ir < g.k;) {
    const int64_t mw = g.k - ir > 6 ? 12 : 6, mr = std::min(mw, g.k - ir);
    float* dst = wp + ir * kdepth;
    for (int64_t t = 0; t < khw; ++t)
      for (int64_t cc = 0; cc < g.c; ++cc, dst += mw)
        for (int64_t i = 0; i < mw; ++i)
          dst[i] = i < mr ? w[((ir + i) * g.c + cc) * khw + t] : 0.0f;
    ir += mr;
  }
  std::vector<int64_t> koff(static_cast<size_t>(g.kw));
  for (int64_t kj = 0; kj < g.kw; ++kj) {
    const int64_t t = kj * g.dilation_w;
    koff[kj] = t % g.stride_w * rb.ld + t / g.stride_w;
  }
  const ConvPhaseGeom pg{g.kh, g.kw, g.c, rb.row_floats, g.stride_w * rb.ld, koff.data()};
  for_each_band_row(g, d, rb, nt, x, [&](int64_t in, int64_t oh, const float* b) {
    float* yr = y + in * g.k * d.p + oh * d.wo;
    for (int64_t ir = 0; ir < g.k;) {
      const int64_t mw = g.k - ir > 6 ? 12 : 6, mr = std::min(mw, g.k - ir);
      const ConvFwdPhaseTileFn fn = conv_rows().fwd_phase[mw / 6 - 1];
      for (int64_t jr = 0; jr < d.wo; jr += 32)
        fn(pg, wp + ir * kdepth, b + jr, bias != nullptr ? bias + ir : nullptr, mr,
           std::min<int64_t>(32, d.wo - jr), yr + ir * d.p + jr, d.p);
      ir += mr;
    }
  });
}

bool forward_rows_in_place(const ConvGeom& g, const Dims& d, const float* x, const float* w,
                           const float* bias, float* y) {
  const int nt = conv_threads(g);
  RowBands rb{};
  if (!row_bands_of(g, d, nt, rb, true)) return false;
  if (rb.phases) {
    forward_row_phases(g, d, rb, x, w, bias, y);
    return true;
  }
  const int64_t kdepth = rb.kdepth;
  float* wr = t_wrows.get(static_cast<size_t>(rb.ncalls * g.k * kdepth));  // [call][k][ki][tap][c]
  for (int64_t kj = 0; kj < g.kw; ++kj) {
    const int64_t call = rb.gathered ? 0 : kj, tap = rb.gathered ? kj : 0;
    for (int64_t kk = 0; kk < g.k; ++kk)
      for (int64_t ki = 0; ki < g.kh; ++ki)
        for (int64_t cc = 0; cc < g.c; ++cc)
          wr[(call * g.k + kk) * kdepth + (ki * rb.ktaps + tap) * g.c + cc] =
              w[((kk * g.c + cc) * g.kh + ki) * g.kw + kj];
  }
  for_each_band_row(g, d, rb, nt, x, [&](int64_t in, int64_t oh, const float* b) {
    float* yr = y + in * g.k * d.p + oh * d.wo;
    for (int64_t call = 0; call < rb.ncalls; ++call)
      sgemm_arows_brows(g.k, d.wo, kdepth, wr + call * g.k * kdepth, kdepth,
                        b + call * g.dilation_w, rb.ld, yr, d.p, call > 0);
    if (bias != nullptr)
      for (int64_t kk = 0; kk < g.k; ++kk)
        for (int64_t i = 0; i < d.wo; ++i) yr[kk * d.p + i] += bias[kk];
  });
  return true;
}

}  // namespace

// The weights are packed into GEMM panels once per call (threads share the packing), then threads
// take (image, group, pixel chunk) tasks: each one im2cols and multiplies only its own columns.
void conv2d_forward(const ConvGeom& g, const float* x, const float* w, const float* bias,
                    float* y) {
  assert(g.valid());
  const Dims d = dims_of(g);
  if (forward_rows_in_place(g, d, x, w, bias, y)) return;
  if (forward_direct3x3(g, d, x, w, bias, y)) return;
  const int nt = conv_threads(g);
  const int64_t mpan = (d.kg + kGemmMr - 1) / kGemmMr;  // A panels per group
  const int64_t wp_group = mpan * kGemmMr * d.r;
  // With the multi-panel (AVX-512) tiles the weight rows are read in place: packing them cost a
  // quarter of the time of the 512-channel layer, whose 9.4 MB of weights serve a single chunk.
  const bool w_in_place = sgemm_has_arows_brows();
  float* wp =
      d.direct || w_in_place ? nullptr : t_wpack.get(static_cast<size_t>(g.groups * wp_group));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), nth = omp_get_num_threads();
    if (!d.direct && !w_in_place) {
      int64_t lo, hi;
      split_range(g.groups * mpan, 1, t, nth, lo, hi);
      for (int64_t q = lo; q < hi; ++q) {
        const int64_t gi = q / mpan, qq = q % mpan;
        sgemm_pack_a(d.kg, d.r, w + gi * d.kg * d.r, d.r, 1, qq, qq + 1, wp + gi * wp_group);
      }
#pragma omp barrier
    }
    // Tasks = (image, group, pixel chunk), taken dynamically: a thread that was descheduled on a
    // busy machine does not hold the others up. Chunks are at most 256 pixels and small enough
    // that every thread gets work.
    const int64_t per = (d.p + nth - 1) / nth;
    const int64_t per16 = (per + kGemmNr - 1) / kGemmNr * kGemmNr;
    const int64_t chunk = d.direct ? per16 : std::min(kFwdChunk, per16);
    const int64_t nchunks = (d.p + chunk - 1) / chunk;
    float* col = d.direct ? nullptr : t_col.get(static_cast<size_t>(d.r * (kFwdChunk + kGemmNr)));
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t task = 0; task < g.n * g.groups * nchunks; ++task) {
      const int64_t in = task / (g.groups * nchunks), gi = (task / nchunks) % g.groups;
      const int64_t p0 = (task % nchunks) * chunk, np = std::min(chunk, d.p - p0);
      const float* xg = x + (in * g.c + gi * d.cg) * d.hw;
      float* yg = y + (in * g.k + gi * d.kg) * d.p;
      if (d.direct) {
        sgemm(d.kg, np, d.r, w + gi * d.kg * d.r, d.r, 1, xg + p0, d.hw, 1, yg + p0, d.p, false, 1);
      } else {
        // col [R, ld]: the GEMM reads whole 16-column rows, so pad columns are zeroed. One extra
        // 16-float step keeps the row stride off powers of two (L1 set conflicts).
        const int64_t ld = (np + kGemmNr - 1) / kGemmNr * kGemmNr + kGemmNr;
        im2col_rows(g, d, xg, p0, np, 0, d.r, col, ld);
        if (ld - kGemmNr > np)  // only the columns the GEMM reads (none past ld - 16)
          for (int64_t r = 0; r < d.r; ++r)
            std::fill(col + r * ld + np, col + r * ld + ld - kGemmNr, 0.0f);
        if (w_in_place)
          sgemm_arows_brows(d.kg, np, d.r, w + gi * d.kg * d.r, d.r, col, ld, yg + p0, d.p, false);
        else
          sgemm_packed_a(d.kg, np, d.r, wp + gi * wp_group, col, ld, yg + p0, d.p, false);
      }
      if (bias != nullptr)
        for (int64_t kk = 0; kk < d.kg; ++kk) {
          const float b = bias[gi * d.kg + kk];
          float* row = yg + kk * d.p + p0;
          for (int64_t i = 0; i < np; ++i) row[i] += b;
        }
    }
  }
}

namespace {

// A stride-1 conv's input gradient is itself a stride-1 conv: dx = conv(dY, W'), with
// W'[c][k][i][j] = W[k][c][kh-1-i][kw-1-j] and padding dilation*(kernel-1) - pad. With the
// multi-panel (AVX-512) tiles that runs the forward path (im2col of dY, W' rows in place, the taps
// summed inside the GEMM) instead of GEMM + col2im, whose scatter-add cost a fifth of the time
// with K = 64. Only when W' is reused over enough pixels to pay for the copy.
bool backward_input_as_forward(const ConvGeom& g, const Dims& d, const float* dy, const float* w,
                               float* dx) {
  if (d.direct || !sgemm_has_arows_brows() || g.stride_h != 1 || g.stride_w != 1) return false;
  if (g.pad_h > g.dilation_h * (g.kh - 1) || g.pad_w > g.dilation_w * (g.kw - 1)) return false;
  if (g.n * d.p < 4096)
    return false;  // 256- and 512-channel layers: W' of 2.4-9.4 MB, 256-1024 pixels
  ConvGeom t = g;
  t.c = g.k;
  t.k = g.c;
  t.h = d.ho;
  t.w = d.wo;
  t.pad_h = g.dilation_h * (g.kh - 1) - g.pad_h;
  t.pad_w = g.dilation_w * (g.kw - 1) - g.pad_w;
  assert(t.valid() && t.out_h() == g.h && t.out_w() == g.w);
  const int64_t khw = g.kh * g.kw;
  float* wt = t_wflip.get(static_cast<size_t>(g.c * d.kg * khw));  // [c, kg, kh, kw]
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t cc = 0; cc < d.cg; ++cc) {
      float* dst = wt + (gi * d.cg + cc) * d.kg * khw;
      for (int64_t kk = 0; kk < d.kg; ++kk) {
        const float* src = w + ((gi * d.kg + kk) * d.cg + cc) * khw;
        for (int64_t q = 0; q < khw; ++q) dst[kk * khw + q] = src[khw - 1 - q];
      }
    }
  conv2d_forward(t, dy, wt, nullptr, dx);
  return true;
}

// Stride-1 3x3 backward-data of narrow rows: dx = conv(dY padded by 2 - pad, the kernel rotated by
// 180 degrees and transposed), on the direct tiles with the weights read in place (A(c, (k, t)) =
// W[k][c][8 - t]): no W' copy, no GEMM + col2im.
bool backward_input_direct3x3(const ConvGeom& g, const Dims& d, const float* dy, const float* w,
                              float* dx) {
  if (!direct3x3_fits(g, g.w) || g.pad_h > 2 || g.pad_w > 2) return false;
  const Direct3x3 p{g.k, d.ho, d.wo, 2 - g.pad_h, 2 - g.pad_w, g.c, g.h, g.w, w, 9, g.c * 9, true};
  direct3x3(g, p, dy, nullptr, dx);
  return true;
}

// Few input channels and stride 2 along the width (the RGB stem): the direct kernel of the row
// variant, on weights repacked tap-major. Tasks are (image, group, block of dx rows); every dx
// element is one sum in a fixed order whatever the thread count.
bool backward_input_direct_small_c(const ConvGeom& g, const Dims& d, const float* dy,
                                   const float* w, float* dx) {
  const ConvDgradRowsFn fn = conv_rows().dgrad_rows_w2;
  if (fn == nullptr || g.stride_w != 2 || g.dilation_h != 1 || g.dilation_w != 1 ||
      d.cg > kConvDgradMaxC || g.kw > kConvDgradMaxKw)
    return false;
  const int64_t khw = g.kh * g.kw;
  float* wp = t_wflip.get(static_cast<size_t>(g.groups * d.kg * d.r));
  for (int64_t gi = 0; gi < g.groups; ++gi)
    for (int64_t kk = 0; kk < d.kg; ++kk)
      for (int64_t cc = 0; cc < d.cg; ++cc)
        for (int64_t q = 0; q < khw; ++q)
          wp[gi * d.kg * d.r + (q * d.kg + kk) * d.cg + cc] =
              w[((gi * d.kg + kk) * d.cg + cc) * khw + q];
  const int nt = conv_threads(g);
  // Blocks of up to 32 dx rows: each block copies the dY rows it reads once (ceil(kh/stride_h) of
  // them again for the next block).
  const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(32, g.h / (4 * nt)));
  const int64_t nblk = (g.h + rows - 1) / rows;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
  for (int64_t task = 0; task < g.n * g.groups * nblk; ++task) {
    const int64_t in = task / (g.groups * nblk), gi = (task / nblk) % g.groups;
    const int64_t ih0 = (task % nblk) * rows, ih1 = std::min(g.h, ih0 + rows);
    fn(g, dy + (in * g.k + gi * d.kg) * d.p, wp + gi * d.kg * d.r, ih0, ih1,
       dx + (in * g.c + gi * d.cg) * d.hw);
  }
  return true;
}

}  // namespace

// Tasks are (image, group, block of input channels), taken dynamically so that a thread that was
// descheduled on a busy machine does not hold the other up at the end of the call. Blocks are
// whole groups unless there are too few tasks to share. Every dx element is written by one task
// in a fixed order (GEMM k order, then taps, then pixel chunks), whatever the thread count.
void conv2d_backward_input(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  assert(g.valid());
  const Dims d = dims_of(g);
  if (backward_input_as_forward(g, d, dy, w, dx)) return;
  if (backward_input_direct3x3(g, d, dy, w, dx)) return;
  if (backward_input_direct_small_c(g, d, dy, w, dx)) return;
  const int64_t khw = g.kh * g.kw;
  const int nt = conv_threads(g);
  int64_t nblk = 1;  // channel blocks per group
  while (g.n * g.groups * nblk < 4 * nt && nblk < d.cg) nblk *= 2;
  const int64_t cb = (d.cg + nblk - 1) / nblk;
  nblk = (d.cg + cb - 1) / cb;
  // dcol chunk near 1 MiB, written by the GEMM and read back by col2im while still in cache,
  // but >= 256 columns so that repacking W^T per chunk stays cheap.
  const int64_t chunk = chunk_cols(d, g_col_budget / 8, 256);
  // With the multi-panel (AVX-512) tiles, W^T is packed once per call for every (group, channel
  // block), shared by the team, and each dY chunk is copied row by row into a buffer whose row
  // stride is off powers of two (dY rows a whole image apart alias in L1), then read in place.
  // Repacking W^T and transposing dY into panels per chunk had cost a tenth of the time.
  // When every W^T block serves a single chunk (the 512-channel layer at batch 1), packing it per
  // L2-sized block inside sgemm is cheaper than writing and re-reading a whole packed copy.
  const bool wt_once =
      !d.direct && sgemm_has_arows_brows() && g.n * ((d.p + chunk - 1) / chunk) > 1;
  const int64_t blk_rows = cb * khw, blk_pan = (blk_rows + kGemmMr - 1) / kGemmMr;
  const int64_t wt_blk = blk_pan * kGemmMr * d.kg;  // floats per (group, block)
  float* wt = wt_once ? t_wpack.get(static_cast<size_t>(g.groups * nblk * wt_blk)) : nullptr;
  const int64_t ldb = (chunk + kGemmNr - 1) / kGemmNr * kGemmNr + kGemmNr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    float* col = d.direct ? nullptr : t_col.get(static_cast<size_t>(cb * khw * chunk));
    float* dyc = wt_once ? t_tmp.get(static_cast<size_t>(d.kg * ldb)) : nullptr;
    if (wt_once) {
      int64_t lo, hi;
      split_range(g.groups * nblk * blk_pan, 1, omp_get_thread_num(), omp_get_num_threads(), lo,
                  hi);
      for (int64_t q = lo; q < hi; ++q) {
        const int64_t gb = q / blk_pan, qq = q % blk_pan, gi = gb / nblk, c0 = (gb % nblk) * cb;
        const int64_t rows = (std::min(d.cg, c0 + cb) - c0) * khw;
        if (qq * kGemmMr < rows)  // A = W^T: A(i,k) = W[k*R + i]
          sgemm_pack_a(rows, d.kg, w + gi * d.kg * d.r + c0 * khw, 1, d.r, qq, qq + 1,
                       wt + gb * wt_blk);
      }
#pragma omp barrier
    }
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t task = 0; task < g.n * g.groups * nblk; ++task) {
      const int64_t in = task / (g.groups * nblk), gi = (task / nblk) % g.groups;
      const int64_t c0 = (task % nblk) * cb, c1 = std::min(d.cg, c0 + cb);
      const float* wg = w + gi * d.kg * d.r;  // A = W^T: A(i,k) = W[k*R + i]
      const float* dyg = dy + (in * g.k + gi * d.kg) * d.p;
      float* dxg = dx + (in * g.c + gi * d.cg) * d.hw;
      if (d.direct) {
        sgemm(c1 - c0, d.p, d.kg, wg + c0, 1, d.r, dyg, d.p, 1, dxg + c0 * d.hw, d.hw, false, 1);
        continue;
      }
      std::fill(dxg + c0 * d.hw, dxg + c1 * d.hw, 0.0f);
      for (int64_t p0 = 0; p0 < d.p; p0 += chunk) {
        const int64_t np = std::min(chunk, d.p - p0);
        if (wt_once) {
          const int64_t np16 = (np + kGemmNr - 1) / kGemmNr * kGemmNr;
          for (int64_t kk = 0; kk < d.kg; ++kk) {
            float* dst = dyc + kk * ldb;
            std::memcpy(dst, dyg + kk * d.p + p0, static_cast<size_t>(np) * sizeof(float));
            std::fill(dst + np, dst + np16, 0.0f);
          }
          sgemm_packed_a((c1 - c0) * khw, np, d.kg, wt + (gi * nblk + c0 / cb) * wt_blk, dyc, ldb,
                         col, np, false);
        } else {
          sgemm((c1 - c0) * khw, np, d.kg, wg + c0 * khw, 1, d.r, dyg + p0, d.p, 1, col, np, false,
                1);
        }
        col2im_channels(g, d, col, p0, np, c0, c1, dxg);
      }
    }
  }
}

namespace {

// Backward-weight on the band layout of forward_rows_in_place: for output row oh and GEMM call q
// the rows (ki, tap, c) of B there are the A rows of acc_q [kdepth, K] += A [kdepth, wo] ·
// dY_row^T [wo, K], read in place (no im2col); acc is transposed into dW at the end. Threads split
// K (in whole 16-column panels) and each copies its own bands; every dW element is summed over
// images, then output rows, in the same order whatever the split.
bool backward_weight_rows_in_place(const ConvGeom& g, const Dims& d, const float* x,
                                   const float* dy, float* dw) {
  const int nt = conv_threads(g);
  RowBands rb{};
  if (!row_bands_of(g, d, 1, rb)) return false;
  const int64_t kpan = (g.k + kGemmNr - 1) / kGemmNr;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    int64_t p0, p1;
    split_range(kpan, 1, omp_get_thread_num(), omp_get_num_threads(), p0, p1);
    const int64_t k0 = p0 * kGemmNr, k1 = std::min(g.k, p1 * kGemmNr), kn = k1 - k0;
    if (kn > 0) {
      float* xpad = t_xpad.get(static_cast<size_t>(band_floats(g, rb)));
      float* bp = t_tmp.get(static_cast<size_t>((p1 - p0) * kGemmNr * d.wo));
      float* acc = t_wpack.get(static_cast<size_t>(rb.ncalls * rb.kdepth * kn));
      bool first = true;
      for (int64_t in = 0; in < g.n; ++in)
        for (int64_t oh0 = 0; oh0 < d.ho; oh0 += rb.band) {
          const int64_t oh1 = std::min(d.ho, oh0 + rb.band);
          fill_band(g, d, rb, x + in * g.c * d.hw, oh0, oh1, xpad);
          for (int64_t oh = oh0; oh < oh1; ++oh) {
            // B(p, kk) = dY[k0 + kk][oh, p]
            sgemm_pack_b(d.wo, kn, dy + (in * g.k + k0) * d.p + oh * d.wo, 1, d.p, bp);
            for (int64_t call = 0; call < rb.ncalls; ++call)
              sgemm_arows_packed_b(
                  rb.kdepth, kn, d.wo,
                  xpad + (oh - oh0) * g.stride_h * rb.row_floats + call * g.dilation_w, rb.ld, bp,
                  acc + call * rb.kdepth * kn, kn, !first);
            first = false;
          }
        }
      for (int64_t kk = 0; kk < kn; ++kk)
        for (int64_t cc = 0; cc < g.c; ++cc)
          for (int64_t ki = 0; ki < g.kh; ++ki)
            for (int64_t kj = 0; kj < g.kw; ++kj) {
              const int64_t call = rb.gathered ? 0 : kj, tap = rb.gathered ? kj : 0;
              dw[(((k0 + kk) * g.c + cc) * g.kh + ki) * g.kw + kj] =
                  acc[(call * rb.kdepth + (ki * rb.ktaps + tap) * g.c + cc) * kn + kk];
            }
    }
  }
  return true;
}

// Backward-weight of the direct 3x3 convolutions above (narrow rows), per block of 32 output
// channels: acc [R][32] (rows (ki, c, kj), L2-resident) = the padded input rows (read in place, 4
// channels x 3 column taps per 12-row tile) times dY^T (packed once per call), summed over images
// and depth blocks of about 256 output pixels (whole rows), then transposed into those 32 rows of
// dW while in cache, 16x16 blocks in registers (a whole [R][K] acc, 9.4 MB for 512 channels, had
// gone out to memory and back, and with a scalar transposition the 512-channel layer had been no
// faster than its GEMM on packed col^T). Threads split the output channels; every element sums
// images, then depth blocks, in order.
bool backward_weight_direct3x3(const ConvGeom& g, const Dims& d, const float* x, const float* dy,
                               float* dw) {
  const ConvRowVariant& v = conv_rows();
  if (!direct3x3_fits(g, d.wo) || v.wgrad3x3[0][0] == nullptr || v.wgrad3x3_store == nullptr)
    return false;
  const int nt = conv_threads(g);
  const int64_t hp = g.h + 2 * g.pad_h, ld = g.w + 2 * g.pad_w, cs = hp * ld;
  const int64_t xs_img = (g.c + 1) * cs;  // channel C of each image's copy is zeros
  const int64_t kpan = (g.k + kGemmNr - 1) / kGemmNr, bp_img = kpan * kGemmNr * d.p;
  const int64_t rows_blk = std::max<int64_t>(1, 256 / d.wo);  // output rows per depth block
  constexpr int64_t kBlk = 32;                                // output channels per acc block
  // Row tiles: per row tap, channels in fours, then twos (a last odd channel pairs with the zero
  // channel).
  const int64_t quads = g.c / 4, pairs = (g.c % 4 + 1) / 2, tiles_per_ki = quads + pairs;
  float* xpad = t_xpad.get(static_cast<size_t>(g.n * xs_img));
  float* bp = t_tmp.get(static_cast<size_t>(g.n * bp_img));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), nth = omp_get_num_threads();
#pragma omp for schedule(static)
    for (int64_t q = 0; q < g.n * (g.c + 1); ++q) {
      const int64_t in = q / (g.c + 1), ch = q % (g.c + 1);
      float* dst = xpad + in * xs_img + ch * cs;
      if (ch == g.c)
        std::fill(dst, dst + cs, 0.0f);
      else
        pad_channel(x + (in * g.c + ch) * d.hw, g.h, g.w, g.pad_h, g.pad_w, dst);
    }
#pragma omp for schedule(static)
    for (int64_t q = 0; q < g.n * kpan; ++q) {  // B(p, kk) = dY[kk][p]
      const int64_t in = q / kpan, k0 = q % kpan * kGemmNr;
      const int64_t kn = std::min<int64_t>(kGemmNr, g.k - k0);
      sgemm_pack_b(d.p, kn, dy + (in * g.k + k0) * d.p, 1, d.p, bp + in * bp_img + k0 * d.p);
    }
    float* acc = t_wpack.get(static_cast<size_t>(d.r * kBlk));
    alignas(64) float scratch[12 * 32];
    int64_t q0, q1;
    split_range(kpan, kBlk / kGemmNr, t, nth, q0, q1);
    for (int64_t jc = q0 * kGemmNr; jc < std::min(g.k, q1 * kGemmNr); jc += kBlk) {
      const int64_t nr = std::min(kBlk, g.k - jc);
      const int np = nr > kGemmNr ? 2 : 1;
      for (int64_t in = 0; in < g.n; ++in)
        for (int64_t oh0 = 0; oh0 < d.ho; oh0 += rows_blk) {
          const int64_t nrows = std::min(rows_blk, d.ho - oh0);
          const bool add = in > 0 || oh0 > 0;
          const float* b = bp + in * bp_img + jc * d.p + oh0 * d.wo * kGemmNr;
          for (int64_t tile = 0; tile < g.kh * tiles_per_ki; ++tile) {
            const int64_t ki = tile / tiles_per_ki, tq = tile % tiles_per_ki;
            const int64_t c0 = tq < quads ? 4 * tq : 4 * quads + 2 * (tq - quads);
            const int nch = tq < quads ? 4 : 2;
            const int64_t valid_rows = 3 * std::min<int64_t>(nch, g.c - c0);
            const float* a = xpad + in * xs_img + c0 * cs + (ki + oh0) * ld;
            float* cp = acc + (ki * g.c + c0) * 3 * kBlk;
            const ConvWgradTile3x3Fn fn = v.wgrad3x3[nch / 2 - 1][np - 1];
            if (valid_rows == 3 * nch && nr == np * kGemmNr) {
              fn(nrows, d.wo, a, cs, ld, b, kGemmNr * d.p, cp, kBlk, kGemmNr, add);
              continue;
            }
            fn(nrows, d.wo, a, cs, ld, b, kGemmNr * d.p, scratch, 32, kGemmNr, false);
            for (int64_t i = 0; i < valid_rows; ++i)
              for (int64_t j = 0; j < nr; ++j) {
                float& dst = cp[i * kBlk + j];
                dst = add ? dst + scratch[i * 32 + j] : scratch[i * 32 + j];
              }
          }
        }
      v.wgrad3x3_store(acc, g.c, nr, dw + jc * d.r, d.r);
    }
  }
  return true;
}

}  // namespace

// Usually computed transposed, dW_g^T [R,Kg] += col [R,np] · dY_g^T [np,Kg]: the col rows feed the
// GEMM in place and only the small dY chunk is packed (see `transposed` for the other order).
// Threads split the rows R; the pixel chunks, which set the summation order, do not depend on the
// thread count.
void conv2d_backward_weight(const ConvGeom& g, const float* x, const float* dy, float* dw) {
  assert(g.valid());
  const Dims d = dims_of(g);
  if (backward_weight_rows_in_place(g, d, x, dy, dw)) return;
  if (backward_weight_direct3x3(g, d, x, dy, dw)) return;
  const int nt = conv_threads(g);
  // Pixel chunks of a multiple of 256 (the GEMM's k block) with the col block near 1 MiB, so
  // im2col output is still in cache when the GEMM reads it. Independent of the thread count.
  const int64_t chunk =
      d.direct ? d.p : std::min(d.p, std::max<int64_t>(256, g_col_budget / 8 / d.r / 256 * 256));
  const int64_t kg_pad = (d.kg + kGemmNr - 1) / kGemmNr * kGemmNr;
  // Pack the smaller operand: transposed (pack dY, then transpose the [R,Kg] result once) unless
  // packing col^T is cheaper (many rows, few pixels: the 512-channel layers). Both orders sum
  // every element in the same k order, so the choice does not change the result.
  const bool transposed = d.kg * (d.p * g.n + d.r) < d.r * d.p * g.n;
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int t = omp_get_thread_num(), nth = omp_get_num_threads();
    int64_t r0, r1;
    split_range(d.r, kGemmMr, t, nth, r0, r1);
    const int64_t rows = r1 - r0;
    float* col =
        d.direct || rows <= 0 ? nullptr : t_col.get(static_cast<size_t>(rows * (chunk + kGemmNr)));
    if (!transposed) {
      // dW_g [Kg, rows] += dY_g [Kg,np] (rows read in place) · col^T (packed by 8x8 transposes).
      const int64_t rows_pad = (std::max<int64_t>(rows, 0) + kGemmNr - 1) / kGemmNr * kGemmNr;
      float* bp = rows <= 0 ? nullptr : t_tmp.get(static_cast<size_t>(rows_pad * chunk));
      for (int64_t gi = 0; gi < g.groups && rows > 0; ++gi) {
        float* dwg = dw + gi * d.kg * d.r;
        // The first chunk writes dW, the others add to it (no zeroing pass over dW: 9.4 MB for
        // the 512-channel layer, 7% of its time).
        for (int64_t in = 0; in < g.n; ++in) {
          const float* xg = x + (in * g.c + gi * d.cg) * d.hw;
          const float* dyg = dy + (in * g.k + gi * d.kg) * d.p;
          for (int64_t p0 = 0; p0 < d.p; p0 += chunk) {
            const int64_t np = std::min(chunk, d.p - p0);
            if (d.direct) {
              sgemm_pack_b(np, rows, xg + r0 * d.hw + p0, 1, d.hw, bp);
            } else {
              im2col_rows(g, d, xg, p0, np, r0, r1, col, chunk + kGemmNr);
              sgemm_pack_b(np, rows, col, 1, chunk + kGemmNr, bp);
            }
            sgemm_arows_packed_b(d.kg, rows, np, dyg + p0, d.p, bp, dwg + r0, d.r,
                                 in > 0 || p0 > 0);
          }
        }
      }
    }
    float* bp = rows <= 0 || !transposed ? nullptr : t_tmp.get(static_cast<size_t>(kg_pad * chunk));
    float* acc = rows <= 0 || !transposed ? nullptr : t_wpack.get(static_cast<size_t>(rows * d.kg));
    for (int64_t gi = 0; gi < g.groups && rows > 0 && transposed; ++gi) {
      for (int64_t in = 0; in < g.n; ++in) {  // the first chunk writes acc, the others add
        const float* xg = x + (in * g.c + gi * d.cg) * d.hw;
        const float* dyg = dy + (in * g.k + gi * d.kg) * d.p;
        for (int64_t p0 = 0; p0 < d.p; p0 += chunk) {
          const int64_t np = std::min(chunk, d.p - p0);
          sgemm_pack_b(np, d.kg, dyg + p0, 1, d.p, bp);  // B(p, kk) = dY[kk, p0 + p]
          if (d.direct) {
            sgemm_arows_packed_b(rows, d.kg, np, xg + r0 * d.hw + p0, d.hw, bp, acc, d.kg,
                                 in > 0 || p0 > 0);
          } else {
            im2col_rows(g, d, xg, p0, np, r0, r1, col, chunk + kGemmNr);  // stride off 2^k
            sgemm_arows_packed_b(rows, d.kg, np, col, chunk + kGemmNr, bp, acc, d.kg,
                                 in > 0 || p0 > 0);
          }
        }
      }
      float* dwg = dw + gi * d.kg * d.r;
      constexpr int64_t kTile = 32;  // cache-friendly transpose of acc [rows,Kg] into dW [Kg,R]
      for (int64_t rb = 0; rb < rows; rb += kTile)
        for (int64_t kb = 0; kb < d.kg; kb += kTile)
          for (int64_t kk = kb; kk < std::min(d.kg, kb + kTile); ++kk)
            for (int64_t r = rb; r < std::min(rows, rb + kTile); ++r)
              dwg[kk * d.r + r0 + r] = acc[r * d.kg + kk];
    }
  }
}

void conv2d_backward_bias(const ConvGeom& g, const float* dy, float* db) {
  assert(g.valid());
  const int64_t p = g.out_h() * g.out_w();
#pragma omp parallel for schedule(static) if (g.n * g.k * p >= kParallelMinMacs && \
                                              !omp_in_parallel())
  for (int64_t kk = 0; kk < g.k; ++kk) {
    float s = 0.0f;
    for (int64_t in = 0; in < g.n; ++in) {
      const float* row = dy + (in * g.k + kk) * p;
      float part = 0.0f;
      for (int64_t i = 0; i < p; ++i) part += row[i];
      s += part;
    }
    db[kk] = s;
  }
}

// ---- references ----

namespace {
// Calls f(in, oc, oh, ow, ic, ih, iw, wi) for every in-bounds (output, tap) pair: ic is the
// absolute input channel and wi the flat weight index ((oc*Cg + ic%Cg)*kh + ki)*kw + kj.
template <class F>
void for_each_tap(const ConvGeom& g, F&& f) {
  const int64_t cg = g.c / g.groups, kg = g.k / g.groups, ho = g.out_h(), wo = g.out_w();
  for (int64_t in = 0; in < g.n; ++in)
    for (int64_t oc = 0; oc < g.k; ++oc) {
      const int64_t gi = oc / kg;
      for (int64_t oh = 0; oh < ho; ++oh)
        for (int64_t ow = 0; ow < wo; ++ow)
          for (int64_t cc = 0; cc < cg; ++cc)
            for (int64_t ki = 0; ki < g.kh; ++ki) {
              const int64_t ih = oh * g.stride_h - g.pad_h + ki * g.dilation_h;
              if (ih < 0 || ih >= g.h) continue;
              for (int64_t kj = 0; kj < g.kw; ++kj) {
                const int64_t iw = ow * g.stride_w - g.pad_w + kj * g.dilation_w;
                if (iw < 0 || iw >= g.w) continue;
                f(in, oc, oh, ow, gi * cg + cc, ih, iw, ((oc * cg + cc) * g.kh + ki) * g.kw + kj);
              }
            }
    }
}
}  // namespace

void conv2d_forward__ref(const ConvGeom& g, const float* x, const float* w, const float* bias,
                         float* y) {
  const int64_t ho = g.out_h(), wo = g.out_w(), np = g.n * g.k * ho * wo;
  std::vector<double> acc(static_cast<size_t>(np), 0.0);
  for_each_tap(g, [&](int64_t in, int64_t oc, int64_t oh, int64_t ow, int64_t ic, int64_t ih,
                      int64_t iw, int64_t wi) {
    acc[((in * g.k + oc) * ho + oh) * wo + ow] +=
        static_cast<double>(x[((in * g.c + ic) * g.h + ih) * g.w + iw]) * w[wi];
  });
  for (int64_t i = 0; i < np; ++i)
    y[i] = static_cast<float>(acc[i] + (bias ? bias[(i / (ho * wo)) % g.k] : 0.0f));
}

void conv2d_backward_input__ref(const ConvGeom& g, const float* dy, const float* w, float* dx) {
  const int64_t ho = g.out_h(), wo = g.out_w(), nx = g.n * g.c * g.h * g.w;
  std::vector<double> acc(static_cast<size_t>(nx), 0.0);
  for_each_tap(g, [&](int64_t in, int64_t oc, int64_t oh, int64_t ow, int64_t ic, int64_t ih,
                      int64_t iw, int64_t wi) {
    acc[((in * g.c + ic) * g.h + ih) * g.w + iw] +=
        static_cast<double>(dy[((in * g.k + oc) * ho + oh) * wo + ow]) * w[wi];
  });
  for (int64_t i = 0; i < nx; ++i) dx[i] = static_cast<float>(acc[i]);
}

void conv2d_backward_weight__ref(const ConvGeom& g, const float* x, const float* dy, float* dw) {
  const int64_t ho = g.out_h(), wo = g.out_w(), nw = g.k * (g.c / g.groups) * g.kh * g.kw;
  std::vector<double> acc(static_cast<size_t>(nw), 0.0);
  for_each_tap(g, [&](int64_t in, int64_t oc, int64_t oh, int64_t ow, int64_t ic, int64_t ih,
                      int64_t iw, int64_t wi) {
    acc[wi] += static_cast<double>(dy[((in * g.k + oc) * ho + oh) * wo + ow]) *
               x[((in * g.c + ic) * g.h + ih) * g.w + iw];
  });
  for (int64_t i = 0; i < nw; ++i) dw[i] = static_cast<float>(acc[i]);
}

void conv2d_backward_bias__ref(const ConvGeom& g, const float* dy, float* db) {
  const int64_t p = g.out_h() * g.out_w();
  for (int64_t kk = 0; kk < g.k; ++kk) {
    double s = 0.0;
    for (int64_t in = 0; in < g.n; ++in)
      for (int64_t i = 0; i < p; ++i) s += dy[(in * g.k + kk) * p + i];
    db[kk] = static_cast<float>(s);
  }
}

}  // namespace bfcn
