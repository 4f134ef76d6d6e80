// Bit-serial convolution driver: per output row, im2col of packed words, the ISA popcount GEMM,
// then the exact integer dot and the fused epilogue (see bitconv.h). The activation-count term
// sum_k 2^k popcnt(a_k) of a patch is the sum of per-input-pixel counts, computed once per layer.
#include "kernels/bitconv.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/act_pack.h"
#include "kernels/bitpack.h"
#include "kernels/variant.h"

namespace bfcn {

namespace {
// The epilogue's float value of an integer dot I, one rounding per step (no FMA contraction:
// this file is built for the baseline ISA), shared by the float epilogue and the thresholds.
float requant_value(int32_t i, float mul, float add) { return float(i) * mul + add; }
}  // namespace

int BitConvShape::row_words() const { return bitconv_row_words(taps(), in_c); }

std::span<const BgemmVariant> bgemm_variants() {
  static const BgemmVariant kVariants[] = {
    {Isa::ref, "bgemm__ref", bgemm__ref, requant_pack__ref},
#if BFCN_X86
    {Isa::avx2, "bgemm__avx2_popcnt", bgemm__avx2_popcnt, requant_pack__avx2, false, nullptr, 0,
     nullptr, nullptr, dequant_f32__avx2, requant_res_conv__avx2},
    {Isa::avx2, "bgemm__avx2", bgemm__avx2, requant_pack__avx2, false, nullptr, 0, nullptr, nullptr,
     dequant_f32__avx2, requant_res_conv__avx2},
    {Isa::avx2, "bgemm__avx2_nib", bgemm__avx2_nib, requant_pack__avx2, true, nullptr, 0, nullptr,
     nullptr, dequant_f32__avx2, requant_res_conv__avx2},
    {Isa::avx2, "bgemm__avx2_ocv", bgemm__avx2_ocv, requant_pack__avx2, true,
     prep_weights__avx2_ocv, kOcvPixelTile, nullptr, nullptr, dequant_f32__avx2,
     requant_res_conv__avx2},
    {Isa::avx512, "bgemm__avx512", bgemm__avx512, requant_pack__avx2, false, nullptr, 0, nullptr,
     nullptr, dequant_f32__avx512, requant_res_conv__avx2},
    {Isa::avx512, "bgemm__avx512_ocv", bgemm__avx512_ocv, requant_pack__avx512, false,
     prep_weights__avx512_ocv, kOcv512PixelTile, bgemm_direct__avx512_ocv, threshold_pack__avx512,
     dequant_f32__avx512, requant_res_conv__avx512},
#endif
  };
  return kVariants;
}

const BgemmVariant& bgemm_active() {
  // The last listed variant of the active level is its preferred one (measured fastest).
  static const BgemmVariant& chosen = best_variant(bgemm_variants());
  return chosen;
}

const BgemmVariant& bgemm_for_shape(const BitConvShape& s) {
  const Isa isa = active_isa();
  if (isa == Isa::ref) return bgemm_variants()[0];
  using Key = std::tuple<int, int, int, int, int, int, int, int, int, int, int>;
  static std::mutex mu;
  static std::map<Key, const BgemmVariant*> chosen;
  const Key key{s.in_h,   s.in_w, s.in_c,     s.out_c,  s.kh,    s.kw,
                s.stride, s.pad,  s.dilation, s.a_bits, s.w_bits};
  const std::lock_guard<std::mutex> lock(mu);
  if (auto it = chosen.find(key); it != chosen.end()) return *it->second;
  // The slice: enough output rows for ~2^25 MACs (well under a millisecond for the fast
  // variants), whole rows so the pixel tiling and channel blocks are the layer's own.
  BitConvShape c = s;
  const int64_t row_macs = std::max<int64_t>(1, s.macs() / std::max(1, s.out_h()));
  const int rows = int(std::clamp<int64_t>((int64_t(1) << 25) / row_macs, 2, s.out_h()));
  c.in_h = std::min(s.in_h, (rows - 1) * s.stride + s.dilation * (s.kh - 1) + 1);
  std::mt19937_64 gen(1);
  std::vector<uint64_t> in(size_t(c.in_h) * c.in_w * c.a_bits * bit_words(c.in_c));
  std::vector<uint64_t> w(size_t(c.out_c) * c.w_bits * c.row_words());
  for (uint64_t& x : in) x = gen();
  for (uint64_t& x : w) x = gen();  // (speed does not depend on the bits; results are dropped)
  std::vector<int32_t> out(size_t(std::max(1, c.out_h())) * c.out_w() * c.out_c);
  std::vector<const BgemmVariant*> cands;
  for (const BgemmVariant& v : bgemm_variants())
    if (v.isa != Isa::ref && isa_enabled(v.isa)) cands.push_back(&v);
  // Rounds over all candidates (a warm-up round, then the best of 6 each): on a shared machine a
  // burst of load then hits every candidate alike instead of one candidate's whole timing. On one
  // thread: a parallel region waits for its slowest thread, so on a loaded machine one preempted
  // thread made every timing of a fast variant as slow as a scheduler time slice and the choice
  // random (session 10: avx2_popcnt, 30x slower, picked for a 2-thread layer at load 3); a
  // single thread is rarely preempted within a slice's ~10-300 us. The kernels run row by row,
  // the same code on any thread count, and quiet 1- and 2-thread timings picked the same
  // variants (docs/benchmarks.md), so one choice serves every thread count.
  std::vector<double> t(cands.size(), 1e30);
  // Weights prepared outside the timing, as layers run them (PreparedBitWeights): a variant's
  // one-time re-layout must not decide its per-run speed.
  std::vector<PreparedBitWeights> prepared;
  for (const BgemmVariant* v : cands) prepared.push_back(prepare_bitconv_weights(c, w.data(), *v));
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);  // this thread's setting only; restored below
  for (int round = 0; round < 7; ++round)
    for (size_t i = 0; i < cands.size(); ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      bitconv_int32(c, in.data(), prepared[i], out.data());
      const double dt =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (round > 0) t[i] = std::min(t[i], dt);
    }
  omp_set_num_threads(threads);
  size_t bi = 0;
  for (size_t i = 1; i < cands.size(); ++i)
    if (t[i] < t[bi]) bi = i;
  const BgemmVariant* best = cands.empty() ? &bgemm_variants()[0] : cands[bi];
  chosen[key] = best;
  return *best;
}

void requant_pack__ref(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                       const float* res, int bits, uint64_t* out) {
  const float levels = float((1 << bits) - 1);
  uint8_t q[64];
  const int cw = bit_words(n);
  for (int wi = 0; wi < cw; ++wi) {
    const int m = std::min(64, n - wi * 64);
    std::memset(q, 0, sizeof(q));
    for (int i = 0; i < m; ++i) {
      const int o = wi * 64 + i;
      float v = requant_value(2 * p[o] - corr, mul[o], add[o]);
      if (res) v += res[o];
      q[i] = quantize_level(v, levels);
    }
    uint64_t planes[8];
    pack_pixel_q(q, 64, bits, planes);  // one word per plane for 64 channels
    for (int k = 0; k < bits; ++k) out[k * cw + wi] = planes[k];
  }
}

void dequant_f32__ref(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                      const float* res, bool relu, float* out) {
  for (int o = 0; o < n; ++o) {
    float v = requant_value(2 * p[o] - corr, mul[o], add[o]);
    if (res) v += res[o];
    out[o] = relu ? (v > 0.0f ? v : 0.0f) : v;
  }
}

void threshold_pack__ref(const int32_t* p, int n, int oc, const int32_t* corr, const int32_t* thr,
                         const int32_t* neg, int ldt, int bits, uint64_t* out) {
  const int cw = bit_words(oc), levels = (1 << bits) - 1;
  uint8_t q[64];
  for (int px = 0; px < n; ++px)
    for (int wi = 0; wi < cw; ++wi) {
      const int m = std::min(64, oc - wi * 64);
      std::memset(q, 0, sizeof(q));
      for (int i = 0; i < m; ++i) {
        const int o = wi * 64 + i;
        const int32_t iv = 2 * p[int64_t(px) * oc + o] - corr[px];
        const int32_t x = neg[o] ? -iv : iv;
        for (int t = 0; t < levels; ++t) q[i] += x >= thr[int64_t(t) * ldt + o];
      }
      uint64_t planes[8];
      pack_pixel_q(q, 64, bits, planes);
      for (int k = 0; k < bits; ++k) out[(int64_t(px) * bits + k) * cw + wi] = planes[k];
    }
}

bool requant_thresholds(const float* mul, const float* add, int oc, int bits, int64_t bound,
                        int res_bits, std::vector<int32_t>* thr, std::vector<int32_t>* neg,
                        int* ldt) {
  const int levels = (1 << bits) - 1, res_levels = 1 << res_bits;
  const float flevels = float(levels);
  *ldt = (oc + 31) / 32 * 32;  // whole 32-channel blocks (the AVX-512 kernels' loads)
  thr->assign(size_t(res_levels) * levels * *ldt, int32_t(bound + 1));  // padding: never reached
  neg->assign(size_t(*ldt), 0);
  for (int o = 0; o < oc; ++o)
    if (!std::isfinite(mul[o]) || !std::isfinite(add[o])) return false;
  for (int o = 0; o < oc; ++o) (*neg)[size_t(o)] = mul[o] < 0.0f ? -1 : 0;
  for (int rq = 0; rq < res_levels; ++rq) {
    // the residual code's value exactly as unpack_dequant_act gives it (q/n, a division)
    const float res = res_bits > 0 ? float(rq) / float(res_levels - 1) : 0.0f;
#pragma omp parallel for schedule(static) if (oc * levels >= 256)
    for (int o = 0; o < oc; ++o) {
      const int32_t sign = mul[o] < 0.0f ? -1 : 1;
      // level of X = sign*I, non-decreasing in X: the same float steps as requant_pack__ref
      const auto level = [&](int64_t x) {
        float v = requant_value(int32_t(sign * x), mul[o], add[o]);
        if (res_bits > 0) v += res;
        return int(quantize_level(v, flevels));
      };
      for (int j = 1; j <= levels; ++j) {
        // smallest X in [-bound, bound] with level(X) >= j (bound + 1: none). Start at the real-
        // valued solution, then walk to the exact boundary; a binary search if it is far off.
        int64_t x = bound + 1;
        if (mul[o] == 0.0f) {
          x = level(0) >= j ? -bound : bound + 1;
        } else {
          const double est = std::ceil(((double(j) - 0.5) / levels - double(add[o]) - res) /
                                       std::fabs(double(mul[o])));
          x = int64_t(std::clamp(est, double(-bound), double(bound + 1)));
          int steps = 0;
          while (x > -bound && level(x - 1) >= j && ++steps < 64) --x;
          while (x <= bound && level(x) < j && ++steps < 64) ++x;
          if (steps >= 64) {
            int64_t lo = -bound, hi = bound + 1;  // level(hi) >= j by convention
            while (lo < hi) {
              const int64_t mid = lo + (hi - lo) / 2;
              if (level(mid) >= j)
                hi = mid;
              else
                lo = mid + 1;
            }
            x = lo;
          }
        }
        (*thr)[(size_t(rq) * levels + j - 1) * *ldt + o] = int32_t(x);
      }
    }
  }
  return true;
}

namespace {

// Per-thread scratch of one output row.
struct RowScratch {
  std::vector<uint64_t> patch;    // [OW][K][lp] (or [OW][K][2*lp] nibble-split)
  std::vector<uint64_t> unsplit;  // [K][lp] one patch before splitting
  std::vector<int32_t> count;     // [OW] sum_k 2^k popcnt over the patch
  std::vector<int32_t> corr;      // [OW] (2^M-1) * count, for a fused epilogue
  std::vector<int32_t> acc;       // [OW][OC]
};

// counts[p] = sum_k 2^k popcnt(in[p][k][:]) for p in [p0, p1), inlined into each variant so it
// takes the variant's target: this file is built for the baseline ISA, where the popcount is a
// libgcc call (~6% of a 64-channel layer); in the popcnt-target variant it is the instruction.
__attribute__((always_inline)) inline void count_pixels(const uint64_t* in, int64_t p0, int64_t p1,
                                                        int kb, int cw, int32_t* counts) {
  for (int64_t p = p0; p < p1; ++p) {
    int32_t c = 0;
    for (int k = 0; k < kb; ++k) {
      int32_t pk = 0;
      const uint64_t* src = in + (p * kb + k) * cw;
      for (int i = 0; i < cw; ++i) pk += __builtin_popcountll(src[i]);
      c += pk << k;
    }
    counts[p] = c;
  }
}

void count_pixels__ref(const uint64_t* in, int64_t p0, int64_t p1, int kb, int cw,
                       int32_t* counts) {
  count_pixels(in, p0, p1, kb, cw, counts);
}

}  // namespace

#if BFCN_X86
__attribute__((target("popcnt"))) void count_pixels__popcnt(const uint64_t* in, int64_t p0,
                                                            int64_t p1, int kb, int cw,
                                                            int32_t* counts) {
  count_pixels(in, p0, p1, kb, cw, counts);
}
#endif

std::span<const ActCountVariant> act_count_variants() {
  static const ActCountVariant kVariants[] = {
    {Isa::ref, "count_pixels__ref", count_pixels__ref},
#if BFCN_X86
    {Isa::avx2, "count_pixels__popcnt", count_pixels__popcnt},
    {Isa::avx512, "count_pixels__avx512", count_pixels__avx512},
#endif
  };
  return kVariants;
}

namespace {

// A layer run's working buffer (the activation counts, the re-laid-out input), taken from and
// given back to a per-thread free list: a fresh block of a few 100 KB per layer run is mmap'd by
// malloc and page-faulted in again, which cost about as much as filling it (~0.025 ms per
// 64-channel 128x128 conv, 3 % of the W1A2 network's bit layers). Contents are not kept.
template <class T>
class ReusedBuffer {
 public:
  explicit ReusedBuffer(size_t n) {
    std::vector<std::vector<T>>& pool = free_list();
    if (!pool.empty()) {
      v_ = std::move(pool.back());
      pool.pop_back();
    }
    if (v_.size() < n) v_.resize(n);
  }
  ~ReusedBuffer() { free_list().push_back(std::move(v_)); }
  ReusedBuffer(const ReusedBuffer&) = delete;
  ReusedBuffer& operator=(const ReusedBuffer&) = delete;
  T* data() { return v_.data(); }
  const T* data() const { return v_.data(); }

 private:
  static std::vector<std::vector<T>>& free_list() {
    thread_local std::vector<std::vector<T>> pool;
    return pool;
  }
  std::vector<T> v_;
};

// counts [p0, p1) of [H*W]: sum_k 2^k popcnt(in[pixel][k][:]), by the best count variant
void activation_counts(const BitConvShape& s, const uint64_t* in, int64_t p0, int64_t p1,
                       int32_t* counts) {
  static const ActCountFn count = best_variant(act_count_variants()).count;
  count(in, p0, p1, s.a_bits, bit_words(s.in_c), counts);
}

constexpr uint64_t kLowNibbles = 0x0f0f0f0f0f0f0f0full;

// Nibble-split copy of `rows` rows of lp words whose first `used` words carry data: each output row
// is [used low-nibble words][used high-nibble words][zeros up to lpe] (BgemmVariant::split_nibbles;
// packing the halves together skips the 4-word padding of each half). halves = 1: an unsplit copy
// of the used words (the unpadded rows of a pixel-tiled variant).
void split_rows(const uint64_t* src, int64_t rows, int lp, int used, int lpe, uint64_t* dst,
                int halves) {
  for (int64_t r = 0; r < rows; ++r) {
    uint64_t* d = dst + r * lpe;
    for (int i = 0; i < used; ++i) {
      const uint64_t x = src[r * lp + i];
      if (halves == 1) {
        d[i] = x;
        continue;
      }
      d[i] = x & kLowNibbles;
      d[used + i] = (x >> 4) & kLowNibbles;
    }
    for (int i = halves * used; i < lpe; ++i) d[i] = 0;
  }
}

// Words per row as the variant reads them: nibble-split rows padded to whole 256-bit chunks unless
// the variant reads words (prep_weights); pixel-tiled rows unpadded; else the packed row_words.
int variant_row_words(const BitConvShape& s, const BgemmVariant& v) {
  const int used = s.taps() * bit_words(s.in_c);
  if (v.split_nibbles) return v.prep_weights ? 2 * used : (2 * used + 3) / 4 * 4;
  return v.pixel_tile > 0 ? used : s.row_words();
}

// Builds the zero-padded patches of output row oy and their activation counts.
void im2col_row(const BitConvShape& s, const uint64_t* in, const int32_t* act_count, int oy,
                bool split, int lpe, RowScratch& r) {
  const int cw = bit_words(s.in_c), lp = s.row_words(), kb = s.a_bits, ow = s.out_w();
  for (int ox = 0; ox < ow; ++ox) {
    uint64_t* patch = split ? r.unsplit.data() : r.patch.data() + int64_t(ox) * kb * lp;
    std::memset(patch, 0, sizeof(uint64_t) * kb * lp);
    int32_t count = 0;
    for (int ky = 0; ky < s.kh; ++ky) {
      const int iy = oy * s.stride - s.pad + ky * s.dilation;
      if (iy < 0 || iy >= s.in_h) continue;
      for (int kx = 0; kx < s.kw; ++kx) {
        const int ix = ox * s.stride - s.pad + kx * s.dilation;
        if (ix < 0 || ix >= s.in_w) continue;
        const int64_t pix = int64_t(iy) * s.in_w + ix;
        const uint64_t* src = in + pix * kb * cw;
        const int t = ky * s.kw + kx;
        for (int k = 0; k < kb; ++k)
          std::memcpy(patch + k * lp + t * cw, src + k * cw, sizeof(uint64_t) * cw);
        count += act_count[pix];
      }
    }
    if (split) {
      split_rows(patch, kb, lp, s.taps() * cw, lpe, r.patch.data() + int64_t(ox) * kb * lpe, 2);
    }
    r.count[size_t(ox)] = count;
  }
}

// Nibble-split copy of the input's pixels [p0, p1), once per layer: in [pix][K][cw] ->
// out [2][cw][pix][K] (one plane per low/high half and word, the K planes of a pixel adjacent as
// in a pixel tile), so the K words of consecutive pixels at one tap are contiguous: one copy fills
// a tile's l row. halves = 1: the same re-layout unsplit, out [cw][pix][K].
void split_input(const BitConvShape& s, const uint64_t* in, int halves, int64_t p0, int64_t p1,
                 uint64_t* out) {
  const int cw = bit_words(s.in_c), kb = s.a_bits;
  const int64_t pixels = int64_t(s.in_h) * s.in_w;
  for (int64_t p = p0; p < p1; ++p)
    for (int k = 0; k < kb; ++k)
      for (int i = 0; i < cw; ++i) {
        const uint64_t x = in[(p * kb + k) * cw + i];
        if (halves == 1) {
          out[size_t((i * pixels + p) * kb + k)] = x;
          continue;
        }
        out[size_t((i * pixels + p) * kb + k)] = x & kLowNibbles;
        out[size_t(((cw + i) * pixels + p) * kb + k)] = (x >> 4) & kLowNibbles;
      }
}

// im2col of output row oy straight into the pixel-tiled layout (BgemmVariant::pixel_tile) from
// the pre-split input: word l of a patch is l = h*used + tap*cw + i (the split_rows order, so the
// weights match), element (l, p, k) of a tile of n pixels at (l*n + p)*K + k. Tiles whose taps
// all lie inside the row (stride 1) copy n*K contiguous words per l; others go pixel by pixel.
// KT > 0 fixes K = a_bits at compile time. halves: 2 for nibble-split rows, 1 for unsplit ones.
template <int KT>
void im2col_row_tiled(const BitConvShape& s, const uint64_t* in_split, const int32_t* act_count,
                      int oy, int tile, int halves, RowScratch& r) {
  const int kb = KT > 0 ? KT : s.a_bits;
  const int cw = bit_words(s.in_c), ow = s.out_w(), used = s.taps() * cw;
  const int64_t lpe = halves * used, pixels = int64_t(s.in_h) * s.in_w;
  for (int t0 = 0; t0 < ow; t0 += tile) {
    const int n = std::min(tile, ow - t0);
    const int64_t ls = int64_t(n) * kb;  // words between consecutive l
    uint64_t* tbase = r.patch.data() + int64_t(t0) * kb * lpe;
    const int ix_lo = t0 * s.stride - s.pad;
    const int ix_hi = (t0 + n - 1) * s.stride - s.pad + (s.kw - 1) * s.dilation;
    if (s.stride == 1 && ix_lo >= 0 && ix_hi < s.in_w) {
      for (int pp = 0; pp < n; ++pp) r.count[size_t(t0 + pp)] = 0;
      for (int ky = 0; ky < s.kh; ++ky) {
        const int iy = oy - s.pad + ky * s.dilation;
        const bool row_in = iy >= 0 && iy < s.in_h;
        for (int kx = 0; kx < s.kw; ++kx) {
          const int t = ky * s.kw + kx;
          const int64_t pix0 = int64_t(iy) * s.in_w + ix_lo + kx * s.dilation;
          for (int h = 0; h < halves; ++h)  // (h, i) planes: l = h*used + t*cw + i
            for (int i = 0; i < cw; ++i) {
              const int hi = h * cw + i;
              uint64_t* d = tbase + (h * used + t * cw + i) * ls;
              const uint64_t* src = in_split + (hi * pixels + pix0) * kb;
              if (KT > 0 && ls == 4 * KT)  // the usual full tile of 4: an inlined fixed-size copy
                row_in ? void(std::memcpy(d, src, sizeof(uint64_t) * 4 * KT))
                       : void(std::memset(d, 0, sizeof(uint64_t) * 4 * KT));
              else
                row_in ? void(std::memcpy(d, src, sizeof(uint64_t) * ls))
                       : void(std::memset(d, 0, sizeof(uint64_t) * ls));
            }
          if (row_in)
            for (int pp = 0; pp < n; ++pp) r.count[size_t(t0 + pp)] += act_count[pix0 + pp];
        }
      }
      continue;
    }
    for (int pp = 0; pp < n; ++pp) {
      const int ox = t0 + pp;
      uint64_t* base = tbase + int64_t(pp) * kb;
      int32_t count = 0;
      for (int ky = 0; ky < s.kh; ++ky) {
        const int iy = oy * s.stride - s.pad + ky * s.dilation;
        for (int kx = 0; kx < s.kw; ++kx) {
          const int ix = ox * s.stride - s.pad + kx * s.dilation;
          const int t = ky * s.kw + kx;
          const bool inside = iy >= 0 && iy < s.in_h && ix >= 0 && ix < s.in_w;
          const int64_t pix = inside ? int64_t(iy) * s.in_w + ix : 0;
          for (int h = 0; h < halves; ++h)
            for (int i = 0; i < cw; ++i) {
              const int hi = h * cw + i;
              uint64_t* d = base + (h * used + t * cw + i) * ls;
              if (inside)  // fixed-size copies when KT > 0
                std::memcpy(d, in_split + (hi * pixels + pix) * kb, sizeof(uint64_t) * kb);
              else
                std::memset(d, 0, sizeof(uint64_t) * kb);
            }
          if (inside) count += act_count[pix];
        }
      }
      r.count[size_t(ox)] = count;
    }
  }
}

void im2col_row_tiled_any(const BitConvShape& s, const uint64_t* in_split, const int32_t* act_count,
                          int oy, int tile, int halves, RowScratch& r) {
  switch (s.a_bits) {
    case 1:
      return im2col_row_tiled<1>(s, in_split, act_count, oy, tile, halves, r);
    case 2:
      return im2col_row_tiled<2>(s, in_split, act_count, oy, tile, halves, r);
    case 4:
      return im2col_row_tiled<4>(s, in_split, act_count, oy, tile, halves, r);
    default:
      return im2col_row_tiled<0>(s, in_split, act_count, oy, tile, halves, r);
  }
}

// The per-pixel correction of a finished row, then row_fn (see for_each_row).
template <class RowFn>
void finish_row(int oy, int32_t wmax, int oc, bool raw_p, RowScratch& r, RowFn&& row_fn) {
  const int ow = int(r.count.size());
  for (int ox = 0; ox < ow; ++ox) {
    int32_t* a = r.acc.data() + int64_t(ox) * oc;
    const int32_t corr = wmax * r.count[size_t(ox)];
    if (raw_p)
      r.count[size_t(ox)] = corr;
    else
      for (int o = 0; o < oc; ++o) a[o] = 2 * a[o] - corr;  // I = 2P - (2^M-1) S
  }
  row_fn(oy, r.acc.data(), r.count.data());
}

// The weights as variant v reads them (w: packed [OC][M][row_words]): nibble-split or unpadded
// rows (variant_row_words), then v's own re-layout.
std::vector<uint64_t> prepare_weights(const BitConvShape& s, const uint64_t* w,
                                      const BgemmVariant& v) {
  const int lp = s.row_words(), oc = s.out_c, lpe = variant_row_words(s, v);
  const int halves = v.split_nibbles ? 2 : 1;
  std::vector<uint64_t> out(w, w + int64_t(oc) * s.w_bits * lp);
  if (v.split_nibbles || lpe != lp) {
    out.assign(size_t(oc) * s.w_bits * lpe, 0);
    const int used = s.taps() * bit_words(s.in_c), wb = s.w_bits;
#pragma omp parallel for schedule(static) if (int64_t(oc) * lp > 65536)
    for (int o = 0; o < oc; ++o)
      split_rows(w + int64_t(o) * wb * lp, wb, lp, used, lpe, out.data() + int64_t(o) * wb * lpe,
                 halves);
  }
  if (v.prep_weights) {
    std::vector<uint64_t> prepped;
    v.prep_weights(out.data(), oc, s.w_bits, s.a_bits, lpe, &prepped);
    out.swap(prepped);
  }
  return out;
}

// d[j] = src[j * stride] for j < n. A fixed stride (2, 4, 8) lets the compiler unroll and
// pair the loads: the runtime-stride loop took half of a 64x64x128 layer's driver time.
template <int S>
void gather_stride_fixed(const uint64_t* src, int64_t n, uint64_t* d) {
  for (int64_t j = 0; j < n; ++j) d[j] = src[j * S];
}
void gather_stride(const uint64_t* src, int64_t n, int stride, uint64_t* d) {
  switch (stride) {
    case 2:
      return gather_stride_fixed<2>(src, n, d);
    case 4:
      return gather_stride_fixed<4>(src, n, d);
    case 8:
      return gather_stride_fixed<8>(src, n, d);
    default:
      for (int64_t j = 0; j < n; ++j) d[j] = src[j * stride];
  }
}

// Output rows [begin, end) of thread t of a team of T: the contiguous split `omp for
// schedule(static)` makes, so the per-layer work a thread does (RowRunner::prepare) is for the
// rows it then computes, and the next layer's thread t finds its rows in its own cache.
struct RowBand {
  int begin, end;
};
RowBand row_band(int n, int t, int T) {
  const int q = n / T, r = n % T;
  const int begin = t * q + std::min(t, r);
  return {begin, begin + q + (t < r ? 1 : 0)};
}

// One bit conv's output rows, each computed on its own: the per-layer work (activation counts,
// the input re-laid-out as the variant reads it) in prepare(), shared out over a team's threads
// by rows, then row() for any row from any thread with its own RowScratch. So a consumer's
// epilogue can compute this conv's row right where it needs it (ResidualConv). w: prepared
// (prepare_weights).
// Direct variants (BgemmVariant::direct, implicit im2col): the input copied once into a
// zero-bordered re-layout [cw][Hp*Wp][K] (its activation counts likewise [Hp*Wp]), then per
// output row one kernel call that reads the patches in place through per-word offsets.
class RowRunner {
 public:
  RowRunner(const BitConvShape& s, const uint64_t* in, const uint64_t* w, const BgemmVariant& v)
      : s_(s),
        in_(in),
        w_(w),
        v_(v),
        lpe_(variant_row_words(s, v)),
        halves_(v.split_nibbles ? 2 : 1),
        // Unsplit with one word per plane, [cw][pix][K] is the input's own layout: no copy.
        split_(!v.direct && v.pixel_tile > 0 && (halves_ == 2 || bit_words(s.in_c) > 1)),
        // Without padding and with one word per plane the input is its own re-layout: no copy.
        as_is_(s.pad == 0 && bit_words(s.in_c) == 1),
        hp_(v.direct && !as_is_ ? s.in_h + 2 * s.pad : s.in_h),
        wp_(v.direct && !as_is_ ? s.in_w + 2 * s.pad : s.in_w),
        // [H*W], or the zero-bordered [Hp*Wp] of a direct variant's re-layout
        counts_(size_t(hp_) * wp_),
        relaid_(split_ ? size_t(s.in_h) * s.in_w * s.a_bits * halves_ * bit_words(s.in_c)
                : v.direct && !as_is_ ? size_t(bit_words(s.in_c)) * hp_ * wp_ * s.a_bits
                                      : 0) {
    if (!v.direct) return;
    const int cw = bit_words(s.in_c), kb = s.a_bits;
    const int64_t plane = int64_t(hp_) * wp_;  // (padded) pixels
    base_ = as_is_ ? in_ : relaid_.data();
    loff_.resize(size_t(s.taps()) * cw);  // word offsets from a row's top-left, l = t*cw + i
    tap_off_.resize(size_t(s.taps()));    // pixel offsets, for the counts
    for (int ky = 0; ky < s.kh; ++ky)
      for (int kx = 0; kx < s.kw; ++kx) {
        const int t = ky * s.kw + kx;
        tap_off_[size_t(t)] = int64_t(ky) * s.dilation * wp_ + int64_t(kx) * s.dilation;
        for (int i = 0; i < cw; ++i)
          loff_[size_t(t * cw + i)] = (i * plane + tap_off_[size_t(t)]) * kb;
      }
  }

  const BitConvShape& shape() const { return s_; }
  int32_t wmax() const { return (1 << s_.w_bits) - 1; }

  // Thread t of T's share of the per-layer work: the input rows (padded rows for a re-layout)
  // from its first output row's to the next thread's. Every share must be done (a barrier)
  // before any row(): a row reads its neighbours' input rows too.
  void prepare(int t, int T) {
    const int oh = s_.out_h();
    const auto first = [&](int u) {  // u's first (padded) input row
      return u == 0 ? 0 : u == T ? hp_ : std::clamp(row_band(oh, u, T).begin * s_.stride, 0, hp_);
    };
    const int y0 = first(t), y1 = first(t + 1);
    if (!v_.direct || as_is_) {  // rows of the input itself
      activation_counts(s_, in_, int64_t(y0) * s_.in_w, int64_t(y1) * s_.in_w, counts_.data());
      if (split_)
        split_input(s_, in_, halves_, int64_t(y0) * s_.in_w, int64_t(y1) * s_.in_w, relaid_.data());
      return;
    }
    const int cw = bit_words(s_.in_c), kb = s_.a_bits, pad = s_.pad;
    const int64_t plane = int64_t(hp_) * wp_;
    uint64_t* padded = relaid_.data();
    for (int y = y0; y < y1; ++y) {  // (every word is written, borders included)
      const int iy = y - pad;
      const int64_t q0 = int64_t(y) * wp_;
      int32_t* crow = counts_.data() + q0;
      if (iy < 0 || iy >= s_.in_h) {  // a border row
        for (int i = 0; i < cw; ++i)
          std::memset(padded + (i * plane + q0) * kb, 0, sizeof(uint64_t) * wp_ * kb);
        std::memset(crow, 0, sizeof(int32_t) * wp_);
        continue;
      }
      const int64_t pix0 = int64_t(iy) * s_.in_w;
      // the row's counts straight into the bordered map (counts index from the row's pixel 0)
      std::memset(crow, 0, sizeof(int32_t) * pad);
      activation_counts(s_, in_ + pix0 * kb * cw, 0, s_.in_w, crow + pad);
      std::memset(crow + pad + s_.in_w, 0, sizeof(int32_t) * pad);
      for (int i = 0; i < cw; ++i) {
        uint64_t* d = padded + (i * plane + q0) * kb;
        std::memset(d, 0, sizeof(uint64_t) * pad * kb);
        std::memset(d + int64_t(pad + s_.in_w) * kb, 0, sizeof(uint64_t) * pad * kb);
        d += int64_t(pad) * kb;
        if (cw == 1) {  // [pix][K] rows are contiguous already
          std::memcpy(d, in_ + pix0 * kb, sizeof(uint64_t) * s_.in_w * kb);
          continue;
        }
        // word i of each of the row's (pixel, plane) pairs: a stride-cw gather
        gather_stride(in_ + pix0 * kb * cw + i, int64_t(s_.in_w) * kb, cw, d);
      }
    }
  }

  void init(RowScratch& r) const {
    const int ow = s_.out_w();
    if (!v_.direct) {
      r.patch.resize(size_t(ow) * s_.a_bits * lpe_);
      r.unsplit.resize(size_t(s_.a_bits) * s_.row_words());
    }
    r.count.resize(size_t(ow));
    r.corr.resize(size_t(ow));
    r.acc.resize(size_t(ow) * s_.out_c);
  }

  // Output row oy (r from init): raw P into r.acc [OW][OC] and the patch counts S into r.count;
  // false. With fuse (direct variants only) the kernel may finish the row itself: then true.
  bool row(int oy, RowScratch& r, const ThresholdEpilogue* fuse) const {
    const int ow = s_.out_w(), oc = s_.out_c, kb = s_.a_bits;
    if (!v_.direct) {
      if (v_.pixel_tile > 0)
        im2col_row_tiled_any(s_, split_ ? relaid_.data() : in_, counts_.data(), oy, v_.pixel_tile,
                             halves_, r);
      else
        im2col_row(s_, in_, counts_.data(), oy, v_.split_nibbles, lpe_, r);
      v_.fn(r.patch.data(), ow, w_, oc, kb, s_.w_bits, lpe_, r.acc.data(), oc);
      return false;
    }
    const int64_t row0 = int64_t(oy) * s_.stride * wp_;  // padded pixel of the row's top-left
    // patch counts tap by tap: a contiguous (vectorised) add per tap at stride 1 (a scalar sum
    // per pixel took a tenth of a 64-channel W1A1 layer's time)
    int32_t* count = r.count.data();
    std::fill(count, count + ow, 0);
    for (int t = 0; t < s_.taps(); ++t) {
      const int32_t* c = counts_.data() + row0 + tap_off_[size_t(t)];
      if (s_.stride == 1)
        for (int ox = 0; ox < ow; ++ox) count[ox] += c[ox];
      else
        for (int ox = 0; ox < ow; ++ox) count[ox] += c[int64_t(ox) * s_.stride];
    }
    const int lp = int(loff_.size());
    if (!fuse) {
      v_.direct(base_ + row0 * kb, loff_.data(), ow, s_.stride, w_, oc, kb, s_.w_bits, lp,
                r.acc.data(), oc, nullptr);
      return false;
    }
    for (int ox = 0; ox < ow; ++ox) r.corr[size_t(ox)] = wmax() * count[ox];
    ThresholdEpilogue te = *fuse;
    te.corr = r.corr.data();
    te.out = fuse->out + int64_t(oy) * ow * fuse->bits * bit_words(oc);
    if (fuse->res) te.res = fuse->res + int64_t(oy) * ow * fuse->res_bits * bit_words(oc);
    return v_.direct(base_ + row0 * kb, loff_.data(), ow, s_.stride, w_, oc, kb, s_.w_bits, lp,
                     r.acc.data(), oc, &te);
  }

 private:
  BitConvShape s_;
  const uint64_t* in_;
  const uint64_t* w_;
  const BgemmVariant& v_;
  int lpe_, halves_;
  bool split_;   // pixel-tiled variants: the input re-laid-out (split_input) in relaid_
  bool as_is_;   // direct variants: the input is its own re-layout
  int hp_, wp_;  // the rows and columns counts_ (and a direct re-layout) cover
  ReusedBuffer<int32_t> counts_;
  ReusedBuffer<uint64_t> relaid_;
  const uint64_t* base_ = nullptr;  // direct variants: the re-layout (or the input as is)
  std::vector<int64_t> loff_, tap_off_;
};

// row_fn(oy, acc, count) for every output row, in parallel: acc holds I = 2P - (2^M-1)S, or raw
// P when raw_p (count then holds the per-pixel correction (2^M-1)S for the caller to apply).
// fuse: the threshold epilogue (thr, neg, ldt, bits and out at the output's start) a direct
// kernel may fuse; rows it finishes itself skip row_fn. also: a second runner whose rows row_fn
// computes (ResidualConv), of the same output rows, prepared alongside.
// One parallel region per conv: each thread prepares the input rows of its own output rows, a
// barrier, then computes them. (With the counts and the re-layout in regions of their own, that
// work took ~15 us per layer at 2 threads, no less than at 1, 5 % of the W1A2 bit layers, and
// the small layers' counts ran on one thread.)
template <class RowFn>
void for_each_row(RowRunner& runner, RowRunner* also, bool raw_p, const ThresholdEpilogue* fuse,
                  RowFn&& row_fn) {
  const BitConvShape& s = runner.shape();
#pragma omp parallel
  {
    const int t = omp_get_thread_num(), team = omp_get_num_threads();
    runner.prepare(t, team);
    if (also) also->prepare(t, team);
#pragma omp barrier
    RowScratch r;
    runner.init(r);
    const RowBand band = row_band(s.out_h(), t, team);
    for (int oy = band.begin; oy < band.end; ++oy) {
      if (runner.row(oy, r, fuse)) continue;
      finish_row(oy, runner.wmax(), s.out_c, raw_p, r, row_fn);
    }
  }
}

}  // namespace

PreparedBitWeights prepare_bitconv_weights(const BitConvShape& s, const uint64_t* w,
                                           const BgemmVariant& v) {
  PreparedBitWeights p;
  p.variant = &v;
  p.shape = s;
  p.w = prepare_weights(s, w, v);
  return p;
}

bool PreparedBitWeights::fits(const BitConvShape& s) const {
  return variant && shape.in_c == s.in_c && shape.out_c == s.out_c && shape.kh == s.kh &&
         shape.kw == s.kw && shape.w_bits == s.w_bits && shape.a_bits == s.a_bits;
}

void bitconv_int32(const BitConvShape& s, const uint64_t* in, const uint64_t* w, int32_t* out,
                   const BgemmVariant& v) {
  bitconv_int32(s, in, prepare_bitconv_weights(s, w, v), out);
}

void bitconv_int32(const BitConvShape& s, const uint64_t* in, const PreparedBitWeights& pw,
                   int32_t* out) {
  const int ow = s.out_w(), oc = s.out_c;
  RowRunner runner(s, in, pw.w.data(), *pw.variant);
  for_each_row(runner, nullptr, false, nullptr, [&](int oy, const int32_t* acc, const int32_t*) {
    std::memcpy(out + int64_t(oy) * ow * oc, acc, sizeof(int32_t) * size_t(ow) * oc);
  });
}

void bitconv_forward(const BitConvShape& s, const uint64_t* in, const uint64_t* w,
                     const BitConvEpilogue& e, const BgemmVariant& v) {
  bitconv_forward(s, in, prepare_bitconv_weights(s, w, v), e);
}

RequantThresholds make_requant_thresholds(const BitConvShape& s, const BitConvEpilogue& e) {
  RequantThresholds t;
  const int res_bits = e.residual_packed ? e.residual_bits : 0;
  if (e.out_f32 || !e.out_packed || e.residual || e.residual_conv || res_bits > 2) return t;
  const int64_t bound = int64_t((1 << s.w_bits) - 1) * ((1 << s.a_bits) - 1) * s.taps() * s.in_c;
  t.bits = e.out_bits;
  t.res_bits = res_bits;
  t.valid = requant_thresholds(e.mul, e.add, s.out_c, e.out_bits, bound, res_bits, &t.thr, &t.neg,
                               &t.ldt);
  return t;
}

void bitconv_forward(const BitConvShape& s, const uint64_t* in, const PreparedBitWeights& pw,
                     const BitConvEpilogue& e) {
  const BgemmVariant& v = *pw.variant;
  const uint64_t* w = pw.w.data();
  const int ow = s.out_w(), oc = s.out_c, cwo = bit_words(oc);
  const bool packed = e.out_f32 == nullptr;
  // Packed output: the float epilogue as integer thresholds on I (exact, see requant_thresholds)
  // when the variant has a threshold epilogue: without a residual, or with a packed 1- or 2-bit
  // one (a threshold set per residual code; only kernels that fuse the epilogue take those, the
  // float epilogue finishes other rows). A float residual keeps the float epilogue.
  // given thresholds must be of this epilogue's kind (else computed here, as without them)
  const bool given = e.thresholds && e.thresholds->bits == e.out_bits &&
                     e.thresholds->res_bits == (e.residual_packed ? e.residual_bits : 0);
  RequantThresholds own;
  if (v.threshold_pack && !given) own = make_requant_thresholds(s, e);
  const RequantThresholds& rt = given ? *e.thresholds : own;
  const bool by_threshold =
      packed && v.threshold_pack && rt.valid && !e.residual && !e.residual_conv;
  const std::vector<int32_t>& thr = rt.thr;
  const std::vector<int32_t>& neg = rt.neg;
  const int ldt = rt.ldt;
  ThresholdEpilogue fuse;
  if (by_threshold) {
    fuse.thr = thr.data();
    fuse.neg = neg.data();
    fuse.ldt = ldt;
    fuse.bits = e.out_bits;
    fuse.out = e.out_packed;
    fuse.res = e.residual_packed;
    fuse.res_bits = rt.res_bits;
  }
  // The residual conv's rows, computed here row by row (ResidualConv).
  std::unique_ptr<RowRunner> res_conv;
  const DequantFn res_dequant = e.residual_conv && e.residual_conv->weights->variant->dequant
                                    ? e.residual_conv->weights->variant->dequant
                                    : dequant_f32__ref;
  if (const ResidualConv* rc = e.residual_conv) {
    const BitConvShape& d = rc->shape;
    BFCN_CHECK(d.kh == 1 && d.kw == 1 && d.pad == 0 && d.out_h() == s.out_h() && d.out_w() == ow &&
                   d.out_c == oc && rc->weights->fits(d),
               "bit conv: the residual conv must be 1x1, pad 0, of the output's size and channels");
    BFCN_CHECK(!e.residual && !e.residual_packed, "bit conv: two residuals");
    res_conv = std::make_unique<RowRunner>(d, rc->in, rc->weights->w.data(), *rc->weights->variant);
  }
  // raw P: both epilogues apply the correction themselves (no pass over acc)
  RowRunner runner(s, in, w, v);
  for_each_row(
      runner, res_conv.get(), true, by_threshold ? &fuse : nullptr,
      [&](int oy, const int32_t* acc, const int32_t* corr) {
        const int64_t row = int64_t(oy) * ow;
        if (by_threshold && !e.residual_packed) {
          v.threshold_pack(acc, ow, oc, corr, thr.data(), neg.data(), ldt, e.out_bits,
                           e.out_packed + row * e.out_bits * cwo);
          return;
        }
        thread_local std::vector<float> res_row;  // this row of a packed residual, dequantized
        const float* residual =
            e.residual ? e.residual + row * oc : nullptr;  // [OW][OC] of this row
        if (e.residual_packed) {
          res_row.resize(size_t(ow) * oc);
          static const UnpackDequantFn unpack =
              best_variant(act_pack_variants()).unpack_dequant_row;
          unpack(e.residual_packed + row * e.residual_bits * cwo, ow, oc, e.residual_bits,
                 res_row.data());
          residual = res_row.data();
        }
        if (res_conv) {  // the residual conv's row oy, as its own float epilogue gives it
          thread_local RowScratch rs;
          res_conv->init(rs);
          res_conv->row(oy, rs, nullptr);
          const ResidualConv& rc = *e.residual_conv;
          if (packed && v.requant_res_conv) {  // its dot straight into the packed epilogue
            for (int ox = 0; ox < ow; ++ox)
              v.requant_res_conv(acc + int64_t(ox) * oc, oc, corr[ox], e.mul, e.add,
                                 rs.acc.data() + int64_t(ox) * oc,
                                 res_conv->wmax() * rs.count[size_t(ox)], rc.mul, rc.add,
                                 e.out_bits, e.out_packed + (row + ox) * e.out_bits * cwo);
            return;
          }
          res_row.resize(size_t(ow) * oc);
          for (int ox = 0; ox < ow; ++ox)
            res_dequant(rs.acc.data() + int64_t(ox) * oc, oc,
                        res_conv->wmax() * rs.count[size_t(ox)], rc.mul, rc.add, nullptr, false,
                        res_row.data() + int64_t(ox) * oc);
          residual = res_row.data();
        }
        const DequantFn dequant = v.dequant ? v.dequant : dequant_f32__ref;
        for (int ox = 0; ox < ow; ++ox) {
          const int32_t* a = acc + int64_t(ox) * oc;
          const float* res = residual ? residual + int64_t(ox) * oc : nullptr;
          if (packed)
            v.requant(a, oc, corr[ox], e.mul, e.add, res, e.out_bits,
                      e.out_packed + (row + ox) * e.out_bits * cwo);
          else
            dequant(a, oc, corr[ox], e.mul, e.add, res, e.relu, e.out_f32 + (row + ox) * oc);
        }
      });
}

}  // namespace bfcn
