// Model::set_trace: every layer's output once, in execution order, packed tensors as codes; the
// trace does not change what run() computes.
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "runtime/engine.h"
#include "tests/runtime/synthetic_graph.h"
#include "tests/support/test_support.h"

using namespace bfcn;

TEST_CASE("set_trace reports each layer's output in order and leaves run() unchanged",
          "[runtime]") {
  const test::SyntheticGraph g = test::synthetic_graph();
  const rt::Model m =
      rt::Model::from_file(rt::parse_model("trace.bfcn", rt::serialize_model(g.header, g.blobs)));
  const int h = 37, w = 45;  // odd: partial words and windows
  Rng rng(5);
  const Tensor img = test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f);
  std::vector<float> plain_logits, traced_logits;
  std::vector<uint8_t> plain_labels, traced_labels;
  m.run(img.f32(), h, w, &plain_logits, &plain_labels);

  std::vector<rt::TracedTensor> seen;
  m.set_trace([&](const rt::TracedTensor& t) { seen.push_back(t); });
  m.run(img.f32(), h, w, &traced_logits, &traced_labels);
  m.set_trace({});
  CHECK(traced_logits == plain_logits);
  CHECK(traced_labels == plain_labels);

  // Layer order of the file, each at most once; the fused stem head reports its quant_act (the
  // conv and pool it absorbed report nothing), and so do the three downsample convs that their
  // block's conv2 computes in its epilogue (kResidualConv).
  std::vector<std::string> order;
  for (const auto& L : g.header.at("layers")) order.push_back(L.at("name").get<std::string>());
  REQUIRE(seen.size() >= order.size() - 5);
  size_t at = 0;
  int packed = 0;
  std::set<std::string> names;
  for (const rt::TracedTensor& t : seen) {
    INFO("layer " << t.layer << " -> " << t.tensor);
    CHECK(names.insert(t.layer).second);
    while (at < order.size() && order[at] != t.layer) ++at;
    CHECK(at < order.size());  // known, and not earlier than the previous one
    CHECK(t.h > 0);
    CHECK(t.w > 0);
    CHECK(t.c > 0);
    const size_t n = size_t(t.h) * t.w * t.c;
    if (t.bits > 0) {
      ++packed;
      REQUIRE(t.codes.size() == n);
      CHECK(t.values.empty());
      for (uint8_t q : t.codes) CHECK(q < (1u << t.bits));
    } else if (!t.values.empty()) {
      CHECK(t.values.size() == n);
    }
  }
  CHECK(packed >= 8);  // the W1A2 graph's bit layers write codes
  // The codes are the activations' levels: at least two distinct levels in the first packed one.
  for (const rt::TracedTensor& t : seen)
    if (t.bits > 0) {
      CHECK(std::set<uint8_t>(t.codes.begin(), t.codes.end()).size() >= 2);
      break;
    }

  // Cleared: no more calls.
  const size_t before = seen.size();
  m.run(img.f32(), h, w, &traced_logits, &traced_labels);
  CHECK(seen.size() == before);
}
