// Scalar reference popcount GEMM: the definition every ISA variant must equal exactly.
#include <bit>

#include "kernels/bitconv.h"

namespace bfcn {

void bgemm__ref(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits, int m_bits,
                int lp, int32_t* out, int ldo) {
  for (int p = 0; p < npix; ++p)
    for (int o = 0; o < noc; ++o) {
      int64_t sum = 0;
      for (int m = 0; m < m_bits; ++m)
        for (int k = 0; k < k_bits; ++k) {
          const uint64_t* wr = w + (int64_t(o) * m_bits + m) * lp;
          const uint64_t* ar = a + (int64_t(p) * k_bits + k) * lp;
          int64_t c = 0;
          for (int i = 0; i < lp; ++i) c += std::popcount(wr[i] & ar[i]);
          sum += c << (m + k);
        }
      out[int64_t(p) * ldo + o] = int32_t(sum);
    }
}

}  // namespace bfcn
