// sgemm driver: packing, cache blocking, thread split, and the portable 6x16 microkernel.
// Blocking follows BLIS's Zen sgemm choice (MC=144, KC=256, NC=3072): an A block stays in L2, one
// B micro-panel (KC x 16) in L1. Edge tiles go through a 6x16 scratch tile so the microkernel only
// ever sees full tiles, and it always adds its finished sum to C last: identical rounding for edge
// and interior tiles, hence thread-count-independent results.
#include "kernels/gemm.h"

#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu_features.h"
#include "kernels/variant.h"

namespace bfcn {

namespace {

constexpr int64_t kMc = 144;  // multiple of kGemmMr
constexpr int64_t kKc = 256;
constexpr int64_t kNc = 3072;      // multiple of kGemmNr
constexpr int64_t kNcArows = 256;  // multiple of kGemmNr
// K block of the 12x32-tile variants (B micro-panel 32 KiB of Zen 5's 48 KiB L1D); 128 and 192
// measured no better on `bench ops`.
constexpr int64_t kKcTiles = 256;
// K block of variant v.
int64_t kc_block(const GemmVariant& v) { return v.tile[0][0] != nullptr ? kKcTiles : kKc; }
// Below this many multiply-adds a second thread costs more than it saves.
constexpr int64_t kParallelMinMacs = int64_t{1} << 18;

// A grow-only 64-byte-aligned scratch buffer, one per thread: no allocation in steady state.
class ScratchBuffer {
 public:
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(p_); }
  float* get(size_t n) {
    if (n > cap_) {
      std::free(p_);
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      p_ = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (p_ == nullptr) std::abort();  // out of memory inside a kernel: nothing sane to do
      cap_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  size_t cap_ = 0;
};

thread_local ScratchBuffer t_apack;
thread_local ScratchBuffer t_bpack;
thread_local ScratchBuffer t_unpack_a;  // a whole-product variant's unpacked operands
thread_local ScratchBuffer t_unpack_b;

// Pre-packed operands back to plain matrices for a whole-product variant (GemmVariant::whole):
// panels of w values along a dimension of d (k groups of w each, zeros past d) to [k][d], d
// contiguous: A panels (6 rows) give column-major A [m,k], B panels (16 columns) row-major B [k,n].
const float* unpack_panels(int64_t d, int64_t k, int64_t w, const float* panels,
                           ScratchBuffer& buf) {
  float* out = buf.get(static_cast<size_t>(d * k));
  for (int64_t i0 = 0; i0 < d; i0 += w) {
    const int64_t n = std::min<int64_t>(w, d - i0);
    const float* panel = panels + i0 * k;
    for (int64_t p = 0; p < k; ++p)
      std::memcpy(out + p * d + i0, panel + p * w, size_t(n) * sizeof(float));
  }
  return out;
}
const float* unpack_a(int64_t m, int64_t k, const float* ap) {
  return unpack_panels(m, k, kGemmMr, ap, t_unpack_a);
}
const float* unpack_b(int64_t k, int64_t n, const float* bp) {
  return unpack_panels(n, k, kGemmNr, bp, t_unpack_b);
}

// One panel of W lanes x kc groups, lane by lane: lane i < valid from src + i*lane_step (its
// values pstep apart), lanes past valid zero. dst[p*W + i].
template <int W>
inline void pack_strided_panel(const float* src, int64_t lane_step, int64_t pstep, int64_t valid,
                               int64_t kc, float* dst) {
  for (int64_t i = 0; i < W; ++i) {
    if (i < valid) {
      const float* lane = src + i * lane_step;
      for (int64_t p = 0; p < kc; ++p) dst[p * W + i] = lane[p * pstep];
    } else {
      for (int64_t p = 0; p < kc; ++p) dst[p * W + i] = 0.0f;
    }
  }
}

// Ap: ceil(mc/MR) panels, each kc groups of MR row values (zero-padded rows past mc).
void pack_a(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* ap) {
  for (int64_t ir = 0; ir < mc; ir += kGemmMr) {
    const int64_t mr = std::min<int64_t>(kGemmMr, mc - ir);
    float* dst = ap + ir * kc;
    if (mr == kGemmMr && rs == 1) {  // A^T stored row-major: each group is contiguous
      for (int64_t p = 0; p < kc; ++p)
        for (int i = 0; i < kGemmMr; ++i) dst[p * kGemmMr + i] = a[(ir + i) + p * cs];
      continue;
    }
    pack_strided_panel<kGemmMr>(a + ir * rs, rs, cs, mr, kc, dst);
  }
}

// Bp: ceil(nc/NR) panels, each kc groups of NR column values (zero-padded columns past nc).
void pack_b(int64_t kc, int64_t nc, const float* b, int64_t rs, int64_t cs, float* bp,
            const GemmVariant& v) {
  for (int64_t jr = 0; jr < nc; jr += kGemmNr) {
    const int64_t nr = std::min<int64_t>(kGemmNr, nc - jr);
    float* dst = bp + jr * kc;
    if (nr == kGemmNr && cs == 1) {  // row-major B: copy 16 consecutive floats per k
      for (int64_t p = 0; p < kc; ++p)
        std::memcpy(dst + p * kGemmNr, b + p * rs + jr, kGemmNr * sizeof(float));
      continue;
    }
    if (nr == kGemmNr && rs == 1 && v.pack_b_panel_t != nullptr) {
      v.pack_b_panel_t(kc, b + jr * cs, cs, dst);
      continue;
    }
    // Column by column: sequential reads when B is stored transposed (rs == 1).
    pack_strided_panel<kGemmNr>(b + jr * cs, cs, rs, nr, kc, dst);
  }
}

// One mr x nr tile of C from a kernel that always writes its whole tile: run(dst, ld, acc) straight
// into C when the tile is full, else into scratch (leading dimension ldt), of which only mr x nr
// is then added to (or stored in) C. The kernel's sums are the same either way, so edge and
// interior tiles round alike.
template <class Run>
inline void c_tile(bool full, int64_t mr, int64_t nr, float* cp, int64_t ldc, bool acc,
                   float* scratch, int64_t ldt, const Run& run) {
  if (full) {
    run(cp, ldc, acc);
    return;
  }
  run(scratch, ldt, false);
  for (int64_t i = 0; i < mr; ++i)
    for (int64_t j = 0; j < nr; ++j)
      cp[i * ldc + j] = acc ? cp[i * ldc + j] + scratch[i * ldt + j] : scratch[i * ldt + j];
}

// C[mc, nc] (+)= A · B over one kc-deep slice of packed A and B: A panel i (rows 6i..6i+5) starts
// at ap + i * a_stride and holds kc groups of 6; B panel q (columns 16q..16q+15) at
// bp + q * b_stride, kc groups of 16.
void macro_kernel(int64_t mc, int64_t nc, int64_t kc, const float* ap, int64_t a_stride,
                  const float* bp, int64_t b_stride, int64_t ldb, float* c, int64_t ldc, bool acc,
                  GemmMicrokernel ukernel) {
  alignas(64) float tile[kGemmMr * kGemmNr];
  for (int64_t jr = 0; jr < nc; jr += kGemmNr) {
    const int64_t nr = std::min<int64_t>(kGemmNr, nc - jr);
    const float* bpanel = bp + (jr / kGemmNr) * b_stride;
    for (int64_t ir = 0; ir < mc; ir += kGemmMr) {
      const int64_t mr = std::min<int64_t>(kGemmMr, mc - ir);
      const float* apanel = ap + (ir / kGemmMr) * a_stride;
      c_tile(mr == kGemmMr && nr == kGemmNr, mr, nr, c + ir * ldc + jr, ldc, acc, tile, kGemmNr,
             [&](float* d, int64_t ld, bool add) { ukernel(kc, apanel, bpanel, ldb, d, ld, add); });
    }
  }
}

// The same over 12x32 tiles (two A panels x two B panels), with 6- and 16-wide tiles at the
// edges: v.tile[mp-1][np-1]. Partial tiles go through a scratch tile as above.
void macro_kernel_tiles(int64_t mc, int64_t nc, int64_t kc, const float* ap, int64_t a_stride,
                        const float* bp, int64_t b_stride, int64_t ldb, float* c, int64_t ldc,
                        bool acc, const GemmVariant& v) {
  alignas(64) float tile[4 * kGemmMr * kGemmNr];
  constexpr int64_t ldt = 2 * kGemmNr;
  for (int64_t jr = 0; jr < nc; jr += 2 * kGemmNr) {
    const int64_t nr = std::min<int64_t>(2 * kGemmNr, nc - jr);
    const int np = nr > kGemmNr ? 2 : 1;
    const float* bpanel = bp + (jr / kGemmNr) * b_stride;
    for (int64_t ir = 0; ir < mc; ir += 2 * kGemmMr) {
      const int64_t mr = std::min<int64_t>(2 * kGemmMr, mc - ir);
      const int mp = mr > kGemmMr ? 2 : 1;
      const GemmTile fn = v.tile[mp - 1][np - 1];
      const float* apanel = ap + (ir / kGemmMr) * a_stride;
      c_tile(mr == mp * kGemmMr && nr == np * kGemmNr, mr, nr, c + ir * ldc + jr, ldc, acc, tile,
             ldt, [&](float* d, int64_t ld, bool add) {
               fn(kc, apanel, a_stride, bpanel, ldb, b_stride, d, ld, add);
             });
    }
  }
}

void macro(int64_t mc, int64_t nc, int64_t kc, const float* ap, int64_t a_stride, const float* bp,
           int64_t b_stride, int64_t ldb, float* c, int64_t ldc, bool acc, const GemmVariant& v) {
  if (v.tile[0][0] != nullptr)
    macro_kernel_tiles(mc, nc, kc, ap, a_stride, bp, b_stride, ldb, c, ldc, acc, v);
  else
    macro_kernel(mc, nc, kc, ap, a_stride, bp, b_stride, ldb, c, ldc, acc, v.ukernel);
}

bool zero_depth(int64_t m, int64_t n, int64_t k, float* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return true;
  if (k > 0) return false;
  if (!accumulate)
    for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, 0.0f);
  return true;
}

void gemm_serial(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                 const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc, bool accumulate,
                 const GemmVariant& v) {
  if (zero_depth(m, n, k, c, ldc, accumulate)) return;
  if (v.whole != nullptr) {
    v.whole(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate);
    return;
  }
  const int64_t kb = kc_block(v);
  const int64_t kc_max = std::min(kb, k);
  const int64_t nc_max = (std::min(kNc, n) + kGemmNr - 1) / kGemmNr * kGemmNr;
  const int64_t mc_max = (std::min(kMc, m) + kGemmMr - 1) / kGemmMr * kGemmMr;
  float* bp = t_bpack.get(static_cast<size_t>(kc_max * nc_max));
  float* ap = t_apack.get(static_cast<size_t>(kc_max * mc_max));
  for (int64_t jc = 0; jc < n; jc += kNc) {
    const int64_t nc = std::min(kNc, n - jc);
    for (int64_t pc = 0; pc < k; pc += kb) {
      const int64_t kc = std::min(kb, k - pc);
      pack_b(kc, nc, b + pc * rs_b + jc * cs_b, rs_b, cs_b, bp, v);
      for (int64_t ic = 0; ic < m; ic += kMc) {
        const int64_t mc = std::min(kMc, m - ic);
        pack_a(mc, kc, a + ic * rs_a + pc * cs_a, rs_a, cs_a, ap);
        macro(mc, nc, kc, ap, kc * kGemmMr, bp, kc * kGemmNr, kGemmNr, c + ic * ldc + jc, ldc,
              accumulate || pc > 0, v);
      }
    }
  }
}

}  // namespace

namespace {

// The reference 6x16 tile: c (+)= A B over kc, A read through a(i, p), B packed rows of ldb.
template <class ReadA>
void ukernel_ref(int64_t kc, ReadA a, const float* bp, int64_t ldb, float* c, int64_t ldc,
                 bool accumulate) {
  float acc[kGemmMr][kGemmNr] = {};
  for (int64_t p = 0; p < kc; ++p)
    for (int i = 0; i < kGemmMr; ++i) {
      const float av = a(i, p);
      for (int j = 0; j < kGemmNr; ++j) acc[i][j] += av * bp[p * ldb + j];
    }
  for (int i = 0; i < kGemmMr; ++i)
    for (int j = 0; j < kGemmNr; ++j)
      c[i * ldc + j] = accumulate ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}

}  // namespace

void sgemm_ukernel_6x16__ref(int64_t kc, const float* ap, const float* bp, int64_t ldb, float* c,
                             int64_t ldc, bool accumulate) {
  ukernel_ref(
      kc, [ap](int i, int64_t p) { return ap[p * kGemmMr + i]; }, bp, ldb, c, ldc, accumulate);
}

void sgemm_ukernel_6x16_arows__ref(int64_t kc, const float* a, int64_t lda, const float* bp,
                                   float* c, int64_t ldc, bool accumulate) {
  ukernel_ref(
      kc, [a, lda](int i, int64_t p) { return a[i * lda + p]; }, bp, kGemmNr, c, ldc, accumulate);
}

std::span<const GemmVariant> sgemm_variants() {
  static const GemmVariant kVariants[] = {
    {Isa::ref, "sgemm__ref", sgemm_ukernel_6x16__ref, sgemm_ukernel_6x16_arows__ref, nullptr},
#if BFCN_HAVE_EIGEN
    {Isa::ref,
     "sgemm__eigen",
     sgemm_ukernel_6x16__ref,
     sgemm_ukernel_6x16_arows__ref,
     nullptr,
     {},
     {},
     sgemm__eigen},
#endif
#if BFCN_X86
    {Isa::avx2, "sgemm__avx2", sgemm_ukernel_6x16__avx2, sgemm_ukernel_6x16_arows__avx2,
     sgemm_pack_b_panel_t__avx2},
    {Isa::avx512,
     "sgemm__avx512",
     sgemm_ukernel_6x16__avx2,
     sgemm_ukernel_6x16_arows__avx2,
     sgemm_pack_b_panel_t__avx2,
     {{sgemm_tile__avx512<1, 1>, sgemm_tile__avx512<1, 2>},
      {sgemm_tile__avx512<2, 1>, sgemm_tile__avx512<2, 2>}},
     {{sgemm_tile_arows__avx512<1, 1>, sgemm_tile_arows__avx512<1, 2>},
      {sgemm_tile_arows__avx512<2, 1>, sgemm_tile_arows__avx512<2, 2>}}},
#endif
  };
  return kVariants;
}

namespace {
const GemmVariant* g_forced = nullptr;  // sgemm_use_variant
}  // namespace

const GemmVariant& sgemm_active() {
  if (g_forced != nullptr) return *g_forced;
  static const GemmVariant& chosen = best_variant(sgemm_variants());
  return chosen;
}

const GemmVariant* sgemm_use_variant(const GemmVariant* v) {
  const GemmVariant* old = g_forced;
  g_forced = v;
  return old;
}

GemmMicrokernel sgemm_active_ukernel() { return sgemm_active().ukernel; }

void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
           const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc, bool accumulate,
           int max_threads) {
  assert(m >= 0 && n >= 0 && k >= 0);
  const GemmVariant& v = sgemm_active();
  int nt = max_threads > 0 ? max_threads : omp_get_max_threads();
  if (omp_in_parallel() || m * n * k < kParallelMinMacs) nt = 1;
  // Split columns when there are enough for every thread to get a few 16-wide panels, else rows.
  // Range starts stay multiples of the tile size, so the tile grid (and the rounding) is unchanged.
  // Units of the variant's widest tile, so no thread gets a sliver.
  const int64_t nr = v.tile[0][0] != nullptr ? 2 * kGemmNr : kGemmNr;
  const int64_t mr = v.tile[0][0] != nullptr ? 2 * kGemmMr : kGemmMr;
  bool split_n = n >= int64_t{nt} * 4 * kGemmNr;
  // A whole-product engine may treat edge rows differently (Eigen: a dot-product kernel), so only
  // its columns are split: rounding then does not depend on the thread count either.
  if (!split_n && (v.whole != nullptr || m < int64_t{nt} * 2 * kGemmMr)) nt = 1;
  if (nt <= 1) {
    gemm_serial(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate, v);
    return;
  }
  const int64_t unit = split_n ? nr : mr;
  const int64_t total = split_n ? n : m;
  const int64_t per = ((total + nt - 1) / nt + unit - 1) / unit * unit;
#pragma omp parallel num_threads(nt)
  {
    const int64_t t = omp_get_thread_num();
    const int64_t lo = std::min(total, t * per), hi = std::min(total, lo + per);
    if (lo < hi) {
      if (split_n)
        gemm_serial(m, hi - lo, k, a, rs_a, cs_a, b + lo * cs_b, rs_b, cs_b, c + lo, ldc,
                    accumulate, v);
      else
        gemm_serial(hi - lo, n, k, a + lo * rs_a, rs_a, cs_a, b, rs_b, cs_b, c + lo * ldc, ldc,
                    accumulate, v);
    }
  }
}

void sgemm_packed_b(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                    const float* bp, float* c, int64_t ldc, bool accumulate) {
  assert(reinterpret_cast<uintptr_t>(bp) % 32 == 0);
  if (zero_depth(m, n, k, c, ldc, accumulate)) return;
  const GemmVariant& v = sgemm_active();
  if (v.whole != nullptr) {
    v.whole(m, n, k, a, rs_a, cs_a, unpack_b(k, n, bp), n, 1, c, ldc, accumulate);
    return;
  }
  const int64_t kb = kc_block(v);
  const int64_t mc_max = (std::min(kMc, m) + kGemmMr - 1) / kGemmMr * kGemmMr;
  float* ap = t_apack.get(static_cast<size_t>(std::min(kb, k) * mc_max));
  for (int64_t pc = 0; pc < k; pc += kb) {
    const int64_t kc = std::min(kb, k - pc);
    for (int64_t ic = 0; ic < m; ic += kMc) {
      const int64_t mc = std::min(kMc, m - ic);
      pack_a(mc, kc, a + ic * rs_a + pc * cs_a, rs_a, cs_a, ap);
      macro(mc, n, kc, ap, kc * kGemmMr, bp + pc * kGemmNr, k * kGemmNr, kGemmNr, c + ic * ldc, ldc,
            accumulate || pc > 0, v);
    }
  }
}

void sgemm_pack_b(int64_t k, int64_t n, const float* b, int64_t rs_b, int64_t cs_b, float* bp) {
  pack_b(k, n, b, rs_b, cs_b, bp, sgemm_active());
}

namespace {

// A in place over 12x32 tiles: 12 rows of A in place while at least 12 remain, then 6, then the
// last partial rows zero-padded to 6 in a copy; 32-column tiles, 16 at the right edge. B element
// (p, j) is at b + (j/16)*b_next + p*ldb + j%16: packed panels (ldb 16, b_next 16k) or a row-major
// B read in place (ldb, b_next 16).
void arows_tiles(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                 int64_t ldb, int64_t b_next, float* c, int64_t ldc, bool accumulate,
                 const GemmVariant& v) {
  alignas(64) float tile[4 * kGemmMr * kGemmNr];
  constexpr int64_t ldt = 2 * kGemmNr;
  const int64_t kb = kc_block(v);
  const int64_t m_full = m / kGemmMr * kGemmMr;  // rows past this go through a zero-padded copy
  for (int64_t pc = 0; pc < k; pc += kb) {
    const int64_t kc = std::min(kb, k - pc);
    const bool acc = accumulate || pc > 0;
    float* rows = nullptr;
    if (m_full < m) {
      rows = t_apack.get(static_cast<size_t>(kGemmMr * kb));
      for (int64_t i = 0; i < kGemmMr; ++i)
        for (int64_t p = 0; p < kc; ++p)
          rows[i * kc + p] = m_full + i < m ? a[(m_full + i) * lda + pc + p] : 0.0f;
    }
    // One tile: rows [ir, ir + mr) (mp A panels), columns [jr, jr + 32) clipped to n.
    auto run = [&](int64_t ir, int mp, int64_t mr, int64_t jr) {
      const float* ablk = ir < m_full ? a + ir * lda + pc : rows;
      const int64_t ld = ir < m_full ? lda : kc;
      const int64_t nr = std::min<int64_t>(2 * kGemmNr, n - jr);
      const int np = nr > kGemmNr ? 2 : 1;
      const GemmTileArows fn = v.tile_arows[mp - 1][np - 1];
      const float* bpanel = b + (jr / kGemmNr) * b_next + pc * ldb;
      c_tile(mr == mp * kGemmMr && nr == np * kGemmNr, mr, nr, c + ir * ldc + jr, ldc, acc, tile,
             ldt, [&](float* d, int64_t ldd, bool add) {
               fn(kc, ablk, ld, bpanel, ldb, b_next, d, ldd, add);
             });
    };
    // 12 rows while at least 12 remain, then 6 (the partial rows padded to 6).
    auto for_rows = [&](auto&& f) {
      for (int64_t ir = 0; ir < m;) {
        const int mp = m - ir >= 2 * kGemmMr ? 2 : 1;
        const int64_t mr = std::min<int64_t>(m - ir, mp * kGemmMr);
        f(ir, mp, mr);
        ir += mr;
      }
    };
    // The A rows stay in L1 while the B panels of a column block stream (B panels outermost
    // measured no better on `bench ops`: slower on the stem, within noise elsewhere).
    for (int64_t jc = 0; jc < n; jc += kNcArows) {
      const int64_t nc = std::min(kNcArows, n - jc);
      for_rows([&](int64_t ir, int mp, int64_t mr) {
        for (int64_t jr = jc; jr < jc + nc; jr += 2 * kGemmNr) run(ir, mp, mr, jr);
      });
    }
  }
}

}  // namespace

void sgemm_arows_packed_b(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          const float* bp, float* c, int64_t ldc, bool accumulate) {
  assert(reinterpret_cast<uintptr_t>(bp) % 32 == 0);
  if (zero_depth(m, n, k, c, ldc, accumulate)) return;
  const GemmVariant& v = sgemm_active();
  if (v.whole != nullptr) {
    v.whole(m, n, k, a, lda, 1, unpack_b(k, n, bp), n, 1, c, ldc, accumulate);
    return;
  }
  if (v.tile_arows[0][0] != nullptr) {
    arows_tiles(m, n, k, a, lda, bp, kGemmNr, k * kGemmNr, c, ldc, accumulate, v);
    return;
  }
  const GemmMicrokernelArows uk = v.ukernel_arows;
  alignas(64) float tile[kGemmMr * kGemmNr];
  float* rows = nullptr;  // the last partial 6-row block, zero-padded (kc x 6 at most)
  // Per kc slice and block of kNcArows columns (B block <= 256 KiB, L2), 6 rows of A stay in L1
  // across the block's panels.
  for (int64_t pc = 0; pc < k; pc += kKc) {
    const int64_t kc = std::min(kKc, k - pc);
    const bool acc = accumulate || pc > 0;
    for (int64_t jc = 0; jc < n; jc += kNcArows) {
      const int64_t nc = std::min(kNcArows, n - jc);
      for (int64_t ir = 0; ir < m; ir += kGemmMr) {
        const int64_t mr = std::min<int64_t>(kGemmMr, m - ir);
        const float* ablk = a + ir * lda + pc;
        int64_t ld = lda;
        if (mr < kGemmMr) {
          rows = t_apack.get(static_cast<size_t>(kGemmMr * kKc));
          for (int64_t i = 0; i < kGemmMr; ++i)
            for (int64_t p = 0; p < kc; ++p) rows[i * kc + p] = i < mr ? ablk[i * lda + p] : 0.0f;
          ablk = rows;
          ld = kc;
        }
        for (int64_t jr = jc; jr < jc + nc; jr += kGemmNr) {
          const int64_t nr = std::min<int64_t>(kGemmNr, n - jr);
          const float* bpanel = bp + (jr / kGemmNr) * k * kGemmNr + pc * kGemmNr;
          c_tile(mr == kGemmMr && nr == kGemmNr, mr, nr, c + ir * ldc + jr, ldc, acc, tile, kGemmNr,
                 [&](float* d, int64_t ldd, bool add) { uk(kc, ablk, ld, bpanel, d, ldd, add); });
        }
      }
    }
  }
}

bool sgemm_has_arows_brows() {
  const GemmVariant& v = sgemm_active();
  return v.tile_arows[0][0] != nullptr || v.whole != nullptr;
}

void sgemm_arows_brows(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                       int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  if (zero_depth(m, n, k, c, ldc, accumulate)) return;
  const GemmVariant& v = sgemm_active();
  if (v.whole != nullptr) {
    v.whole(m, n, k, a, lda, 1, b, ldb, 1, c, ldc, accumulate);
    return;
  }
  assert(v.tile_arows[0][0] != nullptr);
  arows_tiles(m, n, k, a, lda, b, ldb, kGemmNr, c, ldc, accumulate, v);
}

void sgemm_pack_a(int64_t m, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                  int64_t panel_lo, int64_t panel_hi, float* ap) {
  for (int64_t q = panel_lo; q < panel_hi; ++q) {
    const int64_t i0 = q * kGemmMr;
    pack_a(std::min<int64_t>(kGemmMr, m - i0), k, a + i0 * rs_a, rs_a, cs_a, ap + q * k * kGemmMr);
  }
}

void sgemm_packed(int64_t m, int64_t n, int64_t k, const float* ap, const float* bp, float* c,
                  int64_t ldc, bool accumulate) {
  assert(reinterpret_cast<uintptr_t>(bp) % 32 == 0);  // A is only broadcast: any alignment
  if (zero_depth(m, n, k, c, ldc, accumulate)) return;
  const GemmVariant& v = sgemm_active();
  if (v.whole != nullptr) {
    v.whole(m, n, k, unpack_a(m, k, ap), 1, m, unpack_b(k, n, bp), n, 1, c, ldc, accumulate);
    return;
  }
  const int64_t kb = kc_block(v);
  for (int64_t pc = 0; pc < k; pc += kb) {
    const int64_t kc = std::min(kb, k - pc);
    for (int64_t ic = 0; ic < m; ic += kMc)
      macro(std::min(kMc, m - ic), n, kc, ap + (ic / kGemmMr) * k * kGemmMr + pc * kGemmMr,
            k * kGemmMr, bp + pc * kGemmNr, k * kGemmNr, kGemmNr, c + ic * ldc, ldc,
            accumulate || pc > 0, v);
  }
}

void sgemm_packed_a(int64_t m, int64_t n, int64_t k, const float* ap, const float* b, int64_t ldb,
                    float* c, int64_t ldc, bool accumulate) {
  assert(reinterpret_cast<uintptr_t>(b) % 32 == 0);  // A is only broadcast: any alignment
  assert(ldb % kGemmNr == 0);
  if (zero_depth(m, n, k, c, ldc, accumulate)) return;
  const GemmVariant& v = sgemm_active();
  if (v.whole != nullptr) {
    v.whole(m, n, k, unpack_a(m, k, ap), 1, m, b, ldb, 1, c, ldc, accumulate);
    return;
  }
  const int64_t kb = kc_block(v);
  for (int64_t pc = 0; pc < k; pc += kb) {
    const int64_t kc = std::min(kb, k - pc);
    for (int64_t ic = 0; ic < m; ic += kMc)
      macro(std::min(kMc, m - ic), n, kc, ap + (ic / kGemmMr) * k * kGemmMr + pc * kGemmMr,
            k * kGemmMr, b + pc * ldb, kGemmNr, ldb, c + ic * ldc, ldc, accumulate || pc > 0, v);
  }
}

void sgemm__ref(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc,
                bool accumulate) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = accumulate ? c[i * ldc + j] : 0.0;
      for (int64_t p = 0; p < k; ++p)
        s += static_cast<double>(a[i * rs_a + p * cs_a]) * b[p * rs_b + j * cs_b];
      c[i * ldc + j] = static_cast<float>(s);
    }
}

}  // namespace bfcn
