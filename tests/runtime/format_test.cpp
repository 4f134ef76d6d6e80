// The .bfcn format and engine robustness: write→load round trip, and corrupted files (truncations,
// byte flips at many offsets, bad magic/version/offsets/sizes, malformed graphs) always give a
// bfcn::Error naming the file, never a crash (CI runs this under ASan/UBSan).
#include "runtime/format.h"

#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/synthetic.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using namespace bfcn::rt;

namespace {

std::vector<uint8_t> tiny_model_bytes(int w_bits = 1, int a_bits = 2) {
  SyntheticOptions o;
  o.w_bits = w_bits;
  o.a_bits = a_bits;
  o.base_channels = 4;
  o.blocks = {1, 1, 1, 1};
  o.num_classes = 3;
  nlohmann::json header;
  std::vector<BlobData> blobs;
  make_synthetic_fcn8s(o, header, blobs);
  return serialize_model(header, blobs);
}

// Re-stamps the checksum so a deliberate edit reaches the validation behind it.
void restamp(std::vector<uint8_t>& f) {
  const uint64_t h = fnv1a64(f.data(), f.size() - 8);
  std::memcpy(f.data() + f.size() - 8, &h, 8);
}

// Parsing and building the engine either succeeds or throws bfcn::Error mentioning the file.
bool loads(const std::vector<uint8_t>& f) {
  try {
    Model::from_file(parse_model("m.bfcn", f));
    return true;
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("m.bfcn") != std::string::npos);
    return false;
  }
}

// Edits the header JSON text in place and reassembles the file around the same blob section
// (blob offsets are relative to that section), so edits to "blobs" survive.
std::vector<uint8_t> with_header(const std::vector<uint8_t>& f, const std::string& from,
                                 const std::string& to) {
  const ModelFile m = parse_model("m.bfcn", f);
  std::string json = m.header.dump();
  const size_t at = json.find(from);
  REQUIRE(at != std::string::npos);
  json.replace(at, from.size(), to);
  const uint32_t version = kFormatVersion;
  const uint64_t len = json.size();
  std::string text = "BFCN";
  text.append(reinterpret_cast<const char*>(&version), 4);
  text.append(reinterpret_cast<const char*>(&len), 8);
  text += json;
  text.resize((text.size() + 63) / 64 * 64, '\0');
  text.append(reinterpret_cast<const char*>(m.data.data()), m.data.size());
  text.resize(text.size() + 8, '\0');
  std::vector<uint8_t> out(text.begin(), text.end());
  restamp(out);
  return out;
}

}  // namespace

TEST_CASE("model file round trips through disk", "[runtime][format]") {
  test::TempDir dir;
  const auto bytes = tiny_model_bytes();
  ModelFile m = parse_model("m.bfcn", bytes);
  std::vector<BlobData> blobs;
  for (const auto& e : m.blobs) {
    CHECK(e.offset % 64 == 0);
    BlobData b{e.name, e.type, {}};
    b.bytes.assign(m.data.begin() + int64_t(e.offset),
                   m.data.begin() + int64_t(e.offset + e.bytes));
    blobs.push_back(b);
  }
  write_model_file(dir / "a.bfcn", m.header, blobs);
  ModelFile back = read_model_file(dir / "a.bfcn");
  CHECK(back.header == m.header);
  CHECK(back.data == m.data);
  const Model model = Model::load((dir / "a.bfcn").string());
  CHECK(model.num_classes() == 3);
  CHECK(model.class_names().size() == 3);
  CHECK_THROWS_AS(read_model_file(dir / "missing.bfcn"), IoError);
}

TEST_CASE("engine output is deterministic and thread-count independent", "[runtime][engine]") {
  const Model m = Model::from_file(parse_model("m.bfcn", tiny_model_bytes()));
  const int h = 45, w = 38;
  std::vector<float> img(size_t(3) * h * w);
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (float& v : img) v = u(gen);
  std::vector<float> l1, l2;
  std::vector<uint8_t> lab1, lab2;
  const int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  m.run(img.data(), h, w, &l1, &lab1);
  omp_set_num_threads(2);
  m.run(img.data(), h, w, &l2, &lab2);
  omp_set_num_threads(saved);
  CHECK(l1 == l2);
  CHECK(lab1 == lab2);
  REQUIRE(l1.size() == size_t(3) * h * w);
  for (uint8_t v : lab1) REQUIRE(v < 3);
  // Logits vary over the image in every class (activations were not all clipped to one level).
  for (int c = 0; c < 3; ++c) {
    const auto [lo, hi] = std::minmax_element(l1.begin() + c * h * w, l1.begin() + (c + 1) * h * w);
    CHECK(*hi - *lo > 0.1f);
  }
  CHECK_THROWS_AS(m.run(img.data(), 0, w, nullptr, nullptr), Error);
}

TEST_CASE("truncated model files give errors, never crashes", "[runtime][format]") {
  const auto bytes = tiny_model_bytes();
  REQUIRE(loads(bytes));
  const size_t step = std::getenv("BFCN_SANITIZED") ? 97 : 13;
  for (size_t n = 0; n < bytes.size(); n += step) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + int64_t(n));
    CHECK_FALSE(loads(cut));
  }
}

TEST_CASE("byte flips at many offsets give errors, never crashes", "[runtime][format]") {
  const auto bytes = tiny_model_bytes();
  std::mt19937_64 gen(42);
  const int trials = std::getenv("BFCN_SANITIZED") ? 60 : 300;
  for (int t = 0; t < trials; ++t) {
    auto f = bytes;
    const size_t at = gen() % f.size();
    f[at] ^= uint8_t(1 + gen() % 255);
    CHECK_FALSE(loads(f));  // the checksum catches every single flip
    // With the checksum re-stamped the structural checks must hold on their own: any outcome
    // but a crash is fine (a flip inside a weight blob is still a valid model).
    restamp(f);
    (void)loads(f);
  }
}

TEST_CASE("bad magic, version, offsets and graphs are rejected with a hint", "[runtime][format]") {
  const auto bytes = tiny_model_bytes();
  {
    auto f = bytes;
    f[0] = 'X';
    restamp(f);
    CHECK_THROWS_WITH(parse_model("m.bfcn", f), Catch::Contains("bad magic"));
  }
  {
    auto f = bytes;
    f[4] = 2;
    restamp(f);
    CHECK_THROWS_WITH(parse_model("m.bfcn", f),
                      Catch::Contains("format version 2, this runtime reads 1") &&
                          Catch::Contains("bfcn export"));
  }
  {
    auto f = bytes;
    const uint64_t huge = ~uint64_t{0} - 5;
    std::memcpy(f.data() + 8, &huge, 8);
    restamp(f);
    CHECK_THROWS_WITH(parse_model("m.bfcn", f), Catch::Contains("exceeds the file size"));
  }
  CHECK_THROWS_WITH(
      parse_model("m.bfcn", with_header(bytes, "\"offset\":0", "\"offset\":64000000")),
      Catch::Contains("exceeds the blob section"));
  CHECK_THROWS_WITH(parse_model("m.bfcn", with_header(bytes, "\"offset\":0", "\"offset\":3")),
                    Catch::Contains("not 64-byte aligned"));
  CHECK_THROWS_WITH(
      parse_model("m.bfcn", with_header(bytes, "\"offset\":0", "\"offset\":18446744073709551552")),
      Catch::Contains("exceeds the blob section"));
  auto graph_error = [&](const std::string& from, const std::string& to) {
    try {
      Model::from_file(parse_model("m.bfcn", with_header(bytes, from, to)));
    } catch (const IoError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK_THAT(graph_error("\"type\":\"bitconv\"", "\"type\":\"bogus\""),
             Catch::Contains("unknown layer type 'bogus'"));
  CHECK_THAT(graph_error("\"in_c\":4", "\"in_c\":5"), Catch::Contains("in_c 5"));
  CHECK_THAT(graph_error("\"w_bits\":1", "\"w_bits\":2"), Catch::Contains("holds"));
  CHECK_THAT(graph_error("\"w_bits\":1", "\"w_bits\":0"), Catch::Contains("w_bits' must be 1..4"));
  CHECK_THAT(graph_error("\"a_bits\":2", "\"a_bits\":3"), Catch::Contains("a_bits 3"));
  CHECK_THAT(graph_error("\"kernel\":7", "\"kernel\":1000000"), Catch::Contains("kernel"));
  CHECK_THAT(graph_error("\"inputs\":[\"image\"]", "\"inputs\":[\"nowhere\"]"),
             Catch::Contains("earlier tensor"));
  CHECK_THAT(graph_error("\"output\":\"logits\",\"size_of\"", "\"output\":\"lg\",\"size_of\""),
             Catch::Contains("'output' must name a tensor"));
}
