// Fast conv2d kernels against the direct references: 1x1/3x3/7x7/rectangular kernels, strides 1-3,
// padding 0-3, dilation 1-2, groups 1/2/4/depthwise, odd sizes, inputs smaller than the kernel,
// batch 1 and 3, bias on/off, 1 and 2 threads (bitwise equal), a tiny im2col budget that forces
// the chunked paths, and every GEMM variant of kernels/gemm.h the CPU supports.
#include "kernels/conv.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu_features.h"
#include "kernels/gemm.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/support/test_support.h"
#include "tests/support/variants.h"

namespace bfcn {
namespace {

using test::random_vec;
using test::rel_err;

std::string describe(const ConvGeom& g) {
  std::ostringstream os;
  os << "x[" << g.n << "," << g.c << "," << g.h << "," << g.w << "] w[" << g.k << ","
     << g.c / g.groups << "," << g.kh << "," << g.kw << "] stride " << g.stride_h << "x"
     << g.stride_w << " pad " << g.pad_h << "x" << g.pad_w << " dil " << g.dilation_h << "x"
     << g.dilation_w << " groups " << g.groups;
  return os.str();
}

struct Case {
  int64_t c, h, w, k, kh, kw, sh, sw, ph, pw, dh, dw, groups;
};

const Case kCases[] = {
    // c  h   w   k  kh kw sh sw ph pw dh dw groups
    {4, 5, 7, 8, 1, 1, 1, 1, 0, 0, 1, 1, 1},      // 1x1 direct path
    {4, 9, 6, 5, 1, 1, 2, 2, 0, 0, 1, 1, 1},      // 1x1 stride 2
    {3, 5, 5, 4, 1, 1, 1, 1, 1, 1, 1, 1, 1},      // 1x1 with padding
    {5, 8, 8, 7, 3, 3, 1, 1, 1, 1, 1, 1, 1},      // 3x3 same
    {6, 9, 11, 10, 3, 3, 2, 2, 1, 1, 1, 1, 1},    // 3x3 stride 2, odd sizes
    {3, 13, 10, 4, 3, 3, 3, 3, 0, 0, 1, 1, 1},    // stride 3, no padding
    {4, 10, 9, 6, 3, 3, 1, 1, 2, 2, 2, 2, 1},     // dilation 2
    {3, 19, 17, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1},    // 7x7/2 stem
    {3, 11, 12, 5, 5, 3, 2, 1, 2, 0, 1, 2, 1},    // rectangular kernel, mixed stride/dilation
    {4, 7, 7, 6, 3, 3, 1, 1, 1, 1, 1, 1, 2},      // groups 2
    {8, 6, 5, 8, 3, 3, 2, 1, 1, 1, 1, 1, 4},      // groups 4
    {6, 7, 8, 6, 3, 3, 1, 1, 1, 1, 1, 1, 6},      // depthwise
    {4, 6, 6, 8, 3, 3, 2, 2, 1, 1, 2, 2, 4},      // depthwise x2 multiplier, dilated
    {3, 2, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1},      // input smaller than the kernel
    {2, 3, 2, 3, 7, 7, 1, 2, 3, 3, 1, 1, 1},      // 7x7 on 3x2 with padding 3
    {2, 1, 1, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1},      // 1x1 image
    {32, 12, 12, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // R = 288 > one 256-deep K block
};

ConvGeom geom_of(const Case& cs, int64_t n) {
  ConvGeom g;
  g.n = n;
  g.c = cs.c;
  g.h = cs.h;
  g.w = cs.w;
  g.k = cs.k;
  g.kh = cs.kh;
  g.kw = cs.kw;
  g.stride_h = cs.sh;
  g.stride_w = cs.sw;
  g.pad_h = cs.ph;
  g.pad_w = cs.pw;
  g.dilation_h = cs.dh;
  g.dilation_w = cs.dw;
  g.groups = cs.groups;
  return g;
}

struct Results {
  std::vector<float> y, dx, dw, db;
};

Results run_fast(const ConvGeom& g, const std::vector<float>& x, const std::vector<float>& w,
                 const float* bias, const std::vector<float>& dy) {
  Results r;
  r.y.assign(static_cast<size_t>(g.n * g.k * g.out_h() * g.out_w()), -7.0f);
  r.dx.assign(x.size(), -7.0f);  // garbage: kernels must overwrite
  r.dw.assign(w.size(), -7.0f);
  r.db.assign(static_cast<size_t>(g.k), -7.0f);
  conv2d_forward(g, x.data(), w.data(), bias, r.y.data());
  conv2d_backward_input(g, dy.data(), w.data(), r.dx.data());
  conv2d_backward_weight(g, x.data(), dy.data(), r.dw.data());
  conv2d_backward_bias(g, dy.data(), r.db.data());
  return r;
}

void check_geom(const ConvGeom& g, Rng& rng) {
  REQUIRE(g.valid());
  const auto x = random_vec(g.n * g.c * g.h * g.w, rng);
  const auto w = random_vec(g.k * (g.c / g.groups) * g.kh * g.kw, rng);
  const auto b = random_vec(g.k, rng);
  const auto dy = random_vec(g.n * g.k * g.out_h() * g.out_w(), rng);
  Results want;
  want.y.resize(dy.size());
  want.dx.resize(x.size());
  want.dw.resize(w.size());
  want.db.resize(b.size());
  for (bool with_bias : {false, true}) {
    const float* bias = with_bias ? b.data() : nullptr;
    conv2d_forward__ref(g, x.data(), w.data(), bias, want.y.data());
    conv2d_backward_input__ref(g, dy.data(), w.data(), want.dx.data());
    conv2d_backward_weight__ref(g, x.data(), dy.data(), want.dw.data());
    conv2d_backward_bias__ref(g, dy.data(), want.db.data());
    omp_set_num_threads(1);
    const Results one = run_fast(g, x, w, bias, dy);
    omp_set_num_threads(2);
    const Results two = run_fast(g, x, w, bias, dy);
    INFO(describe(g) << (with_bias ? " with bias" : " no bias"));
    CHECK(rel_err(one.y, want.y) < 1e-4);
    CHECK(rel_err(one.dx, want.dx) < 1e-4);
    CHECK(rel_err(one.dw, want.dw) < 1e-4);
    CHECK(rel_err(one.db, want.db) < 1e-4);
    CHECK(one.y == two.y);
    CHECK(one.dx == two.dx);
    CHECK(one.dw == two.dw);
    CHECK(one.db == two.db);
  }
}

struct Restore {
  int threads = omp_get_max_threads();
  int64_t budget = conv2d_set_col_budget(int64_t{1} << 20);
  ~Restore() {
    omp_set_num_threads(threads);
    conv2d_set_col_budget(budget);
  }
};

}  // namespace

TEST_CASE("conv2d fast kernels match the direct reference") {
  Restore restore;
  Rng rng(2024);
  for (const Case& cs : kCases)
    for (int64_t n : {1, 3}) check_geom(geom_of(cs, n), rng);
}

TEST_CASE("conv2d chunked im2col paths match the reference") {
  Restore restore;
  conv2d_set_col_budget(64);  // a few output columns per chunk
  Rng rng(99);
  for (const Case& cs : kCases) check_geom(geom_of(cs, 2), rng);
}

TEST_CASE("conv2d threaded sizes match the reference and do not depend on thread count") {
  Restore restore;
  Rng rng(5);
  const bool sanitized = std::getenv("BFCN_SANITIZED") != nullptr;
  const int64_t hw = sanitized ? 16 : 40;
  check_geom(geom_of({16, hw, hw, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 1), rng);
  check_geom(geom_of({3, 2 * hw, 2 * hw, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1}, 1), rng);
  check_geom(geom_of({64, hw / 2, hw / 2, 48, 1, 1, 1, 1, 0, 0, 1, 1, 1}, 2), rng);
}

namespace {
// Every case above plus shapes big enough for 12x32 GEMM tiles (64 and 76 output channels, R over
// one K block, a 1x1 direct case) under GEMM variant v.
void check_gemm_variant(const GemmVariant& v) {
  Restore restore;
  const test::UseGemmVariant use(v);
  Rng rng(31);
  for (const Case& cs : kCases) check_geom(geom_of(cs, 2), rng);
  check_geom(geom_of({32, 14, 13, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 1), rng);
  check_geom(geom_of({40, 9, 10, 76, 3, 3, 2, 1, 1, 1, 1, 1, 1}, 2), rng);
  check_geom(geom_of({70, 11, 9, 44, 1, 1, 1, 1, 0, 0, 1, 1, 1}, 1), rng);
  check_geom(geom_of({3, 30, 30, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1}, 1), rng);
  // >= 4096 output pixels: stride-1 backward-data runs as a forward conv of dY with flipped,
  // transposed weights (AVX-512), incl. padding 0, dilation, groups and a rectangular kernel;
  // padding past dilation*(kernel-1) keeps the GEMM + col2im path.
  check_geom(geom_of({8, 64, 66, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 1), rng);
  check_geom(geom_of({5, 66, 66, 7, 3, 3, 1, 1, 0, 0, 1, 1, 1}, 1), rng);
  check_geom(geom_of({6, 70, 60, 12, 3, 3, 1, 1, 2, 2, 2, 2, 1}, 1), rng);
  check_geom(geom_of({8, 65, 64, 6, 3, 5, 1, 1, 1, 2, 1, 1, 2}, 1), rng);
  check_geom(geom_of({4, 64, 64, 8, 3, 3, 1, 1, 3, 3, 1, 1, 1}, 1), rng);
  conv2d_set_col_budget(2000);  // chunked paths with the wide tiles
  check_geom(geom_of({32, 14, 13, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1}, 2), rng);
}
}  // namespace

TEST_CASE("conv2d matches the reference with every sgemm variant's GEMM") {
  test::for_each_variant(sgemm_variants(), check_gemm_variant);
}

// Output rows of >= 64 and no groups: with multi-panel tiles (AVX-512) forward reads the GEMM's B
// operand in place from zero-padded bands of input rows (stride 1 along the width: one GEMM per
// column tap; other strides: the column taps gathered per input row), backward-weight reads the
// same bands as its A operand (threads split the output channels), and stride-1 backward-data runs
// through forward. Odd widths, strides 1-3, dilation along the width, rectangular kernels, padding
// 0 and past the kernel, bands that end mid-image, few and many channels, every GEMM variant.
TEST_CASE("conv2d forward by output rows matches the reference with every sgemm variant") {
  test::for_each_variant(sgemm_variants(), [](const GemmVariant& v) {
    Restore restore;
    const test::UseGemmVariant use(v);
    Rng rng(123);
    const Case cases[] = {
        // c  h   w   k  kh kw sh sw ph pw dh dw groups
        {16, 9, 67, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // odd width, 20 output channels
        {3, 21, 70, 8, 3, 3, 2, 1, 1, 1, 1, 1, 1},    // stride 2 along the height
        {5, 8, 72, 13, 3, 3, 1, 1, 1, 2, 1, 2, 1},    // dilation 2 along the width
        {4, 11, 80, 7, 5, 2, 1, 1, 2, 0, 1, 1, 1},    // rectangular kernel, no padding along w
        {2, 6, 64, 3, 3, 3, 1, 1, 0, 0, 1, 1, 1},     // no padding: 62 columns, the old path
        {3, 7, 64, 6, 3, 3, 1, 1, 4, 4, 1, 1, 1},     // padding past the kernel
        {40, 40, 64, 36, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // several bands per image
        {3, 20, 135, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1},  // the 7x7/2 stem: column taps gathered
        {4, 9, 200, 6, 3, 3, 1, 3, 1, 1, 1, 1, 1},    // stride 3 along the width
        {3, 10, 140, 5, 3, 3, 2, 2, 2, 2, 1, 2, 1},   // stride 2, dilation 2 along the width
        {2, 8, 130, 4, 1, 1, 2, 2, 0, 0, 1, 1, 1},    // 1x1 stride 2
        {3, 6, 129, 8, 3, 5, 1, 2, 0, 5, 1, 1, 1},    // stride 2, padding past the kernel
        // Column phases (AVX-512 forward, strides > 1 along the width): 1 channel with 13 output
        // channels (a 12-channel tile, then a 6-channel one with 1 row), 7 (one partial 12-channel
        // tile), 25; stride 3 with dilation 2 and an even kernel, padding past the kernel; widths
        // ending mid-tile.
        {1, 9, 131, 13, 5, 5, 2, 2, 2, 2, 1, 1, 1},  // 1 channel, 66 columns
        {2, 7, 200, 7, 3, 4, 1, 3, 0, 7, 1, 2, 1},   // stride 3, dilation 2, kw 4, padding 7
        {4, 5, 161, 25, 2, 6, 3, 2, 1, 4, 1, 1, 1},  // 4 channels, 81 columns, even kw
    };
    for (const Case& cs : cases)
      for (int64_t n : {1, 2}) check_geom(geom_of(cs, n), rng);
  });
}

// Up to kConvDgradMaxC input channels per group with stride 2 along the width: backward-data runs
// the row variant's direct kernel where it has one (AVX-512). Channels 1-4, stride 1-3 along the
// height, padding 0 to past the kernel, odd sizes, rows wider than one block of dx columns (256),
// a 1x1 image, groups, one and many output channels, batch 1 and 2.
TEST_CASE(
    "conv2d backward-data of few input channels, stride 2 along the width, matches the reference") {
  Restore restore;
  Rng rng(77);
  const Case cases[] = {
      // c  h   w    k  kh kw sh sw ph pw dh dw groups
      {3, 19, 21, 16, 7, 7, 2, 2, 3, 3, 1, 1, 1},  // the stem, odd sizes
      {1, 9, 300, 5, 7, 7, 2, 2, 3, 3, 1, 1, 1},   // two column blocks, 1 channel
      {2, 7, 257, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1},   // odd width past one block, 2 channels
      {4, 11, 40, 9, 3, 3, 1, 2, 1, 1, 1, 1, 1},   // stride 1 along the height, 4 channels
      {3, 13, 17, 6, 5, 4, 3, 2, 2, 1, 1, 1, 1},   // stride 3 x 2, rectangular kernel
      {3, 8, 10, 4, 3, 3, 2, 2, 0, 0, 1, 1, 1},    // no padding
      {2, 6, 9, 3, 3, 3, 2, 2, 5, 5, 1, 1, 1},     // padding past the kernel
      {3, 12, 12, 7, 1, 1, 2, 2, 0, 0, 1, 1, 1},   // 1x1 stride 2
      {3, 1, 1, 8, 7, 7, 2, 2, 3, 3, 1, 1, 1},     // 1x1 image
      {4, 10, 23, 6, 3, 3, 2, 2, 1, 1, 1, 1, 2},   // groups 2, 2 channels each
      {3, 9, 14, 3, 3, 3, 2, 2, 1, 1, 1, 1, 3},    // depthwise
      {3, 10, 12, 1, 7, 7, 2, 2, 3, 3, 1, 1, 1},   // one output channel
      {4, 37, 70, 64, 7, 7, 2, 2, 3, 3, 1, 1, 1},  // 64 output channels, 2 threads' worth of rows
      // Even kw and padding (every column offset has a tap of both phases), even padding with odd
      // kw (the lowest offset has a phase-0 tap only); several column blocks for 1 and 4
      // channels; kw at its limit.
      {1, 8, 397, 6, 2, 2, 2, 2, 0, 0, 1, 1, 1},    // kw 2, no padding: 3 blocks, 1 channel
      {2, 10, 35, 4, 4, 4, 1, 2, 2, 2, 1, 1, 1},    // even kernel, even padding
      {4, 9, 101, 5, 5, 5, 3, 2, 2, 2, 1, 1, 1},    // even padding, odd kw: 3 blocks, 4 channels
      {3, 11, 45, 7, 11, 11, 2, 2, 5, 6, 1, 1, 1},  // wide kernel, pad_h != pad_w
      {1, 5, 33, 3, 3, 33, 2, 2, 1, 16, 1, 1, 1},   // kw 33 with padding
      {1, 4, 40, 2, 1, 33, 1, 2, 0, 0, 1, 1, 1},    // kw 33, no padding: offsets down to -16
  };
  for (const Case& cs : cases)
    for (int64_t n : {1, 2}) check_geom(geom_of(cs, n), rng);
}

// 3x3 stride-1 convolutions of rows 16 to 48 wide (a multiple of 16): forward and backward-data run
// the row variant's direct tiles where it has them (AVX-512). Channels below, at and past one
// 32-channel depth block, output channels that leave 1-5 rows for the zero-padded last tile,
// 16-column panels that straddle image rows (width 48) or end a row (width 16, odd height),
// padding 0-2 (backward-data only for widths of 16/32/48, forward only for output widths of them),
// batch 1 and 2.
TEST_CASE("conv2d direct 3x3 of narrow rows matches the reference") {
  Restore restore;
  Rng rng(314);
  const Case cases[] = {
      // c  h   w   k  kh kw sh sw ph pw dh dw groups
      {20, 16, 16, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // 12 + 1 output channels, one depth block
      {40, 5, 32, 30, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // 32 + 8 channels, 12 + 12 + 6 rows
      {33, 7, 48, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // panels straddling rows, 12 + 6 + 2 rows
      {8, 5, 16, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1},     // odd height: a last 16-column tile
      {7, 4, 16, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1},     // 3 output and 3 input channels (bwd)
      {16, 16, 32, 24, 3, 3, 1, 1, 1, 1, 1, 1, 1},  // two column blocks: 2 threads share them
      {12, 10, 18, 24, 3, 3, 1, 1, 0, 0, 1, 1, 1},  // no padding: forward only (16 outputs)
      {10, 6, 16, 9, 3, 3, 1, 1, 0, 0, 1, 1, 1},    // no padding: backward-data only
      {8, 5, 16, 14, 3, 3, 1, 1, 2, 2, 1, 1, 1},    // padding 2: backward-data only
      {6, 7, 32, 8, 3, 3, 1, 1, 0, 1, 1, 1, 1},     // padding 0 x 1
      {18, 6, 16, 40, 3, 3, 1, 1, 1, 1, 1, 1, 1},   // 40 output channels: 32 + 8 (backward-weight)
  };
  for (const Case& cs : cases)
    for (int64_t n : {1, 2}) check_geom(geom_of(cs, n), rng);
}

TEST_CASE("conv2d row variant table: ref first, by ISA level, dispatch takes the best allowed") {
  const ConvRowVariant& best = best_variant(conv_row_variants());
  test::check_variant_table(conv_row_variants(), best);
}

// The stride-2 row helpers of every variant against the scalar loops for every length 0..70 (full
// steps and masked ends): same values, and nothing outside the row touched (the buffers are
// guarded on both sides).
TEST_CASE("conv2d stride-2 row helpers of every variant match the scalar loops") {
  test::for_each_variant(conv_row_variants(), [](const ConvRowVariant& v) {
    Rng rng(11);
    constexpr int64_t kGuard = 40;
    for (int64_t n = 0; n <= 70; ++n) {
      const int64_t span = n > 0 ? 2 * n - 1 : 0;  // src[0 .. 2n-2] / dst[0 .. 2n-2]
      auto wide = random_vec(span + 2 * kGuard, rng);
      auto narrow = random_vec(n + 2 * kGuard, rng);
      // gather: dst[i] = src[2i]
      std::vector<float> want_g = narrow, got_g = narrow;
      for (int64_t i = 0; i < n; ++i) want_g[kGuard + i] = wide[kGuard + 2 * i];
      v.gather_stride2(wide.data() + kGuard, got_g.data() + kGuard, n);
      INFO("n=" << n);
      CHECK(got_g == want_g);
      // scatter-add: dst[2i] += src[i]
      std::vector<float> want_s = wide, got_s = wide;
      for (int64_t i = 0; i < n; ++i) want_s[kGuard + 2 * i] += narrow[kGuard + i];
      v.scatter_add_stride2(narrow.data() + kGuard, got_s.data() + kGuard, n);
      CHECK(got_s == want_s);
    }
  });
}

TEST_CASE("ConvGeom rejects inconsistent sizes") {
  ConvGeom g;
  g.c = 4;
  g.k = 6;
  g.h = g.w = 5;
  g.kh = g.kw = 3;
  CHECK(g.valid());
  CHECK(g.out_h() == 3);
  g.groups = 4;  // k = 6 not divisible by 4
  CHECK_FALSE(g.valid());
  g.groups = 2;
  CHECK(g.valid());
  g.h = 2;  // 2 < 3 with no padding
  CHECK_FALSE(g.valid());
  g.pad_h = 1;
  CHECK(g.valid());
  CHECK(g.macs() == 1 * 6 * 2 * 3 * 2 * 9);
}

}  // namespace bfcn
