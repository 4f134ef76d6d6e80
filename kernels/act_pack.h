// Activation-code helpers for the runtime around the bit convolutions (raw pointers, OpenMP over
// output rows / pixels): max pooling on k-bit codes fused with bit-packing (pooling commutes with
// any monotone non-decreasing quantizer, so pool-after-quantize is exact and moves 4x fewer
// bytes than float pooling), and a parallel unpack + dequantize for the float views of packed
// tensors, and an argmax over channel planes for label maps. Packed layout as kernels/bitpack.h.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu_features.h"

namespace bfcn {

// One pooled row: rows[0..nrows) are the window's code rows inside the map ([w][c] each, codes
// < 2^bits); out [ow][bits][cw(c)] = the packed max over those rows and columns ox*s - p + kx
// (kx < k) inside [0, w). Single-threaded; the bodies (act_pack_variants()) are bit-identical.
using MaxpoolPackRowFn = void (*)(const uint8_t* const* rows, int nrows, int w, int c, int k, int s,
                                  int p, int bits, uint64_t* out, int ow);
void maxpool_pack_row_q__ref(const uint8_t* const* rows, int nrows, int w, int c, int k, int s,
                             int p, int bits, uint64_t* out, int ow);
void maxpool_pack_row_q__avx512(const uint8_t* const* rows, int nrows, int w, int c, int k, int s,
                                int p, int bits, uint64_t* out, int ow);
// The row body maxpool_pack_q runs for these bits (the best variant allowed).
MaxpoolPackRowFn maxpool_pack_row_active(int bits);

// q [h][w][c] codes < 2^bits -> max pool (kernel k, stride s, pad p; padded taps are ignored,
// 2p <= k so every window has a tap) -> out packed [oh][ow][bits][cw(c)]. OpenMP over output rows,
// each by row_fn (default maxpool_pack_row_active(bits); tests pass each variant's).
void maxpool_pack_q(const uint8_t* q, int h, int w, int c, int k, int s, int p, int bits,
                    uint64_t* out, int oh, int ow, MaxpoolPackRowFn row_fn = nullptr);

// packed [pixels][bits][cw(c)] -> out [pixels][c] = q / (2^bits - 1) (the training quantizer's
// level values). OpenMP over chunks of pixels, each by the best variant's unpack_dequant_row.
void unpack_dequant_act(const uint64_t* packed, int64_t pixels, int c, int bits, float* out);
// The bodies, single-threaded (also one output row inside a conv); bit-identical.
void unpack_dequant_act__ref(const uint64_t* packed, int64_t pixels, int c, int bits, float* out);
void unpack_dequant_act__avx2(const uint64_t* packed, int64_t pixels, int c, int bits, float* out);
void unpack_dequant_act__avx512(const uint64_t* packed, int64_t pixels, int c, int bits,
                                float* out);

// Per position i < n: the first channel with the largest x[ch*stride + i] (c <= 256), i.e.
// std::max_element over channels (a NaN never replaces the running best) -> out[i].
void argmax_planar(const float* x, int c, int n, int64_t stride, uint8_t* out);
void argmax_planar__ref(const float* x, int c, int n, int64_t stride, uint8_t* out);
void argmax_planar__avx2(const float* x, int c, int n, int64_t stride, uint8_t* out);

// The variants of this family, one per ISA level (ref first; kernels/variant.h): the functions
// above dispatch to the best one active_isa() allows, tests compare each with the ref one exactly.
using UnpackDequantFn = void (*)(const uint64_t* packed, int64_t pixels, int c, int bits,
                                 float* out);
using ArgmaxPlanarFn = void (*)(const float* x, int c, int n, int64_t stride, uint8_t* out);
struct ActPackVariant {
  Isa isa;
  const char* name;  // "act_pack__avx512"
  MaxpoolPackRowFn maxpool_pack_row;
  int maxpool_max_bits;  // constraint: maxpool_pack_row takes bits <= this (else a lower variant's)
  // Unpack + dequantize of one conv output row (the bit conv's packed residual): single-threaded.
  UnpackDequantFn unpack_dequant_row;
  ArgmaxPlanarFn argmax_planar;
};
std::span<const ActPackVariant> act_pack_variants();

}  // namespace bfcn
