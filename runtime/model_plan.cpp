// Plan stage: what execution needs beyond the validated graph. Buffer lifetimes (each tensor is
// freed after its last reader), the stem fusion, the bit convs' prepared weights and epilogue
// thresholds (built on first use, cached per layer), and the FP32 cost-model rewrite.
#include <algorithm>

#include "kernels/bitpack.h"
#include "runtime/engine_internal.h"

namespace bfcn::rt {

void plan_graph(Model::Impl& I) {
  compute_last_use(I);
  plan_fusions(I);
}

void compute_last_use(Model::Impl& I) {
  I.last_use.assign(I.tensors.size(), -1);
  for (size_t li = 0; li < I.layers.size(); ++li) {
    for (int t : I.layers[li].in) I.last_use[size_t(t)] = int(li);
    if (I.layers[li].size_of >= 0) I.last_use[size_t(I.layers[li].size_of)] = int(li);
  }
  I.last_use[size_t(I.output)] = int(I.layers.size());
}

// Pool-after-quantize is exact when the quantizer's affine is non-decreasing (mul >= 0) and the
// intermediate tensors have no other reader.
void plan_fusions(Model::Impl& I) {
  I.fusion.assign(I.layers.size(), kUnfused);
  for (size_t li = 0; li + 2 < I.layers.size(); ++li) {
    const Layer &c = I.layers[li], &p = I.layers[li + 1], &q = I.layers[li + 2];
    if (c.op != Op::conv_f32 || c.out_bits != 0 || c.in_c >= 16 || p.op != Op::maxpool ||
        q.op != Op::quant_act || p.in[0] != c.out || q.in[0] != p.out ||
        I.last_use[size_t(c.out)] != int(li + 1) || I.last_use[size_t(p.out)] != int(li + 2) ||
        q.out_bits < 1 || q.out_bits > 8)
      continue;
    if (!std::all_of(q.mul.begin(), q.mul.end(), [](float m) { return m >= 0.0f; })) continue;
    I.fusion[li] = kStemHead;
    I.fusion[li + 1] = I.fusion[li + 2] = kAbsorbed;
  }
}

const RequantThresholds* layer_thresholds(const Layer& L, const BitConvShape& s,
                                          const BitConvEpilogue& e) {
  const std::lock_guard<std::mutex> lock(L.prepared->mu);
  if (!L.prepared->thresholds)
    L.prepared->thresholds = std::make_unique<RequantThresholds>(make_requant_thresholds(s, e));
  return L.prepared->thresholds.get();
}

const PreparedBitWeights& prepared_weights(const Layer& L, const BitConvShape& s,
                                           const BgemmVariant& v) {
  const std::lock_guard<std::mutex> lock(L.prepared->mu);
  for (const auto& p : L.prepared->by_variant)
    if (p->variant == &v && p->fits(s)) return *p;
  L.prepared->by_variant.push_back(
      std::make_unique<PreparedBitWeights>(prepare_bitconv_weights(s, L.wbits.data(), v)));
  return *L.prepared->by_variant.back();
}

namespace {

// FP32 weights [OC][K][K][C] of a bit conv: each weight code p of the planes decoded to its level
// (2p - (2^M-1)), scaled by the layer's mul and the activation range (2^K-1).
std::vector<float> decode_bit_weights(const Layer& L) {
  const int taps = L.kernel * L.kernel, lp = bitconv_row_words(taps, L.in_c),
            cw = bit_words(L.in_c);
  const float wmax = float((1 << L.w_bits) - 1);
  std::vector<float> weight(size_t(L.out_c) * taps * L.in_c, 0.0f);
  for (int o = 0; o < L.out_c; ++o)
    for (int t = 0; t < taps; ++t)
      for (int c = 0; c < L.in_c; ++c) {
        int p = 0;
        for (int mb = 0; mb < L.w_bits; ++mb)
          p |= int((L.wbits[(size_t(o) * L.w_bits + mb) * lp + t * cw + c / 64] >> (c % 64)) & 1)
               << mb;
        weight[(size_t(o) * taps + t) * L.in_c + c] =
            (2.0f * p - wmax) * L.mul[size_t(o)] * float((1 << L.a_bits) - 1);
      }
  return weight;
}

}  // namespace

void rewrite_fp32(Model::Impl& I) {
  for (TensorInfo& t : I.tensors) t.bits = 0;
  for (Layer& L : I.layers) {
    L.out_bits = 0;
    if (L.op == Op::quant_act) {
      // Identity-like affine on floats: keep the op's cost as a clip.
      L.op = Op::add;
      L.in.push_back(L.in[0]);
      L.relu = true;
    }
    if (L.op != Op::bitconv) continue;
    L.weight = decode_bit_weights(L);
    L.bias = L.add;
    L.op = Op::conv_f32;
    if (L.in.size() == 2) L.in.pop_back();  // residual: dropped (a cost model, not the network)
    L.wbits.clear();
  }
  plan_fusions(I);
}

}  // namespace bfcn::rt
