// The C API (runtime/include/bfcn/bfcn.h) and its C++ wrapper against bfcn::rt::Model on a small
// random-weight FCN-8s: loading from a file and from memory, metadata, labels and logits equal to
// the engine's (native size, padded rows, resize mode), threads, errors as status + message.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bfcn/bfcn.h"
#include "bfcn/bfcn.hpp"
#include "kernels/upsample.h"
#include "runtime/engine.h"
#include "runtime/synthetic.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

constexpr int kClasses = 5;

std::vector<uint8_t> synthetic_bytes() {
  rt::SyntheticOptions o;
  o.base_channels = 8;
  o.blocks = {1, 1, 1, 1};
  o.num_classes = kClasses;
  nlohmann::json header;
  std::vector<rt::BlobData> blobs;
  rt::make_synthetic_fcn8s(o, header, blobs);
  header["class_names"] = {"bg", "a", "b", "c", "d"};
  header["palette"] = {{0, 0, 0}, {128, 0, 0}, {0, 128, 0}};  // shorter than the classes
  return rt::serialize_model(header, blobs);
}

std::vector<unsigned char> random_rgb(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(g() & 255u);
  return v;
}

// What `bfcn infer` computes: bytes / 255 into [3][h][w], then the engine.
void engine_run(const rt::Model& m, const unsigned char* rgb, int h, int w, size_t stride,
                std::vector<float>* logits, std::vector<uint8_t>* labels) {
  std::vector<float> x(size_t(3) * h * w);
  for (int y = 0; y < h; ++y)
    for (int i = 0; i < w; ++i)
      for (int c = 0; c < 3; ++c)
        x[size_t(c) * h * w + size_t(y) * w + i] =
            rgb[size_t(y) * stride + size_t(i) * 3 + c] / 255.0f;
  m.run(x.data(), h, w, logits, labels);
}

struct ModelPtr {
  bfcn_model* p = nullptr;
  ~ModelPtr() { bfcn_model_free(p); }
};

}  // namespace

TEST_CASE("capi: a model loads from a file and from memory with its metadata", "[deploy][capi]") {
  const std::vector<uint8_t> bytes = synthetic_bytes();
  test::TempDir tmp("bfcn_capi");
  const std::string path = (tmp / "m.bfcn").string();
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  ModelPtr f, m;
  REQUIRE(bfcn_model_load_file(path.c_str(), &f.p) == BFCN_OK);
  REQUIRE(bfcn_model_load_memory(bytes.data(), bytes.size(), &m.p) == BFCN_OK);
  CHECK(std::string(bfcn_version()).find('.') != std::string::npos);
  for (bfcn_model* p : {f.p, m.p}) {
    CHECK(bfcn_model_num_classes(p) == kClasses);
    CHECK(std::string(bfcn_model_class_name(p, 0)) == "bg");
    CHECK(std::string(bfcn_model_class_name(p, 4)) == "d");
    CHECK(bfcn_model_class_name(p, 5) == nullptr);
    CHECK(bfcn_model_class_name(p, -1) == nullptr);
    unsigned char rgb[3] = {9, 9, 9};
    REQUIRE(bfcn_model_palette(p, 1, rgb) == BFCN_OK);
    CHECK((rgb[0] == 128 && rgb[1] == 0 && rgb[2] == 0));
    REQUIRE(bfcn_model_palette(p, 4, rgb) == BFCN_OK);  // beyond the file's palette: black
    CHECK((rgb[0] == 0 && rgb[1] == 0 && rgb[2] == 0));
    CHECK(bfcn_model_palette(p, 5, rgb) == BFCN_ERROR_ARGUMENT);
    CHECK_THAT(bfcn_last_error(), Catch::Contains("class 5 out of range 0..4"));
    int h = -1, w = -1;
    REQUIRE(bfcn_model_input_size(p, &h, &w) == BFCN_OK);
    CHECK((h == 0 && w == 0));
  }
  CHECK(bfcn_model_num_classes(nullptr) == -1);
  bfcn_model_free(nullptr);
}

TEST_CASE("capi: labels and logits equal the engine's at the image's size", "[deploy][capi]") {
  const std::vector<uint8_t> bytes = synthetic_bytes();
  const rt::Model ref = rt::Model::from_file(rt::parse_model("synthetic", bytes));
  ModelPtr m;
  REQUIRE(bfcn_model_load_memory(bytes.data(), bytes.size(), &m.p) == BFCN_OK);
  std::set<unsigned char> seen;
  for (auto [h, w, pad] : {std::tuple{45, 61, 0}, std::tuple{64, 64, 7}, std::tuple{33, 17, 1}}) {
    INFO(h << "x" << w << " row padding " << pad);
    const size_t stride = size_t(3) * w + size_t(pad);
    const auto rgb = random_rgb(stride * h, uint32_t(h * 1000 + w));
    std::vector<float> want_logits;
    std::vector<uint8_t> want;
    engine_run(ref, rgb.data(), h, w, stride, &want_logits, &want);
    std::vector<unsigned char> labels(size_t(h) * w, 255), only(size_t(h) * w, 255);
    std::vector<float> logits(size_t(kClasses) * h * w, -1.0f);
    REQUIRE(bfcn_model_run(m.p, rgb.data(), h, w, pad ? stride : 0, labels.data(), logits.data()) ==
            BFCN_OK);
    REQUIRE(bfcn_model_run(m.p, rgb.data(), h, w, pad ? stride : 0, only.data(), nullptr) ==
            BFCN_OK);
    CHECK(std::equal(labels.begin(), labels.end(), want.begin(), want.end()));
    CHECK(only == labels);
    CHECK(logits == want_logits);
    seen.insert(labels.begin(), labels.end());
  }
  CHECK(seen.size() > 1);  // not a flat map
}

TEST_CASE("capi: a set input size resizes the image in and the logits out", "[deploy][capi]") {
  const std::vector<uint8_t> bytes = synthetic_bytes();
  const rt::Model ref = rt::Model::from_file(rt::parse_model("synthetic", bytes));
  ModelPtr m;
  REQUIRE(bfcn_model_load_memory(bytes.data(), bytes.size(), &m.p) == BFCN_OK);
  REQUIRE(bfcn_model_set_input_size(m.p, 32, 48) == BFCN_OK);
  int ih = 0, iw = 0;
  REQUIRE(bfcn_model_input_size(m.p, &ih, &iw) == BFCN_OK);
  CHECK((ih == 32 && iw == 48));
  const int h = 45, w = 61;
  const int64_t pix = int64_t(h) * w;
  const auto rgb = random_rgb(size_t(3) * pix, 7);
  std::vector<float> x(size_t(3) * pix), xr(size_t(3) * 32 * 48), small, full(kClasses * pix);
  for (int64_t p = 0; p < pix; ++p)
    for (int c = 0; c < 3; ++c) x[size_t(c * pix + p)] = rgb[size_t(p * 3 + c)] / 255.0f;
  upsample_bilinear_forward(x.data(), xr.data(), 3, h, w, 32, 48, false);
  ref.run(xr.data(), 32, 48, &small, nullptr);
  upsample_bilinear_forward(small.data(), full.data(), kClasses, 32, 48, h, w, false);
  std::vector<unsigned char> labels(static_cast<size_t>(pix)), labels2(static_cast<size_t>(pix));
  std::vector<float> logits(full.size());
  REQUIRE(bfcn_model_run(m.p, rgb.data(), h, w, 0, labels.data(), logits.data()) == BFCN_OK);
  REQUIRE(bfcn_model_run(m.p, rgb.data(), h, w, 0, labels2.data(), nullptr) == BFCN_OK);
  CHECK(logits == full);
  CHECK(labels2 == labels);
  bool argmax_ok = true;
  for (int64_t p = 0; p < pix; ++p) {
    int best = 0;
    for (int c = 1; c < kClasses; ++c)
      if (full[size_t(best * pix + p)] < full[size_t(c * pix + p)]) best = c;
    argmax_ok = argmax_ok && labels[size_t(p)] == best;
  }
  CHECK(argmax_ok);
  REQUIRE(bfcn_model_set_input_size(m.p, 0, 0) == BFCN_OK);  // back to the image's size
  std::vector<uint8_t> want;
  engine_run(ref, rgb.data(), h, w, size_t(3) * w, nullptr, &want);
  REQUIRE(bfcn_model_run(m.p, rgb.data(), h, w, 0, labels.data(), nullptr) == BFCN_OK);
  CHECK(std::equal(labels.begin(), labels.end(), want.begin(), want.end()));
}

TEST_CASE("capi: one model runs from several threads with any thread count", "[deploy][capi]") {
  const std::vector<uint8_t> bytes = synthetic_bytes();
  api::Model m(bytes.data(), bytes.size());
  const int h = 40, w = 52;
  const auto a = random_rgb(size_t(3) * h * w, 1), b = random_rgb(size_t(3) * h * w, 2);
  const auto want_a = m.run(a.data(), h, w), want_b = m.run(b.data(), h, w);
  REQUIRE(want_a != want_b);
  m.set_threads(1);
  CHECK(m.run(a.data(), h, w) == want_a);
  m.set_threads(2);
  std::vector<unsigned char> got_a, got_b;
  std::thread ta([&] {
    for (int i = 0; i < 3; ++i) got_a = m.run(a.data(), h, w);
  });
  std::thread tb([&] {
    for (int i = 0; i < 3; ++i) got_b = m.run(b.data(), h, w);
  });
  ta.join();
  tb.join();
  CHECK(got_a == want_a);
  CHECK(got_b == want_b);
  // The int8 stem: close to the FP32 stem's labels, and back to them exactly when off.
  m.set_stem_int8(true);
  const auto int8_a = m.run(a.data(), h, w);
  int same = 0;
  for (size_t i = 0; i < int8_a.size(); ++i) same += int8_a[i] == want_a[i];
  CHECK(same > int(int8_a.size()) * 9 / 10);
  m.set_stem_int8(false);
  CHECK(m.run(a.data(), h, w) == want_a);
  CHECK(m.class_name(2) == "b");
  CHECK(m.color(1) == std::vector<unsigned char>{128, 0, 0});
  CHECK_THROWS_AS(m.class_name(9), api::Error);
}

TEST_CASE("capi: errors are a status and a message, never an exception", "[deploy][capi]") {
  test::TempDir tmp("bfcn_capi_err");
  ModelPtr m;
  const std::string missing = (tmp / "missing.bfcn").string();
  CHECK(bfcn_model_load_file(missing.c_str(), &m.p) == BFCN_ERROR_IO);
  CHECK(m.p == nullptr);
  CHECK_THAT(bfcn_last_error(), Catch::Contains("missing.bfcn"));
  CHECK(bfcn_model_load_file(nullptr, &m.p) == BFCN_ERROR_ARGUMENT);
  CHECK(bfcn_model_load_file(missing.c_str(), nullptr) == BFCN_ERROR_ARGUMENT);

  std::vector<uint8_t> bytes = synthetic_bytes();
  bytes[bytes.size() / 2] ^= 0x40;  // the checksum no longer matches
  CHECK(bfcn_model_load_memory(bytes.data(), bytes.size(), &m.p) == BFCN_ERROR_IO);
  CHECK_THAT(bfcn_last_error(), Catch::Contains("(memory buffer)"));
  CHECK(bfcn_model_load_memory(bytes.data(), 10, &m.p) == BFCN_ERROR_IO);
  CHECK(bfcn_model_load_memory(nullptr, 0, &m.p) == BFCN_ERROR_IO);
  CHECK(bfcn_model_load_memory(nullptr, 5, &m.p) == BFCN_ERROR_ARGUMENT);
  CHECK(m.p == nullptr);

  bytes = synthetic_bytes();
  REQUIRE(bfcn_model_load_memory(bytes.data(), bytes.size(), &m.p) == BFCN_OK);
  CHECK(std::string(bfcn_last_error()).empty() == false);  // the last failure is kept
  std::vector<unsigned char> rgb(3 * 64 * 64, 100), labels(64 * 64);
  CHECK(bfcn_model_run(m.p, rgb.data(), 0, 64, 0, labels.data(), nullptr) == BFCN_ERROR_ARGUMENT);
  CHECK_THAT(bfcn_last_error(), Catch::Contains("0x64"));
  CHECK(bfcn_model_run(m.p, rgb.data(), 64, 64, 100, labels.data(), nullptr) ==
        BFCN_ERROR_ARGUMENT);
  CHECK_THAT(bfcn_last_error(), Catch::Contains("row_stride 100"));
  CHECK(bfcn_model_run(m.p, nullptr, 64, 64, 0, labels.data(), nullptr) == BFCN_ERROR_ARGUMENT);
  CHECK(bfcn_model_run(m.p, rgb.data(), 64, 64, 0, nullptr, nullptr) == BFCN_ERROR_ARGUMENT);
  CHECK(bfcn_model_set_threads(m.p, -1) == BFCN_ERROR_ARGUMENT);
  CHECK(bfcn_model_set_stem_int8(m.p, 2) == BFCN_ERROR_ARGUMENT);
  CHECK_THAT(bfcn_last_error(), Catch::Contains("got 2"));
  CHECK(bfcn_model_set_stem_int8(m.p, 16) == BFCN_ERROR_ARGUMENT);
  CHECK_THAT(bfcn_last_error(), Catch::Contains("or 8 (8-bit weights), got 16"));
  {  // the int8 stem's two weight widths: 1 is 15, and 8 gives other logits (on a varied image:
     // a flat one's stem codes agree)
    std::vector<unsigned char> varied(3 * 64 * 64);
    for (size_t i = 0; i < varied.size(); ++i)
      varied[i] = static_cast<unsigned char>((i * 37) % 251);
    std::vector<float> l15(size_t(kClasses) * 64 * 64), l1(l15.size()), l8(l15.size());
    REQUIRE(bfcn_model_set_stem_int8(m.p, 15) == BFCN_OK);
    REQUIRE(bfcn_model_run(m.p, varied.data(), 64, 64, 0, labels.data(), l15.data()) == BFCN_OK);
    REQUIRE(bfcn_model_set_stem_int8(m.p, 1) == BFCN_OK);
    REQUIRE(bfcn_model_run(m.p, varied.data(), 64, 64, 0, labels.data(), l1.data()) == BFCN_OK);
    REQUIRE(bfcn_model_set_stem_int8(m.p, 8) == BFCN_OK);
    REQUIRE(bfcn_model_run(m.p, varied.data(), 64, 64, 0, labels.data(), l8.data()) == BFCN_OK);
    CHECK(l1 == l15);
    CHECK(l8 != l15);
    REQUIRE(bfcn_model_set_stem_int8(m.p, 0) == BFCN_OK);
  }
  CHECK(bfcn_model_set_stem_int8(nullptr, 1) == BFCN_ERROR_ARGUMENT);
  CHECK(bfcn_model_set_input_size(m.p, -1, 5) == BFCN_ERROR_ARGUMENT);
  CHECK(bfcn_model_set_input_size(m.p, 0, 5) == BFCN_ERROR_ARGUMENT);
  CHECK(bfcn_model_set_input_size(nullptr, 5, 5) == BFCN_ERROR_ARGUMENT);
  try {
    api::Model bad(missing);
    FAIL("no exception");
  } catch (const api::Error& e) {
    CHECK(e.status() == BFCN_ERROR_IO);
    CHECK_THAT(e.what(), Catch::Contains("missing.bfcn"));
  }
}
