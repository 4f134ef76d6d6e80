// Label/image file I/O: raw palette indices from real VOC PNGs, grayscale Aug labels, round trips,
// and the rejection of RGB/16-bit/truncated inputs with the file named.
#include "datasets/image_io.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>

#include "core/error.h"
#include "datasets/palette.h"
#include "tests/support/test_support.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {
fs::path voc_root() { return test::shared_dir() / "data/voc_sample/VOCdevkit/VOC2012"; }
std::map<int, int64_t> histogram(const LabelMap& m) {
  std::map<int, int64_t> h;
  for (uint8_t v : m.data) ++h[v];
  return h;
}
void write_bytes(const fs::path& f, const std::vector<uint8_t>& b) {
  std::ofstream o(f, std::ios::binary);
  o.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}
}  // namespace

TEST_CASE("voc palette has the interleaved-bit colormap", "[datasets]") {
  Palette p = voc_palette();
  REQUIRE(p.size() == 256);
  CHECK(p[0] == std::array<uint8_t, 3>{0, 0, 0});
  CHECK(p[1] == std::array<uint8_t, 3>{128, 0, 0});
  CHECK(p[15] == std::array<uint8_t, 3>{192, 128, 128});
  CHECK(p[255] == std::array<uint8_t, 3>{224, 224, 192});
  Palette c = cityscapes_train_palette();
  CHECK(c[0] == std::array<uint8_t, 3>{128, 64, 128});
  CHECK(c[18] == std::array<uint8_t, 3>{119, 11, 32});
  CHECK(c[255] == std::array<uint8_t, 3>{0, 0, 0});
}

TEST_CASE("VOC palette label reads as raw indices with the README counts", "[datasets]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: skipping real VOC sample");
  LabelMap m = read_label_png(voc_root() / "SegmentationClass/2007_000063.png");
  CHECK(m.was_palette);
  CHECK(m.width == 500);
  CHECK(m.height == 375);
  std::map<int, int64_t> want{{0, 72224}, {9, 78930}, {12, 27632}, {255, 8714}};
  CHECK(histogram(m) == want);
  // The grayscale SegmentationClassAug copy holds the same values, pixel for pixel.
  for (const char* id : {"2007_000063", "2007_000129", "2011_000003"}) {
    LabelMap pal = read_label_png(voc_root() / "SegmentationClass" / (std::string(id) + ".png"));
    LabelMap aug = read_label_png(voc_root() / "SegmentationClassAug" / (std::string(id) + ".png"));
    CHECK_FALSE(aug.was_palette);
    CHECK(pal.data == aug.data);
  }
  ImageRGB img = read_image_rgb(voc_root() / "JPEGImages/2007_000063.jpg");
  CHECK(img.width == 500);
  CHECK(img.height == 375);
}

TEST_CASE("label PNG round trip, palette and grayscale, deterministic bytes", "[datasets]") {
  test::TempDir dir;
  std::vector<uint8_t> labels(7 * 5);
  for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>((i * 37) % 256);
  Palette pal = voc_palette();
  write_label_png(dir / "p.png", labels.data(), 5, 7, &pal);
  write_label_png(dir / "p2.png", labels.data(), 5, 7, &pal);
  write_label_png(dir / "g.png", labels.data(), 5, 7, nullptr);
  LabelMap p = read_label_png(dir / "p.png");
  LabelMap g = read_label_png(dir / "g.png");
  CHECK(p.was_palette);
  CHECK_FALSE(g.was_palette);
  CHECK(p.height == 5);
  CHECK(p.width == 7);
  CHECK(p.data == labels);
  CHECK(g.data == labels);
  CHECK(read_file_bytes(dir / "p.png") == read_file_bytes(dir / "p2.png"));
  // OpenCV sees the palette colours, proving the file really is a palette PNG.
  cv::Mat bgr = cv::imread((dir / "p.png").string(), cv::IMREAD_COLOR);
  const auto want = pal[labels[1]];
  CHECK(bgr.at<cv::Vec3b>(0, 1)[2] == want[0]);
  CHECK(bgr.at<cv::Vec3b>(0, 1)[1] == want[1]);
}

TEST_CASE("image RGB round trip keeps channel order", "[datasets]") {
  test::TempDir dir;
  ImageRGB img;
  img.height = 4;
  img.width = 6;
  img.data.resize(4 * 6 * 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>(i * 11);
  write_image_rgb(dir / "a.png", img);
  ImageRGB back = read_image_rgb(dir / "a.png");
  CHECK(back.data == img.data);
  // A pure red JPEG decodes as red in R (channel 0).
  ImageRGB red;
  red.height = red.width = 16;
  red.data.resize(16 * 16 * 3, 0);
  for (size_t i = 0; i < red.data.size(); i += 3) red.data[i] = 250;
  write_image_rgb(dir / "r.jpg", red);
  ImageRGB rb = read_image_rgb(dir / "r.jpg");
  CHECK(rb.pixel(8, 8)[0] > 200);
  CHECK(rb.pixel(8, 8)[2] < 50);
}

TEST_CASE("bad label and image files are rejected naming the file", "[datasets][bad]") {
  test::TempDir dir;
  cv::Mat rgb(8, 8, CV_8UC3, cv::Scalar(0, 0, 128));
  cv::imwrite((dir / "rgb.png").string(), rgb);
  CHECK_THROWS_WITH(read_label_png(dir / "rgb.png"), Catch::Contains("rgb.png") &&
                                                         Catch::Contains("but got RGB") &&
                                                         Catch::Contains("colour visualisation"));
  cv::Mat g16(8, 8, CV_16UC1, cv::Scalar(300));
  cv::imwrite((dir / "g16.png").string(), g16);
  CHECK_THROWS_WITH(read_label_png(dir / "g16.png"),
                    Catch::Contains("g16.png") && Catch::Contains("16-bit"));
  CHECK_THROWS_AS(read_label_png(dir / "missing.png"), IoError);
  CHECK_THROWS_WITH(read_label_png(dir / "missing.png"), Catch::Contains("missing.png"));

  std::vector<uint8_t> labels(64 * 64, 3);
  write_label_png(dir / "ok.png", labels.data(), 64, 64, nullptr);
  std::vector<uint8_t> bytes = read_file_bytes(dir / "ok.png");
  bytes.resize(bytes.size() / 2);
  write_bytes(dir / "trunc.png", bytes);
  CHECK_THROWS_WITH(read_label_png(dir / "trunc.png"), Catch::Contains("trunc.png"));
  write_bytes(dir / "junk.png", {1, 2, 3, 4, 5, 6, 7, 8, 9});
  CHECK_THROWS_WITH(read_label_png(dir / "junk.png"), Catch::Contains("not a PNG"));

  ImageRGB img;
  img.height = 64;
  img.width = 64;
  img.data.resize(64 * 64 * 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = static_cast<uint8_t>(i * 7);
  write_image_rgb(dir / "x.jpg", img);
  bytes = read_file_bytes(dir / "x.jpg");
  bytes.resize(bytes.size() * 2 / 3);
  write_bytes(dir / "t.jpg", bytes);
  CHECK_THROWS_WITH(read_image_rgb(dir / "t.jpg"),
                    Catch::Contains("t.jpg") && Catch::Contains("truncated"));
  write_bytes(dir / "bad.jpg", {0x00, 0x11, 0x22});
  CHECK_THROWS_WITH(read_image_rgb(dir / "bad.jpg"), Catch::Contains("bad.jpg"));
  CHECK_THROWS_WITH(read_image_rgb(dir / "none.jpg"), Catch::Contains("none.jpg"));
}

TEST_CASE("a tiny file declaring a 100000 x 100000 image is refused before allocation",
          "[datasets][bad]") {
  test::TempDir dir;
  // PNG: signature + an IHDR chunk claiming 100000 x 100000, 8-bit palette (33 bytes, no data).
  std::vector<uint8_t> png = {0x89, 'P',  'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0,    0, 0,
                              13,   'I',  'H', 'D', 'R',  0,    1,    0x86, 0xA0, 0, 1,
                              0x86, 0xA0, 8,   3,   0,    0,    0,    0,    0,    0, 0};
  const uint32_t crc = crc32(0, png.data() + 12, 17);
  for (int i = 0; i < 4; ++i) png[29 + i] = uint8_t(crc >> (24 - 8 * i));
  write_bytes(dir / "huge.png", png);
  int64_t w = 0, h = 0;
  REQUIRE(peek_image_size(png.data(), png.size(), &w, &h));
  CHECK((w == 100000 && h == 100000));
  CHECK_THROWS_WITH(read_label_png(dir / "huge.png"),
                    Catch::Contains("huge.png") && Catch::Contains("100000x100000") &&
                        Catch::Contains("refused before decoding"));
  CHECK_THROWS_WITH(read_image_rgb(dir / "huge.png"),
                    Catch::Contains("huge.png") && Catch::Contains("100000x100000"));
  // JPEG: SOI, SOF0 claiming 65000 x 65000 (the JPEG maximum), EOI: 21 bytes.
  const std::vector<uint8_t> jpg = {0xFF, 0xD8, 0xFF, 0xC0, 0,    11,   8, 0xFD, 0xE8, 0xFD, 0xE8,
                                    1,    1,    0x11, 0,    0xFF, 0xDA, 0, 2,    0xFF, 0xD9};
  write_bytes(dir / "huge.jpg", jpg);
  REQUIRE(peek_image_size(jpg.data(), jpg.size(), &w, &h));
  CHECK((w == 65000 && h == 65000));
  CHECK_THROWS_WITH(read_image_rgb(dir / "huge.jpg"),
                    Catch::Contains("huge.jpg") && Catch::Contains("65000x65000"));
  // Real headers read back their sizes.
  ImageRGB img;
  img.height = 5;
  img.width = 7;
  img.data.assign(5 * 7 * 3, 100);
  for (const char* name : {"s.jpg", "s.png"}) {
    write_image_rgb(dir / name, img);
    const std::vector<uint8_t> b = read_file_bytes(dir / name);
    REQUIRE(peek_image_size(b.data(), b.size(), &w, &h));
    CHECK((w == 7 && h == 5));
  }
  // A BMP (which OpenCV would decode) is not a JPEG or PNG.
  write_bytes(dir / "x.bmp", {'B', 'M', 0, 0, 0, 0, 0, 0, 0, 0, 54, 0, 0, 0});
  CHECK_THROWS_WITH(read_image_rgb(dir / "x.bmp"), Catch::Contains("not a JPEG or PNG"));
}
