// Activation-code helpers for the runtime around the bit convolutions (raw pointers, OpenMP over
// output rows / pixels): max pooling on k-bit codes fused with bit-packing (pooling commutes with
// any monotone non-decreasing quantizer, so pool-after-quantize is exact and moves 4x fewer
// bytes than float pooling), and a parallel unpack + dequantize for the float views of packed
// tensors, and an argmax over channel planes for label maps. Packed layout as kernels/bitpack.h.
#pragma once

#include <cstdint>

namespace bfcn {

// q [h][w][c] codes < 2^bits -> max pool (kernel k, stride s, pad p; padded taps are ignored,
// 2p <= k so every window has a tap) -> out packed [oh][ow][bits][cw(c)].
void maxpool_pack_q(const uint8_t* q, int h, int w, int c, int k, int s, int p, int bits,
                    uint64_t* out, int oh, int ow);
// The AVX-512 body maxpool_pack_q runs when active_isa() is avx512 (bits <= 8).
void maxpool_pack_q__avx512(const uint8_t* q, int h, int w, int c, int k, int s, int p, int bits,
                            uint64_t* out, int oh, int ow);

// packed [pixels][bits][cw(c)] -> out [pixels][c] = q / (2^bits - 1) (the training quantizer's
// level values).
void unpack_dequant_act(const uint64_t* packed, int64_t pixels, int c, int bits, float* out);
// The same, single-threaded (one output row inside a conv), AVX-512; bit-identical.
void unpack_dequant_act__avx512(const uint64_t* packed, int64_t pixels, int c, int bits,
                                float* out);

// Per position i < n: the first channel with the largest x[ch*stride + i] (c <= 256), i.e.
// std::max_element over channels (a NaN never replaces the running best) -> out[i].
void argmax_planar(const float* x, int c, int n, int64_t stride, uint8_t* out);
void argmax_planar__ref(const float* x, int c, int n, int64_t stride, uint8_t* out);
void argmax_planar__avx2(const float* x, int c, int n, int64_t stride, uint8_t* out);

}  // namespace bfcn
