// The engine's activation arena (plan_arena in runtime/model_plan.cpp, used by execute): no two
// ranges live at the same layer share a byte, on the synthetic graph and its variants at odd input
// sizes; runs that reuse an arena (same size, alternating sizes, an arena filled with garbage
// between runs) give logits bit-identical to a fresh model; concurrent runs on one model each get
// their own arena and stay correct.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine_internal.h"
#include "runtime/format.h"
#include "tests/runtime/synthetic_graph.h"

using namespace bfcn;
using namespace bfcn::rt;
using bfcn::test::synthetic_graph;
using bfcn::test::SyntheticGraph;

namespace {

Model::Impl planned(const SyntheticGraph& g) {
  Model::Impl I;
  read_graph(parse_model("synthetic", serialize_model(g.header, g.blobs)), I);
  plan_graph(I);
  return I;
}

// The graphs whose layers take every path of execute: the fused stem head (W1A2 and W2A2), an
// unfused stem (float conv output, float max pool), score convs and a fuse add with packed
// outputs (float results quantized from a temporary, packed inputs read through float views),
// and the FP32 rewrite (float bit-conv replacements, clip-like adds with ReLU).
struct NamedGraph {
  std::string name;
  Model::Impl I;
};
std::vector<NamedGraph> graphs() {
  std::vector<NamedGraph> out;
  out.push_back({"w1a2", planned(synthetic_graph())});
  {
    rt::SyntheticOptions o;
    o.base_channels = 8;
    o.blocks = {1, 1, 1, 1};
    o.num_classes = 5;
    o.w_bits = 2;
    o.a_bits = 2;
    SyntheticGraph g;
    rt::make_synthetic_fcn8s(o, g.header, g.blobs);
    out.push_back({"w2a2", planned(g)});
  }
  {
    SyntheticGraph g = synthetic_graph();
    bfcn::test::add_second_stem_reader(g.header);
    out.push_back({"unfused stem", planned(g)});
  }
  {
    SyntheticGraph g = synthetic_graph();
    int edited = 0;
    for (auto& l : g.header["layers"])
      if (l["name"] == "score_layer2" || l["name"] == "fuse3") {
        l["out_bits"] = 2;
        ++edited;
      }
    REQUIRE(edited == 2);
    out.push_back({"packed score and fuse", planned(g)});
  }
  Model::Impl f = planned(synthetic_graph());
  rewrite_fp32(f);
  out.push_back({"fp32 rewrite", f});
  return out;
}

std::vector<float> random_image(int h, int w, unsigned seed) {
  std::vector<float> img(size_t(3) * h * w);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : img) v = u(gen);
  return img;
}

struct Output {
  std::vector<float> logits;
  std::vector<uint8_t> labels;
  bool operator==(const Output& o) const {  // bit for bit
    return labels == o.labels && logits.size() == o.logits.size() &&
           std::memcmp(logits.data(), o.logits.data(), logits.size() * sizeof(float)) == 0;
  }
};

Output run(const Model::Impl& I, int h, int w) {
  const std::vector<float> img = random_image(h, w, unsigned(h * 1000 + w));
  Output o;
  execute(I, img.data(), h, w, &o.logits, &o.labels, true);
  return o;
}

// A fresh copy of the graph (a copy starts with no arena) run once.
Output fresh_run(const Model::Impl& I, int h, int w) {
  const Model::Impl J = I;
  REQUIRE(J.arenas.idle() == 0);
  return run(J, h, w);
}

// Every tensor and temporary of the plan as a byte range with the layers it is live at.
struct Range {
  size_t begin, end;
  int first, last;
  std::string what;
};

void check_plan(const Model::Impl& I, int h, int w) {
  INFO("input " << h << "x" << w);
  const ArenaPlan P = plan_arena(I, h, w);
  REQUIRE(P.tensor.size() == I.tensors.size());
  REQUIRE(P.scratch.size() == I.layers.size());
  // The first layer reading each tensor (size_of counts), from the graph itself.
  std::vector<int> first_read(I.tensors.size(), int(I.layers.size()));
  for (size_t li = 0; li < I.layers.size(); ++li) {
    std::vector<int> reads = I.layers[li].in;
    if (I.layers[li].size_of >= 0) reads.push_back(I.layers[li].size_of);
    for (int t : reads) first_read[size_t(t)] = std::min(first_read[size_t(t)], int(li));
  }
  std::vector<Range> ranges;
  size_t sum = 0;
  for (size_t t = 0; t < I.tensors.size(); ++t) {
    const ArenaSlot& s = P.tensor[t];
    if (s.bytes == 0) continue;
    INFO("tensor " << I.tensors[t].name);
    CHECK(P.born[t] < first_read[t]);  // written before any layer reads it
    const TensorInfo& ti = I.tensors[t];
    const auto [th, tw] = P.shape[t];
    CHECK(s.bytes ==
          (ti.bits ? packed_map_bytes(th, tw, ti.c, ti.bits) : float_map_bytes(th, tw, ti.c)));
    ranges.push_back({s.offset, s.offset + s.bytes, P.born[t], std::max(P.born[t], I.last_use[t]),
                      "tensor " + ti.name});
    sum += s.bytes;
  }
  for (size_t li = 0; li < I.layers.size(); ++li) {
    const ArenaSlot& s = P.scratch[li];
    if (s.bytes == 0) continue;
    ranges.push_back(
        {s.offset, s.offset + s.bytes, int(li), int(li), "scratch of " + I.layers[li].name});
    sum += s.bytes;
  }
  // Every output a layer writes has bytes (the fused-away and the emitted ones excepted).
  for (size_t li = 0; li < I.layers.size(); ++li) {
    const int out = I.layers[li].out;
    const bool fused_away = I.fusion[li] == kAbsorbed
                                ? I.layers[li].op != Op::quant_act
                                : I.fusion[li] == kStemHead || I.fusion[li] == kStemPool ||
                                      I.fusion[li] == kResidualConv;
    if (!fused_away && int(li) != P.emit_layer) CHECK(P.tensor[size_t(out)].bytes > 0);
  }
  for (const Range& r : ranges) {
    INFO(r.what);
    CHECK(r.begin % 64 == 0);
    CHECK(r.end <= P.bytes);
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    for (size_t j = i + 1; j < ranges.size(); ++j) {
      const Range &a = ranges[i], &b = ranges[j];
      if (a.last < b.first || b.last < a.first) continue;  // never live together
      INFO(a.what << " [" << a.begin << "," << a.end << ") layers " << a.first << ".." << a.last);
      INFO(b.what << " [" << b.begin << "," << b.end << ") layers " << b.first << ".." << b.last);
      CHECK((a.end <= b.begin || b.end <= a.begin));
    }
  CHECK(P.bytes < sum);  // tensors with disjoint lifetimes do share bytes
}

}  // namespace

TEST_CASE("arena plan: ranges live at the same layer never overlap", "[runtime][engine][arena]") {
  for (const NamedGraph& g : graphs()) {
    INFO(g.name);
    for (auto [h, w] : {std::pair{64, 64}, {33, 47}, {17, 9}, {1, 1}, {512, 512}, {97, 255}})
      check_plan(g.I, h, w);
  }
}

TEST_CASE("arena plan: input-size errors name the layer, before anything runs",
          "[runtime][engine][arena]") {
  SyntheticGraph g = synthetic_graph();
  g.header["layers"][0]["pad"] = 0;  // the 7x7 stem no longer fits a 5x5 image
  const Model::Impl I = planned(g);
  CHECK_THROWS_WITH(plan_arena(I, 5, 5),
                    Catch::Contains("layer 'conv1'") && Catch::Contains("too small"));
  CHECK_THROWS_WITH(run(I, 5, 5), Catch::Contains("layer 'conv1'"));
  CHECK(I.arenas.idle() == 1);  // the run's arena came back despite the error
  CHECK(run(I, 40, 36) == fresh_run(I, 40, 36));
}

TEST_CASE("arena: repeated and size-alternating runs equal a fresh model bit for bit",
          "[runtime][engine][arena]") {
  const std::vector<std::pair<int, int>> sizes = {{40, 36}, {33, 47}, {40, 36}, {64, 64},
                                                  {33, 47}, {40, 36}, {17, 9},  {64, 64}};
  for (const NamedGraph& g : graphs()) {
    INFO(g.name);
    const Model::Impl I = g.I;
    for (size_t i = 0; i < sizes.size(); ++i) {
      const auto [h, w] = sizes[i];
      INFO("run " << i << ": " << h << "x" << w);
      // Garbage in the reused arena: a kernel that relied on zeroed or earlier bytes would differ.
      I.arenas.fill_idle(i % 2 ? 0xff : 0x5a);
      const Output got = run(I, h, w);
      REQUIRE(got.logits.size() == size_t(5) * h * w);
      CHECK(got == fresh_run(g.I, h, w));
      CHECK(I.arenas.idle() == 1);  // one arena, re-planned for each size
    }
  }
}

TEST_CASE("arena: concurrent runs on one model each get their own arena",
          "[runtime][engine][arena]") {
  const Model::Impl I = planned(synthetic_graph());
  const std::vector<std::pair<int, int>> sizes = {{40, 36}, {33, 47}, {64, 64}, {40, 36}};
  std::vector<Output> want;
  for (auto [h, w] : sizes) want.push_back(fresh_run(I, h, w));
  constexpr int kRuns = 4;
  std::vector<std::vector<Output>> got(sizes.size());
  std::vector<std::thread> threads;
  for (size_t t = 0; t < sizes.size(); ++t)
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRuns; ++r) got[t].push_back(run(I, sizes[t].first, sizes[t].second));
    });
  for (std::thread& th : threads) th.join();
  for (size_t t = 0; t < sizes.size(); ++t) {
    INFO("thread " << t);
    REQUIRE(got[t].size() == size_t(kRuns));
    for (const Output& o : got[t]) CHECK(o == want[t]);
  }
  CHECK(I.arenas.idle() >= 1);
  CHECK(I.arenas.idle() <= sizes.size());
}
