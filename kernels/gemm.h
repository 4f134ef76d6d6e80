// f32 GEMM over raw strided pointers: C[M,N] = A[M,K]·B[K,N] (+ C when accumulate).
// Goto/BLIS-style: pack A into MR-row panels and B into NR-column panels (any strides, so
// transposes are free at pack time), then a 6x16 register-tile microkernel (AVX2+FMA when the CPU
// has it, portable C++ otherwise). Threads split C into disjoint column (or row) ranges, and every
// element is summed in the same k order whatever the split: results do not depend on thread count.
#pragma once

#include <cstdint>

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
// The microkernel for kernels/cpu_features.h's active_isa().
GemmMicrokernel sgemm_active_ukernel();
// Same tile with A read in place: row i at a + i*lda, k contiguous.
using GemmMicrokernelArows = void (*)(int64_t kc, const float* a, int64_t lda, const float* bp,
                                      float* c, int64_t ldc, bool accumulate);
void sgemm_ukernel_6x16_arows__ref(int64_t kc, const float* a, int64_t lda, const float* bp,
                                   float* c, int64_t ldc, bool accumulate);
void sgemm_ukernel_6x16_arows__avx2(int64_t kc, const float* a, int64_t lda, const float* bp,
                                    float* c, int64_t ldc, bool accumulate);

}  // namespace bfcn
