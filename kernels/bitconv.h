// Bit-serial convolution (Wm x Ak) over packed NHWC activations (see bitpack.h), raw pointers,
// no exceptions. Per output row: im2col of packed words into a zero-padded patch buffer, a
// popcount GEMM  P = sum_{m,k} 2^(m+k) popcnt(w_m AND a_k)  (the ISA variant), then the exact
// integer dot  I = 2P - (2^M-1) * sum_k 2^k popcnt(a_k)  (paper.md §4) and a fused per-channel
// epilogue that writes float or re-quantized packed activations for the next bit layer.
// Padded pixels are zero bits, so zero padding is exact. OpenMP over output rows.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu_features.h"

namespace bfcn {

struct BitConvShape {
  int in_h = 0, in_w = 0, in_c = 0, out_c = 0;
  int kh = 3, kw = 3, stride = 1, pad = 1, dilation = 1;
  int a_bits = 2, w_bits = 1;
  int out_h() const { return (in_h + 2 * pad - dilation * (kh - 1) - 1) / stride + 1; }
  int out_w() const { return (in_w + 2 * pad - dilation * (kw - 1) - 1) / stride + 1; }
  int taps() const { return kh * kw; }
  int row_words() const;  // bitconv_row_words(taps, in_c)
  int64_t macs() const { return int64_t(out_h()) * out_w() * out_c * in_c * taps(); }
};

// The popcount GEMM every variant implements:
//   out[p*ldo + o] = sum_{m<M, k<K} 2^(m+k) * popcnt(w[o][m][:] AND a[p][k][:])
// a [npix][K][lp], w [noc][M][lp], lp a multiple of 4 (any lp for variants with prep_weights, whose
// w is the prepared layout). Exact in int32 for lp*64*(2^M-1)(2^K-1) < 2^31.
using BgemmFn = void (*)(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits,
                         int m_bits, int lp, int32_t* out, int ldo);

// The packed epilogue of one output pixel: I = 2*p[o] - corr, v = I*mul[o] + add[o] (+ res[o]
// when res is set), q = nearbyint(clip(v,0,1)*(2^bits-1)) packed into out [bits][cw(n)].
using RequantFn = void (*)(const int32_t* p, int n, int32_t corr, const float* mul,
                           const float* add, const float* res, int bits, uint64_t* out);

// The float epilogue of one output pixel: I = 2*p[o] - corr, v = I*mul[o] + add[o] (two roundings,
// no FMA), then + res[o] when res is set, then with relu the training engine's ReLU v > 0 ? v : 0
// (so NaN and -0 become +0: one MAXPS/VMAXPS with 0 as its second operand).
using DequantFn = void (*)(const int32_t* p, int n, int32_t corr, const float* mul,
                           const float* add, const float* res, bool relu, float* out);

// The packed epilogue of one output pixel whose residual is another conv's dot Ir (ResidualConv):
// value = (I*mul[o] + add[o]) + (Ir*rmul[o] + radd[o]) with Ir = 2*rp[o] - rcorr, every product
// and sum rounded as requant_pack__ref with res = dequant_f32__ref's value of Ir (no ReLU).
using RequantResConvFn = void (*)(const int32_t* p, int n, int32_t corr, const float* mul,
                                  const float* add, const int32_t* rp, int32_t rcorr,
                                  const float* rmul, const float* radd, int bits, uint64_t* out);

// The popcount GEMM of one output row read straight from the zero-padded input (implicit im2col, no
// patch copy): pixel p's word l of plane k is a[loff[l] + p*stride*K + k], a the row's top-left in
// the padded re-layout [cw][Hp*Wp][K] and loff[l] (l = tap*cw + i) that tap's and word's offset.
// w is the prepared layout (prep_weights). Same out as BgemmFn.
// With te set, a kernel may instead finish the row itself: the threshold epilogue (below) fused
// into its register tiles, the packed row written to te->out; it then returns true (false: out
// holds P and the caller finishes the row).
struct ThresholdEpilogue {
  const int32_t* corr = nullptr;  // [npix] (2^M-1) * activation count of each pixel's patch
  const int32_t* thr = nullptr;   // [levels][ldt] (requant_thresholds)
  const int32_t* neg = nullptr;   // [ldt]
  int ldt = 0, bits = 0;
  uint64_t* out = nullptr;  // the row's packed output [npix][bits][cw(noc)]
  // A packed residual of res_bits (1 or 2) per code, this row's [npix][res_bits][cw(noc)]; thr
  // then holds one set of thresholds per residual code (requant_thresholds).
  const uint64_t* res = nullptr;
  int res_bits = 0;
};
using BgemmDirectFn = bool (*)(const uint64_t* a, const int64_t* loff, int npix, int stride,
                               const uint64_t* w, int noc, int k_bits, int m_bits, int lp,
                               int32_t* out, int ldo, const ThresholdEpilogue* te);

// The packed epilogue of n output pixels by integer thresholds (exactly requant_pack__ref's result
// when there is no residual): with I = 2*p[o] - corr[px] and X = I (or -I where neg[o]), the level
// is the number of j with X >= thr[j*ldt + o], packed into out [n][bits][cw(oc)].
using ThresholdPackFn = void (*)(const int32_t* p, int n, int oc, const int32_t* corr,
                                 const int32_t* thr, const int32_t* neg, int ldt, int bits,
                                 uint64_t* out);

struct BgemmVariant {
  Isa isa;
  const char* name;  // "bgemm__avx2"
  BgemmFn fn;
  RequantFn requant;
  // The driver hands fn nibble-split rows: [x & 0x0f0f.. of the taps*cw data words][(x >> 4) &
  // 0x0f0f.. of them][zero pad to a multiple of 4], for patches and weights alike (popcounts are
  // unchanged; a LUT popcount then needs one vpshufb).
  bool split_nibbles = false;
  // Optional one-time re-layout of the weight rows [noc][M][lp] for fn (weights are constant per
  // layer, so e.g. output channels can be interleaved into vector lanes). When set, split rows are
  // not padded to a multiple of 4 words (fn reads word by word).
  void (*prep_weights)(const uint64_t* w, int noc, int m_bits, int k_bits, int lp,
                       std::vector<uint64_t>* out) = nullptr;
  // When > 0 (needs prep_weights), the driver builds fn's patch rows interleaved in tiles of
  // pixel_tile pixels: pixels [t*P, t*P + n) (n = min(P, npix - t*P)) start at word t*P*K*lp, laid
  // out [lp][n][K], so a kernel walks one pointer (the planar layout needs P*K live pointers).
  // Rows are then unpadded: lp = taps*cw words (2*taps*cw nibble-split).
  int pixel_tile = 0;
  // Optional implicit-im2col form of fn (needs prep_weights, whose layout it reads); the driver
  // uses it for every shape it is set for.
  BgemmDirectFn direct = nullptr;
  // Optional threshold epilogue for packed outputs without a residual (the float one stays for
  // residual layers).
  ThresholdPackFn threshold_pack = nullptr;
  // Optional vector float epilogue (dequant_f32__ref when not set).
  DequantFn dequant = nullptr;
  // Optional packed epilogue with a residual conv's dot (without it the driver dequantizes the
  // residual conv's row to floats first, then runs requant).
  RequantResConvFn requant_res_conv = nullptr;
};

// Scalar ThresholdPackFn (the definition of the threshold epilogue).
void threshold_pack__ref(const int32_t* p, int n, int oc, const int32_t* corr, const int32_t* thr,
                         const int32_t* neg, int ldt, int bits, uint64_t* out);
void threshold_pack__avx512(const int32_t* p, int n, int oc, const int32_t* corr,
                            const int32_t* thr, const int32_t* neg, int ldt, int bits,
                            uint64_t* out);
// Integer thresholds equivalent to requant_pack__ref, for I in [-bound, bound]: level(I) =
// quantize_level(float(I)*mul + add [+ res]) is monotone in I (every float step is), so
// level >= j  <=>  X >= thr[(rq*levels + j-1)*ldt + o] with X = I, or -I where mul < 0 (neg[o] =
// -1, else 0). res_bits = 0: no residual (rq = 0 only); else one set per residual code rq <
// 2^res_bits of a packed residual (res = rq/(2^res_bits-1), as unpack_dequant_act). thr/neg get ldt
// = oc rounded up to 32 (padding: never reached). False when a mul or add is not finite (the float
// epilogue is then used).
bool requant_thresholds(const float* mul, const float* add, int oc, int bits, int64_t bound,
                        int res_bits, std::vector<int32_t>* thr, std::vector<int32_t>* neg,
                        int* ldt);

void requant_pack__ref(const int32_t*, int, int32_t, const float*, const float*, const float*, int,
                       uint64_t*);
void dequant_f32__ref(const int32_t*, int, int32_t, const float*, const float*, const float*, bool,
                      float*);
void dequant_f32__avx512(const int32_t*, int, int32_t, const float*, const float*, const float*,
                         bool, float*);
void requant_pack__avx2(const int32_t*, int, int32_t, const float*, const float*, const float*, int,
                        uint64_t*);
void dequant_f32__avx2(const int32_t*, int, int32_t, const float*, const float*, const float*, bool,
                       float*);
void requant_pack__avx512(const int32_t*, int, int32_t, const float*, const float*, const float*,
                          int, uint64_t*);
void requant_res_conv__avx2(const int32_t* p, int n, int32_t corr, const float* mul,
                            const float* add, const int32_t* rp, int32_t rcorr, const float* rmul,
                            const float* radd, int bits, uint64_t* out);
void requant_res_conv__avx512(const int32_t* p, int n, int32_t corr, const float* mul,
                              const float* add, const int32_t* rp, int32_t rcorr, const float* rmul,
                              const float* radd, int bits, uint64_t* out);

void bgemm__ref(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int);
void bgemm__avx2_popcnt(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int);
void bgemm__avx2(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int);
void bgemm__avx2_nib(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int);
void bgemm__avx2_ocv(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int);
constexpr int kOcvPixelTile = 4;  // bgemm__avx2_ocv's pixel_tile
void prep_weights__avx2_ocv(const uint64_t* w, int noc, int m_bits, int k_bits, int lp,
                            std::vector<uint64_t>* out);
void bgemm__avx512(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int);
void bgemm__avx512_ocv(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int);
bool bgemm_direct__avx512_ocv(const uint64_t* a, const int64_t* loff, int npix, int stride,
                              const uint64_t* w, int noc, int k_bits, int m_bits, int lp,
                              int32_t* out, int ldo, const ThresholdEpilogue* te);
constexpr int kOcv512PixelTile = 4;  // bgemm__avx512_ocv's pixel_tile
void prep_weights__avx512_ocv(const uint64_t* w, int noc, int m_bits, int k_bits, int lp,
                              std::vector<uint64_t>* out);

// The one list of variants (ref first) that drives dispatch, tests and benchmarks.
std::span<const BgemmVariant> bgemm_variants();
// The default variant for active_isa() (its last listed one; chosen once). Layers run
// bgemm_for_shape() instead.
const BgemmVariant& bgemm_active();
// The variant a layer of shape s runs: the fastest, timed once per shape (on one thread, whatever
// the caller's thread count: robust to load) on a slice of the layer's rows with random data, of
// every variant this CPU supports up to
// active_isa() (BFCN_ISA caps it; ref only when it is the active level). Dispatch by measured
// speed, not ISA rank: e.g. on AVX-512 CPUs the AVX2 ocv kernel beat the first AVX-512 kernel.
// Every variant is exact, so the choice changes speed only. Thread-safe; cached.
const BgemmVariant& bgemm_for_shape(const BitConvShape& s);

// The activation-count term of a layer: counts[p] = sum_k 2^k popcnt(in[p][k][:]) for pixels p in
// [p0, p1) of a packed input (kb planes of cw words). One variant per ISA level (ref first,
// kernels/variant.h); every variant is exact.
using ActCountFn = void (*)(const uint64_t* in, int64_t p0, int64_t p1, int kb, int cw,
                            int32_t* counts);
struct ActCountVariant {
  Isa isa;
  const char* name;
  ActCountFn count;
};
std::span<const ActCountVariant> act_count_variants();
// The word-by-word POPCNT loop (any layout), and the AVX-512 one (8 pixels per step for one word
// per plane, the POPCNT loop otherwise).
void count_pixels__popcnt(const uint64_t* in, int64_t p0, int64_t p1, int kb, int cw,
                          int32_t* counts);
void count_pixels__avx512(const uint64_t* in, int64_t p0, int64_t p1, int kb, int cw,
                          int32_t* counts);

struct PreparedBitWeights;

// A 1x1 pad-0 bit conv (a ResNet block's downsample) whose float output is another bit conv's
// residual and is read by nothing else: the consumer computes this conv's output row inside its
// own epilogue, so the map is never written to memory and read back. The values are those of
// bitconv_forward with out_f32 (I*mul[o] + add[o], no ReLU), bit for bit. Its output size and
// channel count are the consumer's.
struct ResidualConv {
  BitConvShape shape;
  const uint64_t* in = nullptr;  // packed [H*W][a_bits][cw(in_c)]
  const PreparedBitWeights* weights = nullptr;
  const float* mul = nullptr;  // [out_c]
  const float* add = nullptr;  // [out_c]
};

// Output of bitconv_forward: float NHWC [OH*OW][OC] (out_f32) or packed [OH*OW][out_bits][cw(OC)].
// value = I * mul[o] + add[o] (+ residual[p*OC+o] when residual is set);
// relu: the engine's v > 0 ? v : 0 (float mode only, row by row in the conv's parallel rows);
// packed mode quantizes
// nearbyint(clip(value,0,1)*(2^out_bits-1)).
struct BitConvEpilogue {
  const float* mul = nullptr;  // [OC], required
  const float* add = nullptr;  // [OC], required
  float* out_f32 = nullptr;
  const float* residual = nullptr;
  // Or the residual as packed activation codes [OH*OW][residual_bits][cw(OC)], added as
  // q/(2^bits-1) (bit-identical to unpack_dequant_act, kernels/act_pack.h) but unpacked one output
  // row at a time inside the conv, so no float copy of the tensor is written and re-read.
  const uint64_t* residual_packed = nullptr;
  int residual_bits = 0;
  // Or the residual computed row by row from another conv's input (see ResidualConv).
  const ResidualConv* residual_conv = nullptr;
  bool relu = false;
  uint64_t* out_packed = nullptr;
  int out_bits = 0;
  // Optional: the epilogue's integer thresholds computed once (make_requant_thresholds with the
  // same mul/add/bits/residual kind); without them a packed layer computes them per call.
  const struct RequantThresholds* thresholds = nullptr;
};

// The integer thresholds of a packed epilogue (requant_thresholds), for a layer to keep.
struct RequantThresholds {
  bool valid = false;  // false: the float epilogue (float output or residual, non-finite mul/add)
  int bits = 0, res_bits = 0, ldt = 0;
  std::vector<int32_t> thr, neg;
};
RequantThresholds make_requant_thresholds(const BitConvShape& s, const BitConvEpilogue& e);

// A layer's weights re-laid-out once for one variant (what bitconv_forward with raw weights does
// on every call): prepare at model load, run many times. Valid for shapes that differ from
// `shape` only in the input's height and width (fits()).
struct PreparedBitWeights {
  const BgemmVariant* variant = nullptr;
  BitConvShape shape;
  std::vector<uint64_t> w;
  bool fits(const BitConvShape& s) const;
};
PreparedBitWeights prepare_bitconv_weights(const BitConvShape& s, const uint64_t* w,
                                           const BgemmVariant& v);

// Integer dot products I [OH*OW][OC] only (tests and the epilogue-free timing).
void bitconv_int32(const BitConvShape& s, const uint64_t* in, const uint64_t* w, int32_t* out,
                   const BgemmVariant& v);
void bitconv_int32(const BitConvShape& s, const uint64_t* in, const PreparedBitWeights& pw,
                   int32_t* out);
// Full layer: in packed [H*W][K][cw], w packed [OC][M][row_words].
void bitconv_forward(const BitConvShape& s, const uint64_t* in, const uint64_t* w,
                     const BitConvEpilogue& e, const BgemmVariant& v);
// The same with prepared weights (pw.fits(s) is the caller's precondition).
void bitconv_forward(const BitConvShape& s, const uint64_t* in, const PreparedBitWeights& pw,
                     const BitConvEpilogue& e);

}  // namespace bfcn
