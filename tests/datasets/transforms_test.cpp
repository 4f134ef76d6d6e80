// Augmentation: image/label alignment after scale + crop + flip (the image colour encodes the
// class), ignore padding, nearest-neighbour labels, jitter keeps labels, normalisation maths.
#include "datasets/transforms.h"

#include <catch2/catch.hpp>
#include <set>

#include "core/error.h"
#include "core/rng.h"
#include "tests/datasets/fixtures.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {
// Every label pixel whose 3x3 neighbourhood is one class must show that class's colour (within
// the bilinear blur tolerance); padded (255) pixels must show the pad colour.
void check_aligned(const RawSample& s, const std::array<uint8_t, 3>& pad, int tol) {
  int interior = 0;
  for (int y = 1; y + 1 < s.label.height; ++y)
    for (int x = 1; x + 1 < s.label.width; ++x) {
      const uint8_t c = s.label.at(y, x);
      bool uniform = true;
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) uniform = uniform && s.label.at(y + dy, x + dx) == c;
      if (!uniform) continue;
      const auto want = c == 255 ? pad : test::class_colour(c);
      const uint8_t* p = s.image.pixel(y, x);
      for (int k = 0; k < 3; ++k) REQUIRE(std::abs(int(p[k]) - int(want[k])) <= tol);
      ++interior;
    }
  REQUIRE(interior > s.label.height * s.label.width / 5);
}
std::set<int> values(const LabelMap& m) { return {m.data.begin(), m.data.end()}; }
}  // namespace

TEST_CASE("scale uses nearest labels: no new values, alignment kept", "[datasets][augment]") {
  for (float f : {0.5f, 0.73f, 1.0f, 1.5f, 2.0f}) {
    RawSample s = test::make_pattern_sample(3, 40, 56, 5);
    const std::set<int> before = values(s.label);
    scale_sample(s, f);
    CHECK(s.image.height == static_cast<int>(std::lround(40 * f)));
    CHECK(s.image.width == static_cast<int>(std::lround(56 * f)));
    CHECK(s.label.height == s.image.height);
    std::set<int> after = values(s.label);
    for (int v : after) CHECK(before.count(v) == 1);
    check_aligned(s, {0, 0, 0}, 2);
  }
}

TEST_CASE("pad+crop pads the label with 255 and the image with the pad colour",
          "[datasets][augment]") {
  RawSample s = test::make_pattern_sample(1, 20, 30, 5);
  const RawSample orig = s;
  // Padded to 32x32 (bottom/right); the window at (0,0) is the whole padded sample.
  pad_crop_sample(s, 32, 32, 0, 0, {1, 2, 3});
  REQUIRE(s.image.height == 32);
  REQUIRE(s.image.width == 32);
  CHECK(s.label.at(0, 0) == orig.label.at(0, 0));
  CHECK(s.label.at(19, 29) == orig.label.at(19, 29));
  CHECK(s.label.at(20, 0) == 255);
  CHECK(s.label.at(0, 30) == 255);
  CHECK(s.image.pixel(31, 31)[0] == 1);
  CHECK(s.image.pixel(31, 31)[2] == 3);
  check_aligned(s, {1, 2, 3}, 0);
  // A window inside a larger sample: rows 4..35 of a 40-row sample, columns padded past 30.
  RawSample t = test::make_pattern_sample(1, 40, 30, 5);
  pad_crop_sample(t, 32, 32, 4, 0, {1, 2, 3});
  CHECK(t.label.at(0, 0) == orig.label.at(4, 0));
  CHECK(t.label.at(31, 29) == test::make_pattern_sample(1, 40, 30, 5).label.at(35, 29));
  CHECK(t.label.at(31, 30) == 255);
  CHECK_THROWS_AS(pad_crop_sample(t, 32, 32, 1, 0, {0, 0, 0}), Error);
  check_aligned(s, {1, 2, 3}, 0);
}

TEST_CASE("flip mirrors image and label together", "[datasets][augment]") {
  RawSample s = test::make_pattern_sample(2, 9, 13, 5);
  const RawSample orig = s;
  flip_sample(s);
  for (int y = 0; y < 9; ++y)
    for (int x = 0; x < 13; ++x) {
      REQUIRE(s.label.at(y, x) == orig.label.at(y, 12 - x));
      REQUIRE(s.image.pixel(y, x)[1] == orig.image.pixel(y, 12 - x)[1]);
    }
  flip_sample(s);
  CHECK(s.image.data == orig.image.data);
}

TEST_CASE("full random pipeline keeps alignment and only adds ignore", "[datasets][augment]") {
  AugmentConfig a;
  a.scale_min = 0.5f;
  a.scale_max = 2.0f;
  a.crop = {48, 48};
  a.flip = true;
  const std::array<float, 3> mean{0.5f, 0.25f, 0.0f};
  const std::array<uint8_t, 3> pad{128, 64, 0};
  bool saw_pad = false;
  int flipped = 0;
  AugmentConfig no_flip = a;
  no_flip.flip = false;
  for (uint64_t seed = 0; seed < 24; ++seed) {
    RawSample s = test::make_pattern_sample(seed, 40, 60, 5);
    Rng rng(seed);
    augment_sample(s, a, mean, rng);
    REQUIRE(s.image.height == 48);
    REQUIRE(s.image.width == 48);
    for (int v : values(s.label)) REQUIRE((v < 5 || v == 255));
    saw_pad = saw_pad || values(s.label).count(255) > 0;
    check_aligned(s, pad, 2);
    // Same seed → same result.
    RawSample t = test::make_pattern_sample(seed, 40, 60, 5);
    Rng rng2(seed);
    augment_sample(t, a, mean, rng2);
    REQUIRE(t.image.data == s.image.data);
    REQUIRE(t.label.data == s.label.data);
    RawSample u = test::make_pattern_sample(seed, 40, 60, 5);
    Rng rng3(seed);
    augment_sample(u, no_flip, mean, rng3);
    flipped += u.label.data != s.label.data;
  }
  CHECK(saw_pad);
  CHECK(flipped >= 4);  // about half of the 24 seeds flip
  CHECK(flipped <= 20);
}

TEST_CASE("jitter changes colours but never labels, identity factors are a no-op",
          "[datasets][augment]") {
  RawSample s = test::make_pattern_sample(0, 16, 16, 5);
  const RawSample orig = s;
  jitter_image(s.image, 1.0f, 1.0f, 1.0f);
  CHECK(s.image.data == orig.image.data);
  AugmentConfig a;
  a.scale_min = a.scale_max = 1.0f;
  a.crop = {0, 0};
  a.flip = false;
  a.jitter = 0.4f;
  Rng rng(5);
  augment_sample(s, a, {0, 0, 0}, rng);
  CHECK(s.label.data == orig.label.data);
  CHECK(s.image.data != orig.image.data);
}

TEST_CASE("normalise gives (rgb/255 - mean)/std in CHW", "[datasets][augment]") {
  ImageRGB img;
  img.height = 1;
  img.width = 2;
  img.data = {255, 0, 51, 0, 255, 102};
  std::vector<float> out(6);
  normalize_image(img, {0.5f, 0.5f, 0.2f}, {0.5f, 0.25f, 0.1f}, out.data());
  CHECK(out[0] == Approx(1.0f));   // R of pixel 0
  CHECK(out[1] == Approx(-1.0f));  // R of pixel 1
  CHECK(out[2] == Approx(-2.0f));  // G of pixel 0
  CHECK(out[3] == Approx(2.0f));   // G of pixel 1
  CHECK(out[4] == Approx(0.0f));   // B of pixel 0 (0.2-0.2)/0.1
  CHECK(out[5] == Approx(2.0f));   // B of pixel 1 (0.4-0.2)/0.1
}
