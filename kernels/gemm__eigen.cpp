// The ISA-baseline GEMM: Eigen's blocked product (its own packing and register tiles, vectorized
// with whatever SIMD the build targets: SSE2 on a portable x86-64 build, NEON on aarch64) for CPUs
// without our AVX2/AVX-512 microkernels, where it runs ~10x the portable 6x16 microkernel
// (docs/benchmarks.md). Only in builds with Eigen (not the runtime-only one).
#include "kernels/gemm.h"

#if BFCN_HAVE_EIGEN

#include <algorithm>
// Threads are split by the sgemm drivers (and conv's tasks), never inside Eigen; and every product
// takes the blocked path, never Eigen's small-size coefficient loop (another summation order).
#define EIGEN_DONT_PARALLELIZE
#define EIGEN_GEMM_TO_COEFFBASED_THRESHOLD 0
#include <Eigen/Core>
#include <vector>

namespace bfcn {

namespace {

using RowMajorMap =
    Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
               Eigen::OuterStride<>>;
template <int Order>
using ConstMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Order>, 0,
                            Eigen::OuterStride<>>;
using StridedMap = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>, 0,
                              Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>>;

// Eigen sums an element of C in the same order wherever it sits only when C's rows come in whole
// 4-row packets and its columns in whole 8-column groups (its edge rows and columns take other
// kernels; checked over all offsets and sizes for K = 1..700). The drivers and conv's tasks cut
// C into pieces that vary with the thread count, so odd shapes are padded with zeros to that grid.
constexpr int64_t kRowGrid = 4;
constexpr int64_t kColGrid = 8;

// f(view) with element (i, j) of the rows x cols matrix at p[i*rs + j*cs]: a row- or column-major
// map when one stride is 1 (Eigen reads those in place), else a strided one (Eigen copies it).
template <class F>
void with_view(int64_t rows, int64_t cols, const float* p, int64_t rs, int64_t cs, F&& f) {
  if (cs == 1 && rs >= cols)
    f(ConstMap<Eigen::RowMajor>(p, rows, cols, Eigen::OuterStride<>(rs)));
  else if (rs == 1 && cs >= rows)
    f(ConstMap<Eigen::ColMajor>(p, rows, cols, Eigen::OuterStride<>(cs)));
  else
    f(StridedMap(p, rows, cols, Eigen::Stride<Eigen::Dynamic, Eigen::Dynamic>(cs, rs)));
}

void product(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
             const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc, bool accumulate) {
  RowMajorMap cm(c, m, n, Eigen::OuterStride<>(ldc));
  with_view(m, k, a, rs_a, cs_a, [&](const auto& am) {
    with_view(k, n, b, rs_b, cs_b, [&](const auto& bm) {
      if (accumulate)
        cm.noalias() += am * bm;
      else
        cm.noalias() = am * bm;
    });
  });
}

// Row-major copies [rows_pad, cols_pad] zero-padded past [rows, cols].
thread_local std::vector<float> t_pad_a, t_pad_b, t_pad_c;
const float* padded(std::vector<float>& buf, int64_t rows, int64_t cols, int64_t rows_pad,
                    int64_t cols_pad, const float* p, int64_t rs, int64_t cs) {
  buf.assign(size_t(rows_pad * cols_pad), 0.0f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) buf[size_t(i * cols_pad + j)] = p[i * rs + j * cs];
  return buf.data();
}

}  // namespace

void sgemm__eigen(int64_t m, int64_t n, int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                  const float* b, int64_t rs_b, int64_t cs_b, float* c, int64_t ldc,
                  bool accumulate) {
  const int64_t mp = (m + kRowGrid - 1) / kRowGrid * kRowGrid;
  const int64_t np = (n + kColGrid - 1) / kColGrid * kColGrid;
  if (mp == m && np == n) {
    product(m, n, k, a, rs_a, cs_a, b, rs_b, cs_b, c, ldc, accumulate);
    return;
  }
  if (mp != m) {
    a = padded(t_pad_a, m, k, mp, k, a, rs_a, cs_a);
    rs_a = k;
    cs_a = 1;
  }
  if (np != n) {
    b = padded(t_pad_b, k, n, k, np, b, rs_b, cs_b);
    rs_b = np;
    cs_b = 1;
  }
  t_pad_c.assign(size_t(mp * np), 0.0f);
  float* cp = t_pad_c.data();
  if (accumulate)
    for (int64_t i = 0; i < m; ++i) std::copy(c + i * ldc, c + i * ldc + n, cp + i * np);
  product(mp, np, k, a, rs_a, cs_a, b, rs_b, cs_b, cp, np, accumulate);
  for (int64_t i = 0; i < m; ++i) std::copy(cp + i * np, cp + i * np + n, c + i * ldc);
}

}  // namespace bfcn

#endif  // BFCN_HAVE_EIGEN
