// Stem convolution drivers. Direct path (dilation 1): the image is copied once into a zero-padded
// NHWC buffer, then per output row and 16-channel weight panel the microkernel computes 6 pixels
// at a time with A rows read in place; the row's [OW][OC] sums go through the epilogue. Other
// dilations: im2col of >= ~256 output pixels + sgemm_arows_packed_b.
#include "kernels/conv_stem.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#include "core/error.h"
#include "kernels/act_pack.h"
#include "kernels/bitpack.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "kernels/variant.h"

namespace bfcn {

namespace {

struct AlignedFloats {
  explicit AlignedFloats(size_t n)
      : p(static_cast<float*>(::operator new(n * sizeof(float), std::align_val_t(64)))) {}
  ~AlignedFloats() { ::operator delete(p, std::align_val_t(64)); }
  AlignedFloats(const AlignedFloats&) = delete;
  AlignedFloats& operator=(const AlignedFloats&) = delete;
  float* p;
};

// One output pixel's patch row [K][K][C] (zeros outside the image).
void patch_row(const ConvStemShape& s, const float* x, int oy, int ox, float* d) {
  const int k = s.kernel, c = s.in_c;
  for (int ky = 0; ky < k; ++ky)
    for (int kx = 0; kx < k; ++kx, d += c) {
      const int iy = oy * s.stride - s.pad + ky * s.dilation;
      const int ix = ox * s.stride - s.pad + kx * s.dilation;
      if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w)
        std::fill_n(d, c, 0.0f);
      else
        std::memcpy(d, x + (int64_t(iy) * s.in_w + ix) * c, sizeof(float) * size_t(c));
    }
}

// y [m][oc] = acc + bias, then the ReLU.
void bias_relu(const ConvStemEpilogue& e, int oc, const float* acc, int64_t m, float* y) {
  for (int64_t i = 0; i < m * oc; i += oc)
    for (int o = 0; o < oc; ++o) y[i + o] = acc[i + o] + e.bias[o];
  if (e.relu)
    for (int64_t i = 0; i < m * oc; ++i) y[i] = y[i] > 0.0f ? y[i] : 0.0f;
}

// acc [m][oc] -> the epilogue's output rows starting at pixel p0 (out_f32 unpooled, or out_q).
void epilogue(const ConvStemEpilogue& e, int oc, const float* acc, int64_t m, int64_t p0) {
  if (e.out_f32) {
    bias_relu(e, oc, acc, m, e.out_f32 + p0 * oc);
    return;
  }
  conv_stem_active().quantize(acc, m, oc, e.bias, e.relu, e.mul, e.add, e.bits, e.out_q + p0 * oc);
}

void forward_im2col(const ConvStemShape& s, const float* x, const float* bp,
                    const ConvStemEpilogue& e) {
  const int oh = s.out_h(), ow = s.out_w(), oc = s.out_c;
  const int kk = s.kernel * s.kernel * s.in_c;
  const int rows = std::max(1, std::min(oh, (256 + ow - 1) / ow));
  const int blocks = (oh + rows - 1) / rows;
#pragma omp parallel if (int64_t(oh) * ow * oc * kk > (1 << 20))
  {
    std::vector<float> col(size_t(rows) * ow * kk);
    AlignedFloats acc(size_t(rows) * ow * oc);
#pragma omp for schedule(dynamic, 1)
    for (int blk = 0; blk < blocks; ++blk) {
      const int y0 = blk * rows, y1 = std::min(oh, y0 + rows);
      for (int oy = y0; oy < y1; ++oy)
        for (int ox = 0; ox < ow; ++ox)
          patch_row(s, x, oy, ox, col.data() + (int64_t(oy - y0) * ow + ox) * kk);
      const int64_t m = int64_t(y1 - y0) * ow;
      sgemm_arows_packed_b(m, oc, kk, col.data(), kk, bp, acc.p, oc, false);
      epilogue(e, oc, acc.p, m, int64_t(y0) * ow);
    }
  }
}

void forward_direct(const ConvStemShape& s, const float* x, const float* bp,
                    const ConvStemEpilogue& e) {
  const int oh = s.out_h(), ow = s.out_w(), oc = s.out_c, c = s.in_c, k = s.kernel;
  const int kk = k * k * c, panels = (oc + kGemmNr - 1) / kGemmNr, groups = (ow + 5) / 6;
  // Padded image [HP][WP][C]: rows/columns the windows can reach, plus slack so the last 6-pixel
  // group of a row may read past the image (those rows of the tile are discarded).
  const int hp = std::max(s.in_h + 2 * s.pad, (oh - 1) * s.stride + k);
  const int wp = std::max(s.in_w + 2 * s.pad, (groups * 6 - 1) * s.stride + k);
  const int64_t rs = int64_t(wp) * c;
  const size_t total = size_t(hp) * rs + size_t(6 * s.stride * c + kk);
  // Kept between calls: a fresh 3 MB buffer per image costs page faults comparable to the
  // padding copy itself. Every word of [0, total) is rewritten below.
  thread_local std::vector<float> xbuf;
  if (xbuf.size() < total) xbuf.resize(total);
  float* xp = xbuf.data();
  // Zero only the padding: the rows outside the image and each image row's margins.
  const int64_t top = int64_t(s.pad) * rs, bottom = int64_t(s.pad + s.in_h) * rs;
  std::fill(xp, xp + top, 0.0f);
  std::fill(xp + bottom, xp + total, 0.0f);
#pragma omp parallel for schedule(static) if (int64_t(s.in_h) * s.in_w * c > 65536)
  for (int iy = 0; iy < s.in_h; ++iy) {
    float* r = xp + top + int64_t(iy) * rs;
    const int64_t left = int64_t(s.pad) * c, right = left + int64_t(s.in_w) * c;
    std::fill(r, r + left, 0.0f);
    std::memcpy(r + left, x + int64_t(iy) * s.in_w * c, sizeof(float) * size_t(s.in_w) * c);
    std::fill(r + right, r + rs, 0.0f);
  }
  const ConvStemVariant& uk = conv_stem_active();
  const int64_t lda = int64_t(s.stride) * c, ldc = int64_t(panels) * kGemmNr;
  // Conv row oy's sums [ow][oc] (no bias), in this thread's buffers.
  auto row_sums = [&](int oy) -> const float* {
    thread_local std::vector<float> acc, packed_acc;
    acc.resize(size_t(groups) * 6 * size_t(ldc));
    const float* arow = xp + int64_t(oy) * s.stride * rs;
    for (int g = 0; g < groups; ++g)
      for (int q = 0; q < panels;) {
        const int np = std::min(uk.max_panels, panels - q);
        uk.by_panels[np - 1](arow + g * 6 * lda, lda, rs, k, k * c, bp + int64_t(q) * kGemmNr * kk,
                             acc.data() + int64_t(g) * 6 * ldc + q * kGemmNr, ldc);
        q += np;
      }
    if (ldc == oc) return acc.data();
    packed_acc.resize(size_t(ow) * oc);  // drop the zero-padded channels of the last panel
    for (int ox = 0; ox < ow; ++ox)
      std::memcpy(packed_acc.data() + int64_t(ox) * oc, acc.data() + ox * ldc,
                  sizeof(float) * size_t(oc));
    return packed_acc.data();
  };
  if (e.out_f32 && e.pool.kernel > 0) {  // the bias and the ReLU after the pool (exact)
    if (ldc == oc) {  // the sums straight into the pool's ring, whole 6-pixel groups
      stem_pool_rows(
          oh, ow, oc, e.pool, e.out_f32,
          [&](int oy, float* dst) {
            const float* arow = xp + int64_t(oy) * s.stride * rs;
            for (int g = 0; g < groups; ++g)
              for (int q = 0; q < panels;) {
                const int np = std::min(uk.max_panels, panels - q);
                uk.by_panels[np - 1](arow + g * 6 * lda, lda, rs, k, k * c,
                                     bp + int64_t(q) * kGemmNr * kk,
                                     dst + int64_t(g) * 6 * oc + q * kGemmNr, oc);
                q += np;
              }
          },
          groups * 6, e.bias, e.relu);
    } else {
      stem_pool_rows(
          oh, ow, oc, e.pool, e.out_f32,
          [&](int oy, float* dst) {
            std::memcpy(dst, row_sums(oy), sizeof(float) * size_t(ow) * size_t(oc));
          },
          ow, e.bias, e.relu);
    }
    return;
  }
  if (e.out_f32) {
#pragma omp parallel for schedule(dynamic, 1) if (int64_t(oh) * ow * oc * kk > (1 << 20))
    for (int oy = 0; oy < oh; ++oy) bias_relu(e, oc, row_sums(oy), ow, e.out_f32 + oy * ow * oc);
    return;
  }
  // Conv row oy's codes [ow][oc], straight from the microkernel's registers where it quantizes.
  auto code_row = [&](int oy, uint8_t* qrow) {
    if (!uk.by_panels_q[0]) {
      uk.quantize(row_sums(oy), ow, oc, e.bias, e.relu, e.mul, e.add, e.bits, qrow);
      return;
    }
    const float* arow = xp + int64_t(oy) * s.stride * rs;
    for (int g = 0; g < groups; ++g)
      for (int q = 0; q < panels;) {
        const int np = std::min(uk.max_panels, panels - q), o = q * kGemmNr;
        StemQuantTile t;
        t.bias = e.bias + o;
        t.mul = e.mul ? e.mul + o : nullptr;
        t.add = e.add ? e.add + o : nullptr;
        t.relu = e.relu;
        t.bits = e.bits;
        t.npix = std::min(6, ow - g * 6);  // the row's last group may be short
        t.valid = std::min(np * kGemmNr, oc - o);
        uk.by_panels_q[np - 1](arow + g * 6 * lda, lda, rs, k, k * c,
                               bp + int64_t(q) * kGemmNr * kk, t, qrow + int64_t(g) * 6 * oc + o,
                               oc);
        q += np;
      }
  };
  if (e.out_packed) {
    stem_pool_pack_rows(oh, ow, oc, e.pool, e.bits, e.out_packed, code_row);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1) if (int64_t(oh) * ow * oc * kk > (1 << 20))
  for (int oy = 0; oy < oh; ++oy) code_row(oy, e.out_q + int64_t(oy) * ow * oc);
}

}  // namespace

void stem_pool_row__ref(const float* const* rows, int nrows, int ow, int oc, int kernel, int stride,
                        int pad, int pw, const float* bias, bool relu, float* out) {
  std::fill(out, out + int64_t(pw) * oc, -std::numeric_limits<float>::infinity());
  for (int r = 0; r < nrows; ++r)
    for (int px = 0; px < pw; ++px) {
      float* d = out + int64_t(px) * oc;
      for (int kx = 0; kx < kernel; ++kx) {
        const int ix = px * stride - pad + kx;
        if (ix < 0 || ix >= ow) continue;
        const float* src = rows[r] + int64_t(ix) * oc;
        for (int ch = 0; ch < oc; ++ch) d[ch] = std::max(d[ch], src[ch]);  // a NaN tap: skipped
      }
    }
  if (bias == nullptr) return;
  for (int px = 0; px < pw; ++px)
    for (int ch = 0; ch < oc; ++ch) {
      float& d = out[int64_t(px) * oc + ch];
      d = d + bias[ch];
      if (relu) d = d > 0.0f ? d : 0.0f;
    }
}

namespace {

// The band driver of the fused pools: pooled rows [0, PH) in bands, each band keeping its last
// `kernel` conv rows (T = float or code) in a ring, so only the conv rows two bands share are
// computed twice. pool_row(window, n, pooled_row py) pools one row from the n conv rows in window.
// A ring slot holds row_pixels >= ow pixels (what row may write).
template <class T, class RowFn, class PoolFn>
void pool_bands(int oh, int ow, int oc, const StemMaxPool& pool, int row_pixels, const RowFn& row,
                const PoolFn& pool_row) {
  const int k = pool.kernel, st = pool.stride, pad = pool.pad, ph = pool.out_h;
  const int64_t row_floats = int64_t(std::max(row_pixels, ow)) * oc;
  const bool parallel = int64_t(oh) * ow * oc > 65536;
  // One band per thread alone; with a team, two per thread for balance. A thread's ring carries
  // over between its bands, but each band another thread ran before costs a shared conv row
  // computed twice.
  const int threads = parallel ? omp_get_max_threads() : 1;
  const int tasks = threads == 1 ? 1 : 2 * threads;
  const int band = std::max(8, (ph + tasks - 1) / tasks);
  const int bands = (ph + band - 1) / band;
#pragma omp parallel if (parallel)
  {
    std::vector<T> ring(size_t(k * row_floats));  // conv row iy in slot iy % k
    std::vector<int> held(size_t(k), -1);
    std::vector<const T*> window(static_cast<size_t>(k));
#pragma omp for schedule(dynamic, 1)
    for (int b = 0; b < bands; ++b)
      for (int py = b * band; py < std::min(ph, (b + 1) * band); ++py) {
        int n = 0;
        for (int ky = 0; ky < k; ++ky) {
          const int iy = py * st - pad + ky;
          if (iy < 0 || iy >= oh) continue;
          T* r = ring.data() + (iy % k) * row_floats;
          if (held[size_t(iy % k)] != iy) {
            row(iy, r);
            held[size_t(iy % k)] = iy;
          }
          window[size_t(n++)] = r;
        }
        pool_row(window.data(), n, py);
      }
  }
}

}  // namespace

void stem_pool_rows(int oh, int ow, int oc, const StemMaxPool& pool, float* pooled,
                    const std::function<void(int oy, float* dst)>& row, int row_pixels,
                    const float* bias, bool relu) {
  const StemPoolRowFn pool_row = conv_stem_active().pool_row;
  pool_bands<float>(oh, ow, oc, pool, row_pixels, row,
                    [&](const float* const* window, int n, int py) {
                      pool_row(window, n, ow, oc, pool.kernel, pool.stride, pool.pad, pool.out_w,
                               bias, relu, pooled + int64_t(py) * pool.out_w * oc);
                    });
}

void stem_pool_pack_rows(int oh, int ow, int oc, const StemMaxPool& pool, int bits,
                         uint64_t* packed, const std::function<void(int oy, uint8_t* dst)>& row) {
  const MaxpoolPackRowFn pool_row = maxpool_pack_row_active(bits);
  const int64_t pixel_words = int64_t(bits) * bit_words(oc);
  pool_bands<uint8_t>(oh, ow, oc, pool, ow, row, [&](const uint8_t* const* window, int n, int py) {
    pool_row(window, n, ow, oc, pool.kernel, pool.stride, pool.pad, bits,
             packed + int64_t(py) * pool.out_w * pixel_words, pool.out_w);
  });
}

void conv_stem_ukernel_6x16__ref(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                 const float* bp, float* c, int64_t ldc) {
  float t[6][16] = {};
  for (int r = 0; r < rows; ++r)
    for (int p = 0; p < run; ++p, bp += 16)
      for (int i = 0; i < 6; ++i) {
        const float av = a[i * lda + r * rs + p];
        for (int j = 0; j < 16; ++j) t[i][j] += av * bp[j];
      }
  for (int i = 0; i < 6; ++i) std::memcpy(c + i * ldc, t[i], sizeof(t[i]));
}

void conv_stem_quantize__ref(const float* acc, int64_t m, int oc, const float* bias, bool relu,
                             const float* mul, const float* add, int bits, uint8_t* q) {
  const float levels = float((1 << bits) - 1);
  for (int64_t i = 0; i < m; ++i, acc += oc, q += oc)
    for (int o = 0; o < oc; ++o) {
      float v = acc[o] + bias[o];
      if (relu) v = v > 0.0f ? v : 0.0f;
      if (mul) v = v * mul[o];
      if (add) v = v + add[o];
      q[o] = quantize_level(v, levels);
    }
}

std::span<const ConvStemVariant> conv_stem_variants() {
  static const ConvStemVariant kVariants[] = {
    {Isa::ref,
     "conv_stem__ref",
     {conv_stem_ukernel_6x16__ref},
     1,
     conv_stem_quantize__ref,
     stem_pool_row__ref},
#if BFCN_X86
    {Isa::avx2,
     "conv_stem__avx2",
     {conv_stem_ukernel_6x16__avx2},
     1,
     conv_stem_quantize__avx2,
     stem_pool_row__ref},
    // 4 panels: 24 zmm accumulators, 4 B loads per 6 broadcasts
    {Isa::avx512,
     "conv_stem__avx512",
     {conv_stem_ukernel__avx512<1>, conv_stem_ukernel__avx512<2>, conv_stem_ukernel__avx512<3>,
      conv_stem_ukernel__avx512<4>},
     4,
     conv_stem_quantize__avx512,
     stem_pool_row__avx512,
     {conv_stem_ukernel_q__avx512<1>, conv_stem_ukernel_q__avx512<2>,
      conv_stem_ukernel_q__avx512<3>, conv_stem_ukernel_q__avx512<4>}},
#endif
  };
  return kVariants;
}

namespace {
const ConvStemVariant* g_forced = nullptr;  // conv_stem_use_variant
}  // namespace

const ConvStemVariant& conv_stem_active() {
  if (g_forced != nullptr) return *g_forced;
  static const ConvStemVariant& chosen = best_variant(conv_stem_variants());
  return chosen;
}

const ConvStemVariant* conv_stem_use_variant(const ConvStemVariant* v) {
  const ConvStemVariant* old = g_forced;
  g_forced = v;
  return old;
}

void conv_stem_forward(const ConvStemShape& s, const float* x, const float* w,
                       const ConvStemEpilogue& e) {
  const int oh = s.out_h(), ow = s.out_w(), oc = s.out_c;
  const int kk = s.kernel * s.kernel * s.in_c;
  BFCN_CHECK(s.dilation == 1 || (e.pool.kernel == 0 && e.out_packed == nullptr),
             "conv stem: the fused max pool needs dilation 1, got ", s.dilation);
  if (oh <= 0 || ow <= 0) return;
  // B [kk][oc] with element (p, o) = w[o*kk + p], packed into 16-column panels once.
  AlignedFloats bp(size_t((oc + kGemmNr - 1) / kGemmNr) * kGemmNr * size_t(kk));
  sgemm_pack_b(kk, oc, w, 1, kk, bp.p);
  if (s.dilation == 1)
    forward_direct(s, x, bp.p, e);
  else
    forward_im2col(s, x, bp.p, e);
}

}  // namespace bfcn
