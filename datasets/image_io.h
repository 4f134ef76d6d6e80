// Image and label file I/O. Labels are read with libpng as RAW values: a palette PNG gives its
// indices (never expanded to RGB, as OpenCV or stb would), a grayscale PNG its values; anything
// else (RGB, 16-bit) is rejected so a colour visualisation is never mistaken for a label.
// Images go through OpenCV (JPEG/PNG) and are returned as RGB, HWC, 8-bit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "datasets/palette.h"

namespace bfcn {

// Untrusted sizes are bounded before anything is allocated: an image or label whose header
// declares more than this is refused with IoError (a 20-byte file may claim 100000 x 100000).
constexpr int64_t kMaxImageSide = 32768;
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;  // 8192 x 8192; Cityscapes is 2048 x 1024

// Width and height from a PNG (IHDR) or baseline/progressive JPEG (SOFn) header without decoding;
// false when the bytes are neither or the header is cut short.
bool peek_image_size(const uint8_t* bytes, size_t n, int64_t* width, int64_t* height);

struct LabelMap {
  int height = 0, width = 0;
  std::vector<uint8_t> data;  // [H,W] row-major class indices
  bool was_palette = false;   // the file was a palette PNG (else grayscale)
  uint8_t at(int y, int x) const { return data[static_cast<size_t>(y) * width + x]; }
};

// 8-bit palette or grayscale PNG (1/2/4-bit depths are unpacked to values, not rescaled).
// Throws IoError naming the file for a missing/truncated file, 16-bit, RGB/RGBA or gray+alpha.
LabelMap read_label_png(const std::filesystem::path& file);

// Writes a palette PNG when palette != nullptr (its first 256 entries; no tIME chunk, so the same
// labels always give the same bytes), else an 8-bit grayscale PNG.
void write_label_png(const std::filesystem::path& file, const uint8_t* labels, int height,
                     int width, const Palette* palette);
inline void write_label_png(const std::filesystem::path& file, const LabelMap& m,
                            const Palette* palette) {
  write_label_png(file, m.data.data(), m.height, m.width, palette);
}

struct ImageRGB {
  int height = 0, width = 0;
  std::vector<uint8_t> data;  // [H,W,3] R,G,B
  const uint8_t* pixel(int y, int x) const {
    return data.data() + (static_cast<size_t>(y) * width + x) * 3;
  }
};

// JPEG or PNG (any channel count, converted to RGB). Missing, unreadable or truncated files
// (a JPEG without its end-of-image marker included), other formats and images over the size
// limits above throw IoError naming the file.
ImageRGB read_image_rgb(const std::filesystem::path& file);

// Writes .png or .jpg/.jpeg (quality 95) by extension; deterministic bytes for the same pixels.
void write_image_rgb(const std::filesystem::path& file, const ImageRGB& img);

// Whole file into memory; IoError naming the file if it is missing or unreadable.
std::vector<uint8_t> read_file_bytes(const std::filesystem::path& file);

}  // namespace bfcn
