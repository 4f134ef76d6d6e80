// Helpers shared by the bit-GEMM kernel files (bitconv__*.cpp), not part of the kernels API: the
// plane counts the vectorised kernels are compiled for, their compile-time dispatch, and the
// scalar untiling of pixel-tiled patches for their fallbacks. Everything here has internal
// linkage (an unnamed namespace): each ISA file gets its own copy built with its own flags, so the
// linker can never hand an AVX-512 instance to an AVX2 caller.
#pragma once

#include <cstdint>
#include <vector>

namespace bfcn {
namespace {

// The plane counts the vectorised bit-GEMMs are compiled for: 1..2 weight planes x 1..4
// activation planes.
constexpr int kMaxWeightPlanes = 2, kMaxActPlanes = 4;
constexpr bool compiled_plane_counts(int m_bits, int k_bits) {
  return m_bits >= 1 && m_bits <= kMaxWeightPlanes && k_bits >= 1 && k_bits <= kMaxActPlanes;
}

// Calls f.template operator()<M, K>() for the compile-time M = m_bits, K = k_bits and returns what
// it returns (whether it ran); false for counts outside compiled_plane_counts.
template <int M = 1, int K = 1, class F>
[[gnu::always_inline]] inline bool with_plane_counts(int m_bits, int k_bits, F&& f) {
  if constexpr (M > kMaxWeightPlanes) {
    return false;
  } else if constexpr (K > kMaxActPlanes) {
    return with_plane_counts<M + 1, 1>(m_bits, k_bits, f);
  } else {
    if (m_bits == M && k_bits == K) return f.template operator()<M, K>();
    return with_plane_counts<M, K + 1>(m_bits, k_bits, f);
  }
}

// The prologue of a vectorised kernel's prep_weights (BgemmVariant::prep): for plane counts it is
// not compiled for, out = the plain rows w [noc][m_bits][lp] (its fallback reads them) and false;
// else out = zeros for ceil(noc/block) blocks of lp x m_bits x block words (channels past noc stay
// zero) and true.
inline bool prep_weight_blocks(const uint64_t* w, int noc, int m_bits, int k_bits, int lp,
                               int block, std::vector<uint64_t>* out) {
  if (!compiled_plane_counts(m_bits, k_bits)) {
    out->assign(w, w + int64_t(noc) * m_bits * lp);
    return false;
  }
  out->assign(size_t((noc + block - 1) / block) * lp * m_bits * block, 0);
  return true;
}

// Patches gathered in pixel tiles (BgemmVariant::pixel_tile = tile: per tile of n <= tile pixels,
// words [lp][n][K]) back to the planar [npix][K][lp] rows the scalar kernels read.
inline void untile_patches(const uint64_t* a, int npix, int k_bits, int lp, int tile,
                           uint64_t* dst) {
  for (int t0 = 0; t0 < npix; t0 += tile) {
    const int n = npix - t0 < tile ? npix - t0 : tile;
    const uint64_t* src = a + int64_t(t0) * k_bits * lp;
    for (int l = 0; l < lp; ++l)
      for (int p = 0; p < n; ++p)
        for (int k = 0; k < k_bits; ++k)
          dst[(int64_t(t0 + p) * k_bits + k) * lp + l] = src[(int64_t(l) * n + p) * k_bits + k];
  }
}

// The BgemmFn body of a pixel-tiled kernel: run.template operator()<M, K>() (its vectorised loop,
// returning true) for the plane counts it is compiled for, else `fallback` (a planar kernel of the
// same contract) on the patches untiled and the plain weights prep_weight_blocks left.
template <class Run>
[[gnu::always_inline]] inline void tiled_or_fallback(
    const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits, int m_bits, int lp,
    int32_t* out, int ldo, int tile,
    void (*fallback)(const uint64_t*, int, const uint64_t*, int, int, int, int, int32_t*, int),
    Run&& run) {
  if (with_plane_counts(m_bits, k_bits, run)) return;
  std::vector<uint64_t> planar(size_t(npix) * k_bits * lp);
  untile_patches(a, npix, k_bits, lp, tile, planar.data());
  fallback(planar.data(), npix, w, noc, k_bits, m_bits, lp, out, ldo);
}

}  // namespace
}  // namespace bfcn
