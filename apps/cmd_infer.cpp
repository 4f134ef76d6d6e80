// `bfcn infer --model M.bfcn --input IMG|DIR --out DIR [--color] [--threads N]`: runs the
// bit-convolution runtime on images and writes <stem>.png label maps (class indices, grayscale)
// and, with --color, <stem>_color.png masks in the model's palette.
// `bfcn infer --model M.bfcn --input clip.mp4 --out overlay.mp4 [--alpha A] [--fourcc CODE]`:
// segments every frame of a video and writes the frames with the label map's colours blended in,
// then prints decode, inference and encode time per frame. Image and video I/O live here, not in
// runtime/ (which must not link OpenCV).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"
#include "datasets/image_io.h"
#include "kernels/bitconv.h"
#include "runtime/engine.h"

namespace fs = std::filesystem;

namespace {

bool is_image(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg";
}

std::string lower_extension(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(),
                 [](unsigned char c) { return char(std::tolower(c)); });
  return e;
}

bool is_video(const fs::path& p) {
  static const char* const kExts[] = {".mp4",  ".avi", ".mov",  ".mkv", ".m4v",
                                      ".webm", ".mpg", ".mpeg", ".wmv"};
  const std::string e = lower_extension(p);
  return std::find(std::begin(kExts), std::end(kExts), e) != std::end(kExts);
}

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The codec for an output name: MJPG in .avi, mp4v in .mp4/.m4v/.mov, FFV1 (lossless) in .mkv.
std::string default_fourcc(const fs::path& out) {
  const std::string e = lower_extension(out);
  if (e == ".avi") return "MJPG";
  if (e == ".mp4" || e == ".m4v" || e == ".mov") return "mp4v";
  if (e == ".mkv") return "FFV1";
  throw bfcn::Error("bfcn infer: --out " + out.string() +
                    ": no default codec for this extension; use .mp4, .avi or .mkv, or give "
                    "--fourcc (e.g. MJPG)");
}

// out = frame + alpha * (colour - frame) per BGR byte, in 1/256 steps (alpha256 = round(256 a)):
// (frame * (256 - alpha256) + colour * alpha256 + 128) >> 8. Labels past the palette are black.
void overlay_labels(const cv::Mat& bgr, const uint8_t* labels, const bfcn::Palette& palette,
                    int alpha256, cv::Mat& out) {
  out.create(bgr.rows, bgr.cols, CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* f = bgr.ptr<uint8_t>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    const uint8_t* l = labels + int64_t(y) * bgr.cols;
    for (int x = 0; x < bgr.cols; ++x)
      for (int c = 0; c < 3; ++c) {  // palette entries are RGB, frames BGR
        const int colour = l[x] < palette.size() ? palette[l[x]][size_t(2 - c)] : 0;
        o[3 * x + c] = uint8_t((f[3 * x + c] * (256 - alpha256) + colour * alpha256 + 128) >> 8);
      }
  }
}

int infer_video(const bfcn::rt::Model& model, const bfcn::Palette& palette, const fs::path& input,
                const fs::path& out, const bfcn::cli::Args& args) {
  cv::VideoCapture cap(input.string());
  BFCN_CHECK_IO(cap.isOpened(), input.string(),
                ": cannot open the video (not a video, or a container/codec this OpenCV build "
                "cannot decode)");
  BFCN_CHECK_IO(!fs::is_directory(out), "bfcn infer: --out ", out.string(),
                " is a folder; a video input writes one video file (e.g. --out overlay.mp4)");
  const std::string fourcc = args.has("fourcc") ? args.require("fourcc") : default_fourcc(out);
  BFCN_CHECK(fourcc.size() == 4,
             "bfcn infer: --fourcc expects 4 characters (e.g. MJPG, mp4v, "
             "FFV1), but got '",
             fourcc, "'");
  const int alpha256 = int(std::lround(args.get_double("alpha", 0.5) * 256.0));
  double fps = cap.get(cv::CAP_PROP_FPS);
  if (!(fps > 0.0 && fps < 1000.0)) fps = 25.0;  // containers without a rate
  if (out.has_parent_path()) fs::create_directories(out.parent_path());

  cv::VideoWriter writer;
  cv::Mat frame, bgr, blended;
  std::vector<float> x;
  std::vector<uint8_t> labels;
  double decode_ms = 0, infer_ms = 0, encode_ms = 0;
  int frames = 0, h = 0, w = 0;
  const auto t_all = Clock::now();
  for (;;) {
    auto t0 = Clock::now();
    if (!cap.read(frame) || frame.empty()) break;
    if (frame.type() == CV_8UC1)
      cv::cvtColor(frame, bgr, cv::COLOR_GRAY2BGR);
    else if (frame.type() == CV_8UC4)
      cv::cvtColor(frame, bgr, cv::COLOR_BGRA2BGR);
    else
      bgr = frame;
    BFCN_CHECK_IO(bgr.type() == CV_8UC3, input.string(), ": frame ", frames,
                  " is not 8-bit colour (OpenCV type ", bgr.type(), ")");
    decode_ms += ms_since(t0);
    if (frames == 0) {
      h = bgr.rows;
      w = bgr.cols;
      const char* cc = fourcc.c_str();
      writer.open(out.string(), cv::VideoWriter::fourcc(cc[0], cc[1], cc[2], cc[3]), fps,
                  cv::Size(w, h));
      BFCN_CHECK_IO(writer.isOpened(), out.string(), ": cannot write a video with codec ", fourcc,
                    " (this OpenCV build or the container does not support it; try "
                    ".avi with --fourcc MJPG)");
    }
    BFCN_CHECK_IO(bgr.rows == h && bgr.cols == w, input.string(), ": frame ", frames, " is ",
                  bgr.cols, "x", bgr.rows, ", the first was ", w, "x", h);

    t0 = Clock::now();  // same input as an image: RGB bytes / 255, planar
    const int64_t hw = int64_t(h) * w;
    x.resize(size_t(3 * hw));
    for (int y = 0; y < h; ++y) {
      const uint8_t* row = bgr.ptr<uint8_t>(y);
      for (int xx = 0; xx < w; ++xx)
        for (int c = 0; c < 3; ++c)
          x[size_t(c * hw + int64_t(y) * w + xx)] = row[3 * xx + (2 - c)] / 255.0f;
    }
    model.run(x.data(), h, w, nullptr, &labels);
    infer_ms += ms_since(t0);

    t0 = Clock::now();
    overlay_labels(bgr, labels.data(), palette, alpha256, blended);
    writer.write(blended);
    encode_ms += ms_since(t0);
    ++frames;
  }
  BFCN_CHECK_IO(frames > 0, input.string(), ": no frame could be decoded");
  auto t0 = Clock::now();
  writer.release();
  encode_ms += ms_since(t0);
  const double total_ms = ms_since(t_all);
  BFCN_CHECK_IO(fs::exists(out) && fs::file_size(out) > 0, out.string(),
                ": the video writer produced no file");
  auto per_frame = [&](double ms) { return ms / frames; };
  std::cout << std::fixed << std::setprecision(2) << input.filename().string() << ": " << frames
            << " frames " << w << "x" << h << " -> " << out.string() << " (" << fourcc << ", "
            << fps << " fps)\n"
            << "decode " << per_frame(decode_ms) << " ms/frame, inference " << per_frame(infer_ms)
            << " ms/frame (" << 1000.0 / per_frame(infer_ms) << " fps), overlay+encode "
            << per_frame(encode_ms) << " ms/frame; end to end " << frames * 1000.0 / total_ms
            << " fps\n";
  return 0;
}

int run_infer(const bfcn::cli::Args& args) {
  const fs::path model_path = args.require("model"), input = args.require("input"),
                 out = args.require("out");
  if (args.has("threads")) omp_set_num_threads(args.get_int("threads"));
  BFCN_CHECK_IO(fs::exists(input), input.string(), ": no such image, folder or video");
  bfcn::rt::Model model = bfcn::rt::Model::load(model_path.string());
  const std::string stem = args.get("stem", "fp32");
  model.set_stem_int8(stem != "fp32", stem == "int8w8" ? 8 : 15);
  bfcn::Palette palette;
  for (const auto& c : model.palette()) palette.push_back(c);
  if (fs::is_regular_file(input) && !is_image(input)) {
    BFCN_CHECK_IO(is_video(input) || cv::VideoCapture(input.string()).isOpened(), input.string(),
                  ": neither an image (.png/.jpg/.jpeg) nor a video OpenCV can open");
    std::cout << "model " << model_path.string() << ": " << model.num_classes()
              << " classes, kernel " << bfcn::bgemm_active().name << "\n";
    return infer_video(model, palette, input, out, args);
  }
  std::vector<fs::path> images;
  if (fs::is_directory(input)) {
    for (const auto& e : fs::directory_iterator(input))
      if (e.is_regular_file() && is_image(e.path())) images.push_back(e.path());
    std::sort(images.begin(), images.end());
    BFCN_CHECK_IO(!images.empty(), input.string(), ": folder holds no .png/.jpg images");
  } else {
    images.push_back(input);
  }
  fs::create_directories(out);
  std::cout << "model " << model_path.string() << ": " << model.num_classes() << " classes, kernel "
            << bfcn::bgemm_active().name << "\n";
  for (const fs::path& p : images) {
    const bfcn::ImageRGB img = bfcn::read_image_rgb(p);
    const int h = img.height, w = img.width;
    std::vector<float> x(size_t(3) * h * w);
    for (int64_t i = 0; i < int64_t(h) * w; ++i)
      for (int c = 0; c < 3; ++c) x[size_t(c) * h * w + i] = img.data[size_t(i) * 3 + c] / 255.0f;
    std::vector<uint8_t> labels;
    const auto t0 = std::chrono::steady_clock::now();
    model.run(x.data(), h, w, nullptr, &labels);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const fs::path dst = out / (p.stem().string() + ".png");
    bfcn::write_label_png(dst, labels.data(), h, w, nullptr);
    if (args.has("color")) {
      bfcn::ImageRGB mask;
      mask.height = h;
      mask.width = w;
      mask.data.resize(size_t(h) * w * 3);
      for (size_t i = 0; i < labels.size(); ++i)
        for (int c = 0; c < 3; ++c)
          mask.data[i * 3 + c] = labels[i] < palette.size() ? palette[labels[i]][size_t(c)] : 0;
      bfcn::write_image_rgb(out / (p.stem().string() + "_color.png"), mask);
    }
    std::cout << p.filename().string() << " " << w << "x" << h << " -> " << dst.string() << " ("
              << ms << " ms)\n";
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("infer", "segment images with a .bfcn model (bit-conv runtime)")
        .describe("Segments images with a .bfcn model on the bit-convolution runtime; writes "
                  "<stem>.png label maps (class indices). A video input (.mp4, .avi, .mkv, "
                  ".mov, ... or any file OpenCV opens as one) writes --out as a video of the "
                  "frames with the label colours blended in and prints decode, inference and "
                  "encode time per frame.")
        .usage("bfcn infer --model MODEL.bfcn --input IMG|DIR --out DIR [--color] [--threads N]\n"
               "       bfcn infer --model MODEL.bfcn --input VIDEO --out OVERLAY.mp4|.avi|.mkv "
               "[--alpha A] [--fourcc CODE] [--threads N]")
        .with_flags(
            {bfcn::cli::text("model", "FILE", ".bfcn model (bfcn export)").needed(),
             bfcn::cli::text("input", "PATH", "an image (.png/.jpg), a folder of them, or a video")
                 .needed(),
             bfcn::cli::text("out", "PATH",
                             "where label PNGs are written (a folder); for a video, the overlay "
                             "video file")
                 .needed(),
             bfcn::cli::boolean("color", "also write <stem>_color.png masks"),
             bfcn::cli::number("alpha", "A", "video: weight of the label colour in the overlay")
                 .range(0, 1)
                 .defaults("0.5"),
             bfcn::cli::text("fourcc", "CODE",
                             "video: output codec (default by --out: .avi MJPG, .mp4 mp4v, "
                             ".mkv FFV1 lossless)"),
             bfcn::cli::integer("threads", "N", "OpenMP threads (default: all)").at_least(1),
             bfcn::cli::choice("stem", {"fp32", "int8", "int8w8"},
                               "the RGB stem in FP32 (the training engine's codes), or in "
                               "integers with VNNI: the image in 8 bits and the weights in 15 "
                               "(int8) or 8 (int8w8, faster, coarser); docs/runtime.md")
                 .defaults("fp32")})
        .example("bfcn infer --model w1a2.bfcn --input photos/ --out masks/ --color")
        .example("bfcn infer --model w1a2.bfcn --input clip.mp4 --out overlay.mp4")
        .runs(run_infer));
