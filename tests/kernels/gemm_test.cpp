// sgemm against the triple-loop reference, for every variant of the table (kernels/gemm.h; the
// ones this CPU lacks skip): all transpositions, edge sizes around the 6x16 / 12x32 tiles and the
// 256-deep K block, deep K, accumulate on/off, 1 and 2 threads (bitwise equal), every pre-packed
// entry point; and the 6x16 microkernels against each other.
#include "kernels/gemm.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu_features.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/support/test_support.h"
#include "tests/support/variants.h"

namespace bfcn {
namespace {

using test::random_vec;
using test::rel_err;

// 64-byte-aligned floats (aligned_alloc needs the size to be a multiple of the alignment).
float* aligned_floats(int64_t n) {
  return static_cast<float*>(std::aligned_alloc(64, size_t((n * 4 + 63) / 64 * 64)));
}

struct ThreadsGuard {
  int prev = omp_get_max_threads();
  ~ThreadsGuard() { omp_set_num_threads(prev); }
};

}  // namespace

namespace {

// Float error bound for sums of k products of values in [-1, 1], relative to the output scale
// (rel_err): grows like sqrt(k) for round-to-nearest accumulation.
double tol_for(int64_t k) { return 2e-6 * std::sqrt(double(std::max<int64_t>(k, 1))); }

// Runs every sgemm entry point (of the variant in use) against the triple-loop reference.
void check_entry_points(Rng& rng) {
  // Edge sizes around the 6x16 and 12x32 tiles and the 256-deep K block, all transposes,
  // accumulate on/off, 1 and 2 threads (bitwise equal).
  const int64_t sizes_m[] = {1, 5, 6, 7, 12, 13, 150};
  const int64_t sizes_n[] = {1, 15, 16, 17, 32, 33, 70};
  const int64_t sizes_k[] = {1, 3, 255, 257};
  int checked = 0;
  for (int64_t m : sizes_m)
    for (int64_t n : sizes_n)
      for (int64_t k : sizes_k)
        for (int ta = 0; ta < 2; ++ta)
          for (int tb = 0; tb < 2; ++tb) {
            const bool acc = ((m + n + k + ta + tb) % 2) == 0;
            // Stored A is [m,k] (or [k,m] when transposed), B [k,n] (or [n,k]); C has ldc = n+3.
            auto a = random_vec(m * k, rng), b = random_vec(k * n, rng);
            const int64_t rs_a = ta ? 1 : k, cs_a = ta ? m : 1;
            const int64_t rs_b = tb ? 1 : n, cs_b = tb ? k : 1;
            const int64_t ldc = n + 3;
            auto c0 = random_vec(m * ldc, rng);
            auto want = c0;
            sgemm__ref(m, n, k, a.data(), rs_a, cs_a, b.data(), rs_b, cs_b, want.data(), ldc, acc);
            std::vector<float> got1 = c0, got2 = c0;
            sgemm(m, n, k, a.data(), rs_a, cs_a, b.data(), rs_b, cs_b, got1.data(), ldc, acc, 1);
            sgemm(m, n, k, a.data(), rs_a, cs_a, b.data(), rs_b, cs_b, got2.data(), ldc, acc, 2);
            INFO("m=" << m << " n=" << n << " k=" << k << " ta=" << ta << " tb=" << tb
                      << " acc=" << acc);
            REQUIRE(rel_err(got1, want) < tol_for(k));
            REQUIRE(got1 == got2);  // thread-count independent, padding columns untouched
            ++checked;
          }
  CHECK(checked == 7 * 7 * 4 * 4);

  // Large problems split over threads (columns, then rows), and a deep K (18 K blocks).
  for (auto [m, n, k] : {std::array<int64_t, 3>{64, 1000, 300}, {500, 40, 300}, {30, 50, 4608}}) {
    auto a = random_vec(m * k, rng), b = random_vec(k * n, rng);
    std::vector<float> want(static_cast<size_t>(m * n)), c1(want.size()), c2(want.size());
    sgemm__ref(m, n, k, a.data(), k, 1, b.data(), n, 1, want.data(), n, false);
    sgemm(m, n, k, a.data(), k, 1, b.data(), n, 1, c1.data(), n, false, 1);
    sgemm(m, n, k, a.data(), k, 1, b.data(), n, 1, c2.data(), n, false, 2);
    INFO("m=" << m << " n=" << n << " k=" << k);
    CHECK(rel_err(c1, want) < tol_for(k));
    CHECK(c1 == c2);
  }

  // Pre-packed entry points.
  for (auto [m, n, k] : {std::array<int64_t, 3>{1, 1, 1},
                         {7, 17, 3},
                         {13, 40, 300},
                         {150, 33, 257},
                         {6, 16, 256},
                         {12, 32, 256},
                         {29, 70, 600},
                         {64, 64, 576}}) {
    const auto a = random_vec(m * k, rng), b = random_vec(k * n, rng);
    const int64_t mpan = (m + kGemmMr - 1) / kGemmMr, npan = (n + kGemmNr - 1) / kGemmNr;
    float* ap = aligned_floats(mpan * kGemmMr * k);
    float* bp = aligned_floats(npan * kGemmNr * k);
    sgemm_pack_a(m, k, a.data(), k, 1, 0, mpan, ap);
    sgemm_pack_b(k, n, b.data(), n, 1, bp);
    for (bool acc : {false, true}) {
      const auto c0 = random_vec(m * n, rng);
      auto want = c0;
      sgemm__ref(m, n, k, a.data(), k, 1, b.data(), n, 1, want.data(), n, acc);
      auto c1 = c0, c2 = c0, c3 = c0, c4 = c0;
      // Row-major B with a 16-multiple leading dimension, read in place.
      const int64_t ldb = npan * kGemmNr;
      float* brow = aligned_floats(ldb * k);
      for (int64_t p = 0; p < k; ++p)
        for (int64_t j = 0; j < ldb; ++j) brow[p * ldb + j] = j < n ? b[p * n + j] : 0.0f;
      sgemm_packed_a(m, n, k, ap, brow, ldb, c4.data(), n, acc);
      sgemm_packed(m, n, k, ap, bp, c1.data(), n, acc);
      sgemm_packed_b(m, n, k, a.data(), k, 1, bp, c2.data(), n, acc);
      sgemm_arows_packed_b(m, n, k, a.data(), k, bp, c3.data(), n, acc);
      if (sgemm_has_arows_brows()) {  // both operands in place (multi-panel tile variants only)
        auto c5 = c0;
        sgemm_arows_brows(m, n, k, a.data(), k, brow, ldb, c5.data(), n, acc);
        CHECK(rel_err(c5, want) < tol_for(k));
        CHECK(c5 == c3);            // same tiles and k order as the packed-B form
        const int64_t lda = k + 3;  // A rows with an odd leading dimension
        std::vector<float> a_ld(static_cast<size_t>(m * lda), 9.0f);
        for (int64_t i = 0; i < m; ++i)
          std::copy(a.begin() + i * k, a.begin() + (i + 1) * k, a_ld.begin() + i * lda);
        auto c6 = c0;
        sgemm_arows_brows(m, n, k, a_ld.data(), lda, brow, ldb, c6.data(), n, acc);
        CHECK(c6 == c5);
      }
      std::free(brow);
      INFO("m=" << m << " n=" << n << " k=" << k << " acc=" << acc);
      CHECK(rel_err(c1, want) < tol_for(k));
      CHECK(rel_err(c2, want) < tol_for(k));
      CHECK(rel_err(c3, want) < tol_for(k));
      CHECK(rel_err(c4, want) < tol_for(k));
    }
    std::free(ap);
    std::free(bp);
  }
}

// Variant v run through every entry point.
void check_variant(const GemmVariant& v) {
  ThreadsGuard threads;
  const test::UseGemmVariant use(v);
  REQUIRE(&sgemm_active() == &v);
  Rng rng(7 + int(v.isa));
  check_entry_points(rng);
}

}  // namespace

TEST_CASE("sgemm variant table: ref first, by ISA level, dispatch takes the best allowed") {
  test::check_variant_table(sgemm_variants(), sgemm_active());
}

TEST_CASE(
    "every sgemm variant matches the reference on edge shapes, transposes, packed entry points") {
  test::for_each_variant(sgemm_variants(), check_variant);
}

TEST_CASE("every sgemm variant reads operands with no unit stride (strided views)") {
  // A [m,k] at a[i*rs_a + p*cs_a] with both strides > 1 (every other row and column of a larger
  // array), B likewise: the drivers pack them like any other; a whole-product engine copies them.
  test::for_each_variant(sgemm_variants(), [](const GemmVariant& v) {
    ThreadsGuard threads;
    const test::UseGemmVariant use(v);
    Rng rng(11);
    for (auto [m, n, k] : {std::array<int64_t, 3>{1, 1, 1}, {5, 9, 1}, {7, 17, 33}, {40, 3, 300}}) {
      const auto a = random_vec(2 * m * 3 * k, rng), b = random_vec(3 * k * 2 * n, rng);
      for (bool acc : {false, true}) {
        const auto c0 = random_vec(m * n, rng);
        auto want = c0, got = c0;
        sgemm__ref(m, n, k, a.data(), 2 * 3 * k, 3, b.data(), 3 * 2 * n, 2, want.data(), n, acc);
        sgemm(m, n, k, a.data(), 2 * 3 * k, 3, b.data(), 3 * 2 * n, 2, got.data(), n, acc, 1);
        INFO("m=" << m << " n=" << n << " k=" << k << " acc=" << acc);
        CHECK(rel_err(got, want) < tol_for(k));
      }
    }
  });
}

TEST_CASE("every sgemm variant computes an element of C the same wherever C is cut") {
  // Conv's tasks and sgemm's threads hand the GEMM row and column ranges of C that change with
  // the thread count; results stay thread-count independent only if a block of rows/columns
  // equals the same rows/columns of the whole product bit for bit, at any offset and size.
  test::for_each_variant(sgemm_variants(), [](const GemmVariant& v) {
    const test::UseGemmVariant use(v);
    Rng rng(13);
    const int64_t m = 29, n = 45;
    for (int64_t k : {1, 7, 300}) {
      const auto a = random_vec(m * k, rng), b = random_vec(k * n, rng);
      std::vector<float> whole(static_cast<size_t>(m * n));
      sgemm(m, n, k, a.data(), k, 1, b.data(), n, 1, whole.data(), n, false, 1);
      int64_t differ = 0;
      for (int64_t r0 = 0; r0 < m; r0 += 3)
        for (int64_t rows = 1; r0 + rows <= m; rows += 2) {  // row blocks, all columns
          std::vector<float> part(static_cast<size_t>(rows * n));
          sgemm(rows, n, k, a.data() + r0 * k, k, 1, b.data(), n, 1, part.data(), n, false, 1);
          for (int64_t i = 0; i < rows * n; ++i)
            differ += part[size_t(i)] != whole[size_t(r0 * n + i)];
        }
      for (int64_t c0 = 0; c0 < n; c0 += 5)
        for (int64_t cols = 1; c0 + cols <= n; cols += 3) {  // column blocks, all rows
          std::vector<float> part(static_cast<size_t>(m * cols));
          sgemm(m, cols, k, a.data(), k, 1, b.data() + c0, n, 1, part.data(), cols, false, 1);
          for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < cols; ++j)
              differ += part[size_t(i * cols + j)] != whole[size_t(i * n + c0 + j)];
        }
      INFO("k=" << k);
      CHECK(differ == 0);
    }
  });
}

TEST_CASE("the ISA-baseline sgemm is Eigen's product in builds with Eigen") {
  // Dispatch at the ref level (a CPU without AVX2, or BFCN_ISA=ref) takes the last ref entry; the
  // scalar sgemm__ref stays entry 0, the reference every variant is tested against.
  const auto table = sgemm_variants();
  const GemmVariant* baseline = &table.front();
  for (const GemmVariant& v : table)
    if (v.isa == Isa::ref) baseline = &v;
  CHECK(std::string(table.front().name) == "sgemm__ref");
  CHECK(table.front().whole == nullptr);
#if BFCN_HAVE_EIGEN
  CHECK(std::string(baseline->name) == "sgemm__eigen");
  CHECK(baseline->whole == &sgemm__eigen);
#else
  CHECK(baseline == &table.front());
#endif
}

TEST_CASE("sgemm with k = 0 zeroes or keeps C") {
  std::vector<float> c(12, 3.0f);
  sgemm(3, 4, 0, nullptr, 0, 1, nullptr, 4, 1, c.data(), 4, true);
  CHECK(c == std::vector<float>(12, 3.0f));
  sgemm(3, 4, 0, nullptr, 0, 1, nullptr, 4, 1, c.data(), 4, false);
  CHECK(c == std::vector<float>(12, 0.0f));
}

TEST_CASE("sgemm microkernels of every variant agree with the reference one") {
  const GemmVariant& ref = sgemm_variants()[0];
  test::for_each_variant(sgemm_variants(), [&](const GemmVariant& var) {
    Rng rng(3);
    for (int64_t kc : {1, 2, 5, 256}) {
      // Packed panels are 32-byte aligned in the driver; the AVX2 kernel relies on it.
      alignas(64) static float ap[256 * kGemmMr], bp[256 * kGemmNr];
      for (int64_t i = 0; i < kc * kGemmMr; ++i) ap[i] = rng.uniform(-1.0f, 1.0f);
      for (int64_t i = 0; i < kc * kGemmNr; ++i) bp[i] = rng.uniform(-1.0f, 1.0f);
      for (bool acc : {false, true}) {
        auto c0 = random_vec(kGemmMr * 20, rng);
        auto r = c0, v = c0;
        ref.ukernel(kc, ap, bp, kGemmNr, r.data(), 20, acc);
        var.ukernel(kc, ap, bp, kGemmNr, v.data(), 20, acc);
        INFO("kc=" << kc << " acc=" << acc);
        CHECK(rel_err(v, r) < 1e-5);
        for (int i = 0; i < kGemmMr; ++i)  // columns 16..19 of each row are outside the tile
          for (int j = kGemmNr; j < 20; ++j) CHECK(v[i * 20 + j] == c0[i * 20 + j]);
        // The in-place-A variant: row i of A at a + i*lda, k contiguous.
        std::vector<float> arows(static_cast<size_t>(kGemmMr * (kc + 3)));
        for (int i = 0; i < kGemmMr; ++i)
          for (int64_t p = 0; p < kc; ++p) arows[i * (kc + 3) + p] = ap[p * kGemmMr + i];
        auto r2 = c0, v2 = c0;
        ref.ukernel_arows(kc, arows.data(), kc + 3, bp, r2.data(), 20, acc);
        var.ukernel_arows(kc, arows.data(), kc + 3, bp, v2.data(), 20, acc);
        CHECK(rel_err(r2, r) < 1e-5);
        CHECK(rel_err(v2, r) < 1e-5);
      }
    }
  });
}

TEST_CASE("the transposed-B panel packing of every variant copies exactly") {
  // variants without pack_b_panel_t pack with the scalar loop
  test::for_each_variant(
      sgemm_variants(), [](const GemmVariant& v) { return v.pack_b_panel_t != nullptr; },
      [](const GemmVariant& v) {
        Rng rng(5);
        for (int64_t kc : {1, 7, 256})
          for (int64_t cs : {kc, kc + 5}) {
            INFO("kc=" << kc << " cs=" << cs);
            const auto b = random_vec(cs * kGemmNr, rng);
            alignas(64) static float dst[256 * kGemmNr];
            v.pack_b_panel_t(kc, b.data(), cs, dst);
            bool same = true;
            for (int64_t p = 0; p < kc; ++p)
              for (int64_t j = 0; j < kGemmNr; ++j)
                same = same && dst[p * kGemmNr + j] == b[j * cs + p];
            CHECK(same);
          }
      });
}

}  // namespace bfcn
