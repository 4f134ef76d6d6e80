// f32 GEMM over raw strided pointers: C[M,N] = A[M,K]·B[K,N] (+ C when accumulate).
// Goto/BLIS-style: pack A into MR-row panels and B into NR-column panels (any strides, so
// transposes are free at pack time), then register-tile microkernels: 6x16 (AVX2+FMA, or portable
// C++), or up to 12x32 with AVX-512 (two A panels x two B panels per tile). Threads split C into
// disjoint column (or row) ranges, and every element is summed in the same k order whatever the
// split: results do not depend on thread count.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu_features.h"

namespace bfcn {

// Element (i,k) of A is A[i*rs_a + k*cs_a]; (k,j) of B is B[k*rs_b + j*cs_b]; C is row-major with
// leading dimension ldc. max_threads <= 0 means omp_get_max_threads(); inside an OpenMP parallel
// region the call always runs on the calling thread.
void sgemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
           const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc, bool accumulate,
           int max_threads = 0);

// Single-threaded, with B already packed by the caller (e.g. im2col writing panels directly):
// ceil(n/16) panels, panel q at bp + q*16*k, holding k rows of 16 columns (zeros past n).
// bp must be 32-byte aligned.
void sgemm_packed_b(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                    const float* bp, float* c, int64_t ldc, bool accumulate);

// A packed once and reused (e.g. conv weights across pixel chunks): panels of 6 rows, panel q at
// ap + q*6*k holding k groups of 6 (zeros past m). sgemm_pack_a fills panels [panel_lo, panel_hi)
// of the ceil(m/6), so threads can share the work.
void sgemm_pack_a(int64_t m, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                  int64_t panel_lo, int64_t panel_hi, float* ap);
// Single-threaded, A pre-packed (layout above) and B row-major [k,n] read in place with leading
// dimension ldb (a multiple of 16, 32-byte aligned, and readable up to ceil(n/16)*16 columns):
// for a B produced row by row (im2col) in a small cache-resident buffer.
void sgemm_packed_a(int64_t m, int64_t n, int64_t k, const float* ap, const float* b, int64_t ldb,
                    float* c, int64_t ldc, bool accumulate);
// Single-threaded, both operands pre-packed (layouts above); bp 32-byte aligned.
void sgemm_packed(int64_t m, int64_t n, int64_t k, const float* ap, const float* bp, float* c,
                  int64_t ldc, bool accumulate);

// One full 16-column panel of B stored transposed (B(p, j) = b[j*cs + p]) into dst (kc x 16,
// 32-byte aligned): the AVX2 path of the packing for transposed B.
void sgemm_pack_b_panel_t__avx2(int64_t kc, const float* b, int64_t cs, float* dst);

// Packs B [k,n] (element (p,j) at b[p*rs_b + j*cs_b]) into full-depth panels: panel q at
// bp + q*16*k (the layout sgemm_packed_b / sgemm_packed / sgemm_arows_packed_b take).
void sgemm_pack_b(int64_t k, int64_t n, const float* b, int64_t rs_b, int64_t cs_b, float* bp);
// Single-threaded, row-major A [m,k] read in place (leading dimension lda, k contiguous) and B
// pre-packed: for A that is produced row by row (im2col) and used only once.
void sgemm_arows_packed_b(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                          const float* bp, float* c, int64_t ldc, bool accumulate);

// Single-threaded, both operands read in place: A row-major [m,k] (leading dimension lda) and B
// row-major [k,n] (leading dimension ldb, readable up to ceil(n/16)*16 columns, any alignment).
// Only for variants with multi-panel tiles or a whole-product engine (sgemm_has_arows_brows()): no
// packing at all, for operands that are already laid out row by row (conv weights and an im2col
// block).
bool sgemm_has_arows_brows();
void sgemm_arows_brows(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b,
                       int64_t ldb, float* c, int64_t ldc, bool accumulate);

// Plain triple loop with double accumulation, for tests.
void sgemm__ref(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc, bool accumulate);

// Microkernel contract (one 6x16 tile): C[6,16] (+)= Ap·B where Ap holds kc groups of 6 values
// (one per row) and B row p is the 16 floats at bp + p*ldb (ldb = 16 for a packed panel; a
// row-major B is read in place). Every B row is 32-byte aligned (A is only broadcast).
constexpr int kGemmMr = 6;
constexpr int kGemmNr = 16;
using GemmMicrokernel = void (*)(int64_t kc, const float* ap, const float* bp, int64_t ldb,
                                 float* c, int64_t ldc, bool accumulate);
void sgemm_ukernel_6x16__ref(int64_t kc, const float* ap, const float* bp, int64_t ldb, float* c,
                             int64_t ldc, bool accumulate);
void sgemm_ukernel_6x16__avx2(int64_t kc, const float* ap, const float* bp, int64_t ldb, float* c,
                              int64_t ldc, bool accumulate);
// The 6x16 microkernel of the active variant (sgemm_active() below).
GemmMicrokernel sgemm_active_ukernel();
// Same tile with A read in place: row i at a + i*lda, k contiguous.
using GemmMicrokernelArows = void (*)(int64_t kc, const float* a, int64_t lda, const float* bp,
                                      float* c, int64_t ldc, bool accumulate);
void sgemm_ukernel_6x16_arows__ref(int64_t kc, const float* a, int64_t lda, const float* bp,
                                   float* c, int64_t ldc, bool accumulate);
void sgemm_ukernel_6x16_arows__avx2(int64_t kc, const float* a, int64_t lda, const float* bp,
                                    float* c, int64_t ldc, bool accumulate);

// Multi-panel tiles (AVX-512): mp 6-row A panels x np 16-column B panels (mp, np in 1..2) in one
// register tile, so the packed layouts above stay the same for every ISA. A panel i at
// ap + i*a_next (kc groups of 6); B panel j at b + j*b_next, row p at + p*ldb (any alignment).
// Every element is summed from zero in k order with FMA, then added to C: the same arithmetic as
// the 6x16 AVX2 kernel, so results do not depend on how the tiles are grouped.
using GemmTile = void (*)(int64_t kc, const float* ap, int64_t a_next, const float* b, int64_t ldb,
                          int64_t b_next, float* c, int64_t ldc, bool accumulate);
// Same with A read in place: row i of the tile at a + i*lda, k contiguous.
using GemmTileArows = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                               int64_t b_next, float* c, int64_t ldc, bool accumulate);
template <int MP, int NP>
void sgemm_tile__avx512(int64_t kc, const float* ap, int64_t a_next, const float* b, int64_t ldb,
                        int64_t b_next, float* c, int64_t ldc, bool accumulate);
template <int MP, int NP>
void sgemm_tile_arows__avx512(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                              int64_t b_next, float* c, int64_t ldc, bool accumulate);

// Packs one full 16-column panel of a transposed B (as sgemm_pack_b_panel_t__avx2).
using GemmPackBPanelT = void (*)(int64_t kc, const float* b, int64_t cs, float* dst);

// A whole single-threaded product with sgemm's operand convention, blocked its own way.
using GemmWhole = void (*)(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a,
                           int64_t cs_a, const float* b, int64_t rs_b, int64_t cs_b, float* c,
                           int64_t ldc, bool accumulate);
// Eigen's product (kernels/gemm__eigen.cpp; builds with Eigen only, BFCN_HAVE_EIGEN): the
// ISA-baseline variant. Sums in its own order, so it matches sgemm__ref to rounding, not bit for
// bit.
void sgemm__eigen(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                  const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc,
                  bool accumulate);

// The GEMM variants, one per ISA level (ref first; kernels/variant.h): dispatch takes the best one
// active_isa() allows, tests and benchmarks iterate the list.
struct GemmVariant {
  Isa isa;
  const char* name;                    // "sgemm__avx512"
  GemmMicrokernel ukernel;             // 6x16, A packed
  GemmMicrokernelArows ukernel_arows;  // 6x16, A rows in place
  GemmPackBPanelT pack_b_panel_t;      // transposed-B panel packing; nullptr: the scalar loop
  // When set, the drivers cover C with tile[mp-1][np-1] (up to 12x32) instead of 6x16 ukernels.
  GemmTile tile[2][2] = {};
  GemmTileArows tile_arows[2][2] = {};
  // When set, every entry point hands the whole product to it instead (pre-packed operands are
  // unpacked first); its microkernels above are then the reference ones, unused by the drivers.
  GemmWhole whole = nullptr;
};
std::span<const GemmVariant> sgemm_variants();
// The variant every entry point above runs: best_variant(sgemm_variants()), unless a test chose
// another with sgemm_use_variant.
const GemmVariant& sgemm_active();
// Makes every sgemm entry point run v (nullptr: back to the dispatched one) and returns the
// previous choice. Process-wide and not thread-safe: for tests and benchmarks, which must check
// isa_supported(v.isa) first.
const GemmVariant* sgemm_use_variant(const GemmVariant* v);

}  // namespace bfcn
