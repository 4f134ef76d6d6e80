// `bfcn infer --model M.bfcn --input IMG|DIR --out DIR [--color] [--threads N]`: runs the
// bit-convolution runtime on images and writes <stem>.png label maps (class indices, grayscale)
// and, with --color, <stem>_color.png masks in the model's palette. Image I/O lives here, not in
// runtime/ (which must not link OpenCV).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
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

int run_infer(const bfcn::cli::Args& args) {
  const fs::path model_path = args.require("model"), input = args.require("input"),
                 out = args.require("out");
  if (args.has("threads")) omp_set_num_threads(args.get_int("threads"));
  const bfcn::rt::Model model = bfcn::rt::Model::load(model_path.string());
  std::vector<fs::path> images;
  BFCN_CHECK_IO(fs::exists(input), input.string(), ": no such image or folder");
  if (fs::is_directory(input)) {
    for (const auto& e : fs::directory_iterator(input))
      if (e.is_regular_file() && is_image(e.path())) images.push_back(e.path());
    std::sort(images.begin(), images.end());
    BFCN_CHECK_IO(!images.empty(), input.string(), ": folder holds no .png/.jpg images");
  } else {
    images.push_back(input);
  }
  fs::create_directories(out);
  bfcn::Palette palette;
  for (const auto& c : model.palette()) palette.push_back(c);
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
                  "<stem>.png label maps (class indices).")
        .usage("bfcn infer --model MODEL.bfcn --input IMG|DIR --out DIR [--color] [--threads N]")
        .with_flags(
            {bfcn::cli::text("model", "FILE", ".bfcn model (bfcn export)").needed(),
             bfcn::cli::text("input", "PATH", "an image (.png/.jpg) or a folder of them").needed(),
             bfcn::cli::text("out", "DIR", "where label PNGs are written").needed(),
             bfcn::cli::boolean("color", "also write <stem>_color.png masks"),
             bfcn::cli::integer("threads", "N", "OpenMP threads (default: all)").at_least(1)})
        .example("bfcn infer --model w1a2.bfcn --input photos/ --out masks/ --color")
        .runs(run_infer));
