// `bfcn infer` on a video: a short clip written here (mp4v in .mp4, MJPG in .avi) is segmented
// by a random W1A2 export. Written losslessly (FFV1 in .mkv), every frame of the overlay equals
// the blend of that decoded input frame with the colours of its single-image `bfcn infer` label
// map; the lossy outputs keep the frame count and size and stay close to that blend. Videos that
// cannot be read or written are exit-1 errors naming the file.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/videoio.hpp>
#include <string>
#include <vector>

#include "datasets/image_io.h"
#include "runtime/engine.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_checkpoint.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {

constexpr int kW = 72, kH = 48, kFrames = 5;

int fourcc_code(const std::string& cc) {
  return cv::VideoWriter::fourcc(cc[0], cc[1], cc[2], cc[3]);
}

// A moving bright square on a gradient: frames differ, and the network sees structure.
cv::Mat make_frame(int k) {
  cv::Mat m(kH, kW, CV_8UC3);
  for (int y = 0; y < kH; ++y)
    for (int x = 0; x < kW; ++x) {
      const bool square = x >= 8 + 9 * k && x < 28 + 9 * k && y >= 12 && y < 34;
      auto* p = m.ptr<uint8_t>(y) + 3 * x;
      p[0] = uint8_t(square ? 230 : 40 + 2 * x);
      p[1] = uint8_t(square ? 220 : 60 + 3 * y);
      p[2] = uint8_t(square ? 30 : 120 + x + y);
    }
  return m;
}

// Writes kFrames frames; false when this OpenCV build cannot write the codec/container.
bool write_clip(const fs::path& file, const std::string& cc) {
  cv::VideoWriter w(file.string(), fourcc_code(cc), 10.0, cv::Size(kW, kH));
  if (!w.isOpened()) return false;
  for (int k = 0; k < kFrames; ++k) w.write(make_frame(k));
  w.release();
  return fs::exists(file) && fs::file_size(file) > 0;
}

std::vector<cv::Mat> read_frames(const fs::path& file) {
  cv::VideoCapture cap(file.string());
  INFO(file.string());
  REQUIRE(cap.isOpened());
  std::vector<cv::Mat> frames;
  cv::Mat f;
  while (cap.read(f) && !f.empty()) frames.push_back(f.clone());
  return frames;
}

// The documented overlay: (frame * (256 - a) + colour * a + 128) >> 8, a = round(256 alpha).
cv::Mat expected_overlay(const cv::Mat& bgr, const LabelMap& labels,
                         const std::vector<std::array<uint8_t, 3>>& palette, double alpha) {
  const int a = int(std::lround(alpha * 256));
  cv::Mat out(bgr.rows, bgr.cols, CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y)
    for (int x = 0; x < bgr.cols; ++x) {
      const uint8_t l = labels.data[size_t(y) * size_t(bgr.cols) + size_t(x)];
      for (int c = 0; c < 3; ++c) {
        const int colour = l < palette.size() ? palette[l][size_t(2 - c)] : 0;
        out.ptr<uint8_t>(y)[3 * x + c] =
            uint8_t((bgr.ptr<uint8_t>(y)[3 * x + c] * (256 - a) + colour * a + 128) >> 8);
      }
    }
  return out;
}

test::RunResult run_ok(const std::string& cmd) {
  auto r = test::run_command(cmd);
  INFO(cmd << "\n" << r.output);
  REQUIRE(r.status == 0);
  return r;
}

}  // namespace

TEST_CASE("infer video: the overlay of every frame equals single-image infer's labels blended in",
          "[deploy][video]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_video_infer");
  // Inputs as a user would have them (lossy), and the lossless output the exact check needs.
  std::vector<std::pair<std::string, std::string>> inputs;  // file name, fourcc
  for (const auto& [name, cc] : {std::pair<std::string, std::string>{"clip.mp4", "mp4v"},
                                 std::pair<std::string, std::string>{"clip.avi", "MJPG"}})
    if (write_clip(tmp / name, cc))
      inputs.emplace_back(name, cc);
    else
      WARN("this OpenCV build cannot write " << cc << " in " << name);
  if (inputs.empty()) BFCN_SKIP("this OpenCV build writes neither mp4v/.mp4 nor MJPG/.avi");
  if (!write_clip(tmp / "probe.mkv", "FFV1"))
    BFCN_SKIP("this OpenCV build cannot write FFV1/.mkv (the lossless output the check needs)");

  test::save_random_w1a2_checkpoint(tmp / "m.h5", 5, tmp / "none");
  const std::string bin = test::bfcn_binary().string(), m = (tmp / "m.bfcn").string();
  run_ok(bin + " export --checkpoint " + (tmp / "m.h5").string() + " --out " + m);
  const auto palette = rt::Model::load(m).palette();

  for (const auto& [name, cc] : inputs) {
    INFO("input " << name << " (" << cc << ")");
    const fs::path in = tmp / name;
    // The decoded input frames (the same decoder bfcn uses) as PNGs -> single-image infer.
    const std::vector<cv::Mat> frames = read_frames(in);
    REQUIRE(frames.size() == size_t(kFrames));
    const fs::path pngs = tmp / (name + "_frames"), labels_dir = tmp / (name + "_labels");
    fs::create_directories(pngs);
    for (int k = 0; k < kFrames; ++k)
      REQUIRE(cv::imwrite((pngs / ("f" + std::to_string(k) + ".png")).string(), frames[size_t(k)]));
    run_ok(bin + " infer --model " + m + " --input " + pngs.string() + " --out " +
           labels_dir.string());
    std::vector<LabelMap> labels;
    for (int k = 0; k < kFrames; ++k)
      labels.push_back(read_label_png(labels_dir / ("f" + std::to_string(k) + ".png")));

    // Lossless output: bit-exact overlay, with a non-default alpha.
    const fs::path exact = tmp / (name + "_overlay.mkv");
    const auto r = run_ok(bin + " infer --model " + m + " --input " + in.string() + " --out " +
                          exact.string() + " --alpha 0.3 --threads 2");
    CHECK(r.output.find("5 frames 72x48") != std::string::npos);
    CHECK(r.output.find("inference") != std::string::npos);
    CHECK(r.output.find("fps") != std::string::npos);
    const std::vector<cv::Mat> got = read_frames(exact);
    REQUIRE(got.size() == size_t(kFrames));
    for (int k = 0; k < kFrames; ++k) {
      INFO("frame " << k);
      const cv::Mat want = expected_overlay(frames[size_t(k)], labels[size_t(k)], palette, 0.3);
      REQUIRE(got[size_t(k)].size() == want.size());
      CHECK(cv::norm(got[size_t(k)], want, cv::NORM_INF) == 0.0);
      CHECK(cv::norm(got[size_t(k)], frames[size_t(k)], cv::NORM_INF) > 0.0);  // colours blended
    }

    // Lossy outputs (default codec by extension): frame count, size, and close to the blend.
    for (const std::string& out_name : {std::string("overlay.mp4"), std::string("overlay.avi")}) {
      INFO("output " << out_name);
      const fs::path out = tmp / (name + "_" + out_name);
      run_ok(bin + " infer --model " + m + " --input " + in.string() + " --out " + out.string());
      const std::vector<cv::Mat> lossy = read_frames(out);
      REQUIRE(lossy.size() == size_t(kFrames));
      for (int k = 0; k < kFrames; ++k) {
        REQUIRE(lossy[size_t(k)].cols == kW);
        REQUIRE(lossy[size_t(k)].rows == kH);
        const cv::Mat want = expected_overlay(frames[size_t(k)], labels[size_t(k)], palette, 0.5);
        const double err = cv::norm(lossy[size_t(k)], want, cv::NORM_L1) / (kW * kH * 3.0);
        const double raw =
            cv::norm(lossy[size_t(k)], frames[size_t(k)], cv::NORM_L1) / (kW * kH * 3.0);
        INFO("frame " << k << ": mean |out - overlay| " << err << ", |out - frame| " << raw);
        CHECK(err < 8.0);
        CHECK(raw > 3.0 * err);
      }
    }
  }
}

TEST_CASE("infer video: unreadable and unwritable videos are errors naming the file",
          "[deploy][video]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_video_errors");
  test::save_random_w1a2_checkpoint(tmp / "m.h5", 5, tmp / "none");
  // When FFmpeg cannot open a file, OpenCV probes its other backends (GStreamer, libdc1394),
  // which keep allocations LeakSanitizer reports. They are inside OpenCV (scripts/lsan.supp
  // suppresses libopencv), but these libraries have no frame pointers, so only the slow unwinder
  // sees that frame: use it for the processes of this test.
  const std::string bin =
      "ASAN_OPTIONS=\"$ASAN_OPTIONS:fast_unwind_on_malloc=0\" " + test::bfcn_binary().string();
  const std::string m = (tmp / "m.bfcn").string();
  run_ok(bin + " export --checkpoint " + (tmp / "m.h5").string() + " --out " + m);
  { std::ofstream(tmp / "broken.mp4") << "not a video at all"; }
  auto r = test::run_command(bin + " infer --model " + m + " --input " +
                             (tmp / "broken.mp4").string() + " --out " + (tmp / "o.mp4").string());
  CHECK(r.status == 1);
  CHECK(r.output.find("broken.mp4") != std::string::npos);
  CHECK(r.output.find("cannot open the video") != std::string::npos);
  CHECK(!fs::exists(tmp / "o.mp4"));

  if (!write_clip(tmp / "clip.avi", "MJPG")) BFCN_SKIP("this OpenCV build cannot write MJPG/.avi");
  // An output extension without a default codec, and a codec the writer does not know.
  r = test::run_command(bin + " infer --model " + m + " --input " + (tmp / "clip.avi").string() +
                        " --out " + (tmp / "o.xyz").string());
  CHECK(r.status == 1);
  CHECK(r.output.find("o.xyz") != std::string::npos);
  r = test::run_command(bin + " infer --model " + m + " --input " + (tmp / "clip.avi").string() +
                        " --out " + (tmp / "o.avi").string() + " --fourcc QQQQ");
  CHECK(r.status == 1);
  CHECK(r.output.find("o.avi") != std::string::npos);
  CHECK(r.output.find("QQQQ") != std::string::npos);
  r = test::run_command(bin + " infer --model " + m + " --input " + (tmp / "clip.avi").string() +
                        " --out " + (tmp / "o.avi").string() + " --fourcc MJPEG");
  CHECK(r.status == 1);
  CHECK(r.output.find("MJPEG") != std::string::npos);
}
