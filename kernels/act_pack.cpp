// Max pool on codes + pack, and parallel unpack + dequantize. Both are byte loops the compiler
// vectorises; per output row / pixel chunk work is independent, so OpenMP splits it statically.
#include "kernels/act_pack.h"

#include <algorithm>
#include <vector>

#include "kernels/bitpack.h"

namespace bfcn {

void maxpool_pack_q(const uint8_t* q, int h, int w, int c, int k, int s, int p, int bits,
                    uint64_t* out, int oh, int ow) {
  const int cw = bit_words(c);
#pragma omp parallel if (int64_t(oh) * ow * c > 65536)
  {
    std::vector<uint8_t> m(static_cast<size_t>(c));
#pragma omp for schedule(static)
    for (int oy = 0; oy < oh; ++oy) {
      const int ya = std::max(0, oy * s - p), yb = std::min(h, oy * s - p + k);
      for (int ox = 0; ox < ow; ++ox) {
        const int xa = std::max(0, ox * s - p), xb = std::min(w, ox * s - p + k);
        uint8_t* d = m.data();
        std::fill_n(d, c, uint8_t{0});  // codes are >= 0 and every window has a tap
        for (int iy = ya; iy < yb; ++iy)
          for (int ix = xa; ix < xb; ++ix) {
            const uint8_t* src = q + (int64_t(iy) * w + ix) * c;
            for (int ch = 0; ch < c; ++ch) d[ch] = std::max(d[ch], src[ch]);
          }
        pack_pixel_q(d, c, bits, out + (int64_t(oy) * ow + ox) * bits * cw);
      }
    }
  }
}

void unpack_dequant_act(const uint64_t* packed, int64_t pixels, int c, int bits, float* out) {
  const int cw = bit_words(c);
  float level[256];  // q/n exactly as the training quantizer's round(x*n)/n
  const float n = float((1 << bits) - 1);
  for (int l = 0; l < 256; ++l) level[l] = float(l) / n;
#pragma omp parallel if (pixels * c > 65536)
  {
    std::vector<uint8_t> q(static_cast<size_t>(c));
#pragma omp for schedule(static)
    for (int64_t px = 0; px < pixels; ++px) {
      const uint64_t* src = packed + px * bits * cw;
      std::fill(q.begin(), q.end(), uint8_t{0});
      for (int b = 0; b < bits; ++b)
        for (int ch = 0; ch < c; ++ch)
          q[size_t(ch)] |= uint8_t(((src[b * cw + (ch >> 6)] >> (ch & 63)) & 1) << b);
      float* d = out + px * c;
      for (int ch = 0; ch < c; ++ch) d[ch] = level[q[size_t(ch)]];
    }
  }
}

}  // namespace bfcn
