// Plan stage: what execution needs beyond the validated graph. Buffer lifetimes (the last reader
// of each tensor), the stem fusion, the activation arena of an input size (every tensor and
// temporary at an offset of one buffer kept between runs), the bit convs' prepared weights and
// epilogue thresholds (built on first use, cached per layer), and the FP32 cost-model rewrite.
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "core/error.h"
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
// A stem conv -> max pool whose pooled map is float and the pool is the conv map's only reader
// fuses as kStemPool (dilation 1: the direct stem kernels).
void plan_fusions(Model::Impl& I) {
  I.fusion.assign(I.layers.size(), kUnfused);
  for (size_t li = 0; li + 1 < I.layers.size(); ++li) {
    const Layer &c = I.layers[li], &p = I.layers[li + 1];
    if (I.fusion[li] != kUnfused || c.op != Op::conv_f32 || c.out_bits != 0 || c.in_c >= 16 ||
        p.op != Op::maxpool || p.in[0] != c.out || I.last_use[size_t(c.out)] != int(li + 1))
      continue;
    const Layer* q = li + 2 < I.layers.size() ? &I.layers[li + 2] : nullptr;
    if (q && q->op == Op::quant_act && q->in[0] == p.out &&
        I.last_use[size_t(p.out)] == int(li + 2) && q->out_bits >= 1 && q->out_bits <= 8 &&
        std::all_of(q->mul.begin(), q->mul.end(), [](float m) { return m >= 0.0f; })) {
      I.fusion[li] = kStemHead;
      I.fusion[li + 1] = I.fusion[li + 2] = kAbsorbed;
    } else if (c.dilation == 1 && I.tensors[size_t(p.out)].bits == 0) {
      I.fusion[li] = kStemPool;
      I.fusion[li + 1] = kAbsorbed;
    }
  }
  plan_residual_convs(I);
}

// kResidualConv: a 1x1 pad-0 bit conv d with a float output and no ReLU, read once, as the
// residual of bit conv r (which computes d's rows in its epilogue: d's input then lives until r).
void plan_residual_convs(Model::Impl& I) {
  I.residual_conv.assign(I.layers.size(), -1);
  std::vector<int> readers(I.tensors.size(), 0);
  for (const Layer& L : I.layers) {
    for (int t : L.in) ++readers[size_t(t)];
    if (L.size_of >= 0) ++readers[size_t(L.size_of)];
  }
  std::vector<int> producer(I.tensors.size(), -1);
  for (size_t li = 0; li < I.layers.size(); ++li) producer[size_t(I.layers[li].out)] = int(li);
  for (size_t ri = 0; ri < I.layers.size(); ++ri) {
    const Layer& r = I.layers[ri];
    if (r.op != Op::bitconv || r.in.size() != 2 || r.in[0] == r.in[1]) continue;
    const int res = r.in[1], di = producer[size_t(res)];
    if (di < 0 || I.fusion[size_t(di)] != kUnfused || readers[size_t(res)] != 1 || res == I.output)
      continue;
    const Layer& d = I.layers[size_t(di)];
    if (d.op != Op::bitconv || d.in.size() != 1 || d.kernel != 1 || d.pad != 0 || d.dilation != 1 ||
        d.out_bits != 0 || d.relu || I.tensors[size_t(res)].bits != 0 || d.out_c != r.out_c)
      continue;
    I.fusion[size_t(di)] = kResidualConv;
    I.residual_conv[ri] = di;
    int& last = I.last_use[size_t(d.in[0])];
    last = std::max(last, int(ri));
  }
}

size_t packed_map_bytes(int h, int w, int c, int bits) {
  return size_t(h) * w * bits * bit_words(c) * sizeof(uint64_t);
}

namespace {

int conv_out(int in, int k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

// Tensor shapes at input size h x w, in layer order (the checks execution used to make as it went).
class ShapePlanner {
 public:
  ShapePlanner(const Model::Impl& I, ArenaPlan& P) : I_(I), P_(P) {}

  void run() {
    P_.shape.assign(I_.tensors.size(), {0, 0});
    P_.shape[0] = {P_.h, P_.w};
    for (size_t li = 0; li < I_.layers.size(); ++li) {
      if (I_.fusion[li] == kAbsorbed) continue;  // shaped by the stem head
      layer(li);
    }
    const auto& out = P_.shape[size_t(I_.output)];
    BFCN_CHECK(out[0] == P_.h && out[1] == P_.w, "Model::run: output is ", out[0], "x", out[1],
               ", expected the input size ", P_.h, "x", P_.w,
               " (is the graph's output upsampled?)");
  }

 private:
  std::array<int, 2>& of(int t) { return P_.shape[size_t(t)]; }

  void layer(size_t li) {
    const Layer& L = I_.layers[li];
    const auto x = of(L.in[0]);
    auto& y = of(L.out);
    switch (L.op) {
      case Op::conv_f32:
      case Op::bitconv:
        y = {conv_out(x[0], L.kernel, L.stride, L.pad, L.dilation),
             conv_out(x[1], L.kernel, L.stride, L.pad, L.dilation)};
        BFCN_CHECK(y[0] > 0 && y[1] > 0, "layer '", L.name, "': input ", x[0], "x", x[1],
                   " is too small");
        if (L.op == Op::bitconv && L.in.size() == 2) {
          const auto r = of(L.in[1]);
          BFCN_CHECK(r == y, "layer '", L.name, "': residual is ", r[0], "x", r[1], ", output is ",
                     y[0], "x", y[1]);
        }
        if (I_.fusion[li] == kStemHead || I_.fusion[li] == kStemPool)  // the pool's output too
          of(I_.layers[li + 1].out) = pooled(I_.layers[li + 1], y);
        if (I_.fusion[li] == kStemHead)  // and the quantizer's
          of(I_.layers[li + 2].out) = of(I_.layers[li + 1].out);
        break;
      case Op::add: {
        const auto b = of(L.in[1]);
        BFCN_CHECK(b == x, "layer '", L.name, "': adding ", x[0], "x", x[1], " and ", b[0], "x",
                   b[1]);
        y = x;
        break;
      }
      case Op::quant_act:
        y = x;
        break;
      case Op::maxpool:
        y = pooled(L, x);
        break;
      case Op::upsample:
        y = L.size_of < 0 ? std::array<int, 2>{P_.h, P_.w} : of(L.size_of);
        break;
    }
  }

  static std::array<int, 2> pooled(const Layer& L, const std::array<int, 2>& x) {
    const std::array<int, 2> y{(x[0] + 2 * L.pad - L.kernel) / L.stride + 1,
                               (x[1] + 2 * L.pad - L.kernel) / L.stride + 1};
    BFCN_CHECK(y[0] > 0 && y[1] > 0, "layer '", L.name, "': input too small");
    return y;
  }

  const Model::Impl& I_;
  ArenaPlan& P_;
};

// What every tensor and every layer's temporaries take (the same sizes execute cuts them to).
void plan_sizes(const Model::Impl& I, ArenaPlan& P) {
  const size_t nt = I.tensors.size(), nl = I.layers.size();
  P.tensor.assign(nt, {});
  P.scratch.assign(nl, {});
  P.born.assign(nt, -1);
  auto floats = [&](int t) {
    return float_map_bytes(P.shape[size_t(t)][0], P.shape[size_t(t)][1], I.tensors[size_t(t)].c);
  };
  // A float view of tensor t: a dequantized copy when it is packed.
  auto view = [&](int t) { return I.tensors[size_t(t)].bits > 0 ? scratch_part(floats(t)) : 0; };
  for (size_t li = 0; li < nl; ++li) {
    const Layer& L = I.layers[li];
    if (I.fusion[li] == kAbsorbed || I.fusion[li] == kResidualConv) continue;  // not stored
    const TensorInfo& yt = I.tensors[size_t(L.out)];
    const auto y = P.shape[size_t(L.out)];
    P.born[size_t(L.out)] = int(li);
    size_t& tmp = P.scratch[li].bytes;
    size_t& out = P.tensor[size_t(L.out)].bytes;
    out = yt.bits > 0 ? packed_map_bytes(y[0], y[1], yt.c, yt.bits) : floats(L.out);
    switch (L.op) {
      case Op::conv_f32:
        tmp = view(L.in[0]);
        if (I.fusion[li] == kStemHead) {  // codes [y][c] as bytes, pooled + packed into Q.out
          const Layer& Q = I.layers[li + 2];
          if (L.dilation != 1) tmp += scratch_part(size_t(y[0]) * y[1] * yt.c);  // else by rows
          out = 0;
          P.born[size_t(Q.out)] = int(li);
          const auto z = P.shape[size_t(Q.out)];
          P.tensor[size_t(Q.out)].bytes = packed_map_bytes(z[0], z[1], yt.c, Q.out_bits);
        } else if (I.fusion[li] == kStemPool) {  // the pooled floats straight into P.out
          const int pooled_t = I.layers[li + 1].out;
          out = 0;
          P.born[size_t(pooled_t)] = int(li);
          P.tensor[size_t(pooled_t)].bytes = floats(pooled_t);
        } else if (L.out_bits > 0) {  // the float result before it is quantized
          tmp += scratch_part(floats(L.out));
        }
        break;
      case Op::bitconv:
        break;
      case Op::quant_act:
      case Op::maxpool:
        tmp = view(L.in[0]);
        break;
      case Op::add:
        tmp = view(L.in[0]) + view(L.in[1]) + (L.out_bits > 0 ? scratch_part(floats(L.out)) : 0);
        break;
      case Op::upsample: {
        const auto x = P.shape[size_t(L.in[0])];  // + the rows resized horizontally
        tmp = view(L.in[0]) + scratch_part(float_map_bytes(x[0], y[1], yt.c));
        if (L.out == I.output && y[0] == P.h && y[1] == P.w) {  // writes logits/labels itself
          P.emit_layer = int(li);
          out = 0;
        }
        break;
      }
    }
  }
  P.tensor[0].bytes = floats(0);
}

// Offsets: in the order the ranges are written, each at the lowest offset clear of every range
// already placed whose lifetime [first, last] layer overlaps its own. Placed this way a new tensor
// reuses bytes that the last layers freed, still in cache (largest-first placement, as compact
// here, put the 1x1 downsample convs' float outputs on cold lines: slower at 2 threads than the
// per-run vectors it replaced; docs/benchmarks.md, session 9).
void plan_offsets(const Model::Impl& I, ArenaPlan& P) {
  struct Item {
    ArenaSlot* slot;
    int first, last;
  };
  std::vector<Item> items;
  for (size_t t = 0; t < P.tensor.size(); ++t)
    if (P.tensor[t].bytes > 0)
      items.push_back({&P.tensor[t], P.born[t], std::max(P.born[t], I.last_use[t])});
  for (size_t li = 0; li < P.scratch.size(); ++li)
    if (P.scratch[li].bytes > 0) items.push_back({&P.scratch[li], int(li), int(li)});
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.first < b.first; });
  std::vector<const Item*> placed, live;
  P.bytes = 0;
  for (const Item& it : items) {
    live.clear();
    for (const Item* q : placed)
      if (q->first <= it.last && it.first <= q->last) live.push_back(q);
    std::sort(live.begin(), live.end(),
              [](const Item* a, const Item* b) { return a->slot->offset < b->slot->offset; });
    const size_t need = scratch_part(it.slot->bytes);
    size_t at = 0;
    for (const Item* q : live) {
      if (q->slot->offset >= at + need) break;
      at = std::max(at, q->slot->offset + scratch_part(q->slot->bytes));
    }
    it.slot->offset = at;
    P.bytes = std::max(P.bytes, at + need);
    placed.push_back(&it);
  }
}

}  // namespace

ArenaPlan plan_arena(const Model::Impl& I, int h, int w) {
  BFCN_CHECK(h > 0 && w > 0 && h <= 16384 && w <= 16384,
             "Model::run: image size must be 1..16384, got ", h, "x", w);
  ArenaPlan P;
  P.h = h;
  P.w = w;
  ShapePlanner(I, P).run();
  plan_sizes(I, P);
  plan_offsets(I, P);
  return P;
}

Arena::~Arena() { ::operator delete(data, std::align_val_t(64)); }

void Arena::reserve() {
  if (capacity >= plan.bytes) return;
  ::operator delete(data, std::align_val_t(64));
  data = nullptr;
  capacity = 0;
  data = static_cast<std::byte*>(::operator new(plan.bytes, std::align_val_t(64)));
  capacity = plan.bytes;
  // Touch every page once here, in parallel, so no run takes page faults in one thread.
  const int64_t chunks = int64_t((capacity + (1 << 16) - 1) >> 16);
#pragma omp parallel for schedule(static) if (chunks > 16)
  for (int64_t i = 0; i < chunks; ++i) {
    const size_t at = size_t(i) << 16;
    std::memset(data + at, 0, std::min<size_t>(size_t(1) << 16, capacity - at));
  }
}

std::unique_ptr<Arena> ArenaPool::take(int h, int w) {
  std::unique_lock<std::mutex> lock(mu_);
  if (idle_.empty()) return std::make_unique<Arena>();
  auto it = std::find_if(idle_.begin(), idle_.end(),
                         [&](const auto& a) { return a->plan.h == h && a->plan.w == w; });
  if (it == idle_.end())
    it = std::max_element(idle_.begin(), idle_.end(),
                          [](const auto& a, const auto& b) { return a->capacity < b->capacity; });
  std::unique_ptr<Arena> a = std::move(*it);
  idle_.erase(it);
  return a;
}

void ArenaPool::give_back(std::unique_ptr<Arena> a) {
  const std::lock_guard<std::mutex> lock(mu_);
  idle_.push_back(std::move(a));
}

size_t ArenaPool::idle() const {
  const std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

void ArenaPool::fill_idle(uint8_t byte) {
  const std::lock_guard<std::mutex> lock(mu_);
  for (const auto& a : idle_)
    if (a->data) std::memset(a->data, byte, a->capacity);
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
