// Max pool on codes + pack, and parallel unpack + dequantize. Both are byte loops the compiler
// vectorises; per output row / pixel chunk work is independent, so OpenMP splits it statically.
#include "kernels/act_pack.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/bitpack.h"
#include "kernels/cpu_features.h"
#include "kernels/variant.h"

namespace bfcn {

std::span<const ActPackVariant> act_pack_variants() {
  static const ActPackVariant kVariants[] = {
    {Isa::ref, "act_pack__ref", maxpool_pack_row_q__ref, 8, unpack_dequant_act__ref,
     argmax_planar__ref},
#if BFCN_X86
    {Isa::avx2, "act_pack__avx2", maxpool_pack_row_q__ref, 8, unpack_dequant_act__avx2,
     argmax_planar__avx2},
    {Isa::avx512, "act_pack__avx512", maxpool_pack_row_q__avx512, 8, unpack_dequant_act__avx512,
     argmax_planar__avx2},
#endif
  };
  return kVariants;
}

MaxpoolPackRowFn maxpool_pack_row_active(int bits) {
  return best_variant(act_pack_variants(),
                      [bits](const ActPackVariant& x) { return bits <= x.maxpool_max_bits; })
      .maxpool_pack_row;
}

void maxpool_pack_q(const uint8_t* q, int h, int w, int c, int k, int s, int p, int bits,
                    uint64_t* out, int oh, int ow, MaxpoolPackRowFn row_fn) {
  if (row_fn == nullptr) row_fn = maxpool_pack_row_active(bits);
  const int64_t row_words = int64_t(ow) * bits * bit_words(c);
#pragma omp parallel if (int64_t(oh) * ow * c > 65536)
  {
    std::vector<const uint8_t*> rows(static_cast<size_t>(std::max(k, 1)));
#pragma omp for schedule(static)
    for (int oy = 0; oy < oh; ++oy) {
      int n = 0;
      for (int iy = std::max(0, oy * s - p); iy < std::min(h, oy * s - p + k); ++iy)
        rows[size_t(n++)] = q + int64_t(iy) * w * c;
      row_fn(rows.data(), n, w, c, k, s, p, bits, out + oy * row_words, ow);
    }
  }
}

void maxpool_pack_row_q__ref(const uint8_t* const* rows, int nrows, int w, int c, int k, int s,
                             int p, int bits, uint64_t* out, int ow) {
  const int cw = bit_words(c);
  std::vector<uint8_t> m(static_cast<size_t>(c));
  for (int ox = 0; ox < ow; ++ox) {
    const int xa = std::max(0, ox * s - p), xb = std::min(w, ox * s - p + k);
    uint8_t* d = m.data();
    std::fill_n(d, c, uint8_t{0});  // codes are >= 0 and every window has a tap
    for (int r = 0; r < nrows; ++r)
      for (int ix = xa; ix < xb; ++ix) {
        const uint8_t* src = rows[r] + int64_t(ix) * c;
        for (int ch = 0; ch < c; ++ch) d[ch] = std::max(d[ch], src[ch]);
      }
    pack_pixel_q(d, c, bits, out + int64_t(ox) * bits * cw);
  }
}

namespace {

// spread[b]: byte j = bit j of b, so 8 channels of one plane unpack with one lookup.
struct Spread {
  uint64_t v[256];
  Spread() {
    for (int b = 0; b < 256; ++b) {
      v[b] = 0;
      for (int j = 0; j < 8; ++j) v[b] |= uint64_t((b >> j) & 1) << (8 * j);
    }
  }
};

}  // namespace

void unpack_dequant_act__ref(const uint64_t* packed, int64_t pixels, int c, int bits, float* out) {
  static const Spread spread;
  const int cw = bit_words(c), c8 = (c + 7) / 8;
  // q/n: the training quantizer's level round(x*n)/n (a division, not a multiply by 1/n).
  const float n = float((1 << bits) - 1);
  std::vector<uint64_t> q(static_cast<size_t>(c8));  // 8 codes per word, one per byte
  for (int64_t px = 0; px < pixels; ++px) {
    const uint64_t* src = packed + px * bits * cw;
    for (int g = 0; g < c8; ++g) {
      uint64_t v = 0;
      for (int b = 0; b < bits; ++b)
        v |= spread.v[(src[b * cw + (g >> 3)] >> (8 * (g & 7))) & 0xff] << b;
      q[size_t(g)] = v;
    }
    uint8_t bytes[256 * 8];
    float* d = out + px * c;
    for (int c0 = 0; c0 < c; c0 += 256 * 8) {  // bytes in chunks (c may exceed 2048)
      const int cn = std::min(c - c0, 256 * 8);
      std::memcpy(bytes, q.data() + c0 / 8, size_t(cn));  // little-endian: byte j = code j
      for (int ch = 0; ch < cn; ++ch) d[c0 + ch] = float(bytes[ch]) / n;
    }
  }
}

void unpack_dequant_act(const uint64_t* packed, int64_t pixels, int c, int bits, float* out) {
  const UnpackDequantFn body = best_variant(act_pack_variants()).unpack_dequant_row;
  const int64_t chunk = 256;  // pixels per task
  const int64_t chunks = (pixels + chunk - 1) / chunk;
  const int64_t pixel_words = int64_t(bits) * bit_words(c);
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
  for (int64_t i = 0; i < chunks; ++i) {
    const int64_t p0 = i * chunk, n = std::min(chunk, pixels - p0);
    body(packed + p0 * pixel_words, n, c, bits, out + p0 * c);
  }
}

void argmax_planar__ref(const float* x, int c, int n, int64_t stride, uint8_t* out) {
  for (int i = 0; i < n; ++i) {
    int best = 0;
    for (int ch = 1; ch < c; ++ch)
      if (x[best * stride + i] < x[ch * stride + i]) best = ch;
    out[i] = uint8_t(best);
  }
}

void argmax_planar(const float* x, int c, int n, int64_t stride, uint8_t* out) {
  static const ArgmaxPlanarFn fn = best_variant(act_pack_variants()).argmax_planar;
  fn(x, c, n, stride, out);
}

}  // namespace bfcn
