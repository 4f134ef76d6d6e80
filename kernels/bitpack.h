// Bit packing for the bit-serial runtime (raw pointers, no Tensor, no exceptions).
// Activations are NHWC with channels packed per bit plane: pixel p holds `bits` planes of
// cw = ceil(C/64) uint64 words; channel c is bit (c % 64) of word c / 64; unused tail bits are 0.
// Weights are packed per output channel as `bits` planes of a zero-padded row of
// bitconv_row_words() words laid out tap-major ([tap][cw]), the same layout as an im2col patch.
// Weight levels: p in {0..2^M-1} stands for w = (2p - (2^M-1)) / (2^M-1); for M = 1 a SET bit is
// +1.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu_features.h"

namespace bfcn {

// Words per bit plane for C channels.
inline int bit_words(int c) { return (c + 63) / 64; }
// Words per bit plane of one im2col row / one weight row: taps*cw rounded up to 4 (one 256-bit
// chunk).
inline int bitconv_row_words(int taps, int c) { return (taps * bit_words(c) + 3) / 4 * 4; }

// One pixel: q [c] levels -> out [bits][cw], 8 channels per step (multiply gathers one bit of
// each of 8 bytes into a byte). bits <= 8.
void pack_pixel_q(const uint8_t* q, int c, int bits, uint64_t* out);
// nearbyint(clip(v, 0, 1) * levels) for levels < 2^22, NaN -> 0, without a libm call.
inline uint8_t quantize_level(float v, float levels) {
  const float t = (v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f) * levels;
  return uint8_t((t + 12582912.0f) - 12582912.0f);  // 1.5*2^23: round to nearest even
}

// q [pixels][c] with values < 2^bits  ->  out [pixels][bits][cw]
void pack_act_q(const uint8_t* q, int64_t pixels, int c, int bits, uint64_t* out);
// Inverse of pack_act_q.
void unpack_act_q(const uint64_t* packed, int64_t pixels, int c, int bits, uint8_t* q);
// Fused quantize + pack of float NHWC x [pixels][c]: v = x*mul[c] + add[c] (mul/add may be null for
// 1/0), q = nearbyint(clip(v, 0, 1) * (2^bits - 1)), written packed like pack_act_q.
void quantize_pack_act(const float* x, int64_t pixels, int c, int bits, const float* mul,
                       const float* add, uint64_t* out);
// The scalar, AVX2 and AVX-512 bodies quantize_pack_act dispatches to (bitpack_variants());
// bit-identical (the same float operations, no FMA).
void quantize_pack_act__ref(const float* x, int64_t pixels, int c, int bits, const float* mul,
                            const float* add, uint64_t* out);
void quantize_pack_act__avx2(const float* x, int64_t pixels, int c, int bits, const float* mul,
                             const float* add, uint64_t* out);
void quantize_pack_act__avx512(const float* x, int64_t pixels, int c, int bits, const float* mul,
                               const float* add, uint64_t* out);

// The variants of quantize_pack_act, one per ISA level (ref first; kernels/variant.h): dispatch
// runs the best one active_isa() allows, tests compare each with the ref one bit for bit.
using QuantizePackActFn = void (*)(const float* x, int64_t pixels, int c, int bits,
                                   const float* mul, const float* add, uint64_t* out);
struct BitpackVariant {
  Isa isa;
  const char* name;  // "quantize_pack_act__avx2"
  QuantizePackActFn quantize_pack_act;
};
std::span<const BitpackVariant> bitpack_variants();

// p [oc][taps][c] with values < 2^bits  ->  out [oc][bits][bitconv_row_words(taps, c)]
void pack_weights_q(const uint8_t* p, int oc, int taps, int c, int bits, uint64_t* out);

}  // namespace bfcn
