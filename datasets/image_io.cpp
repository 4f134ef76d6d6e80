// libpng is driven through its classic API with setjmp error handling. Each setjmp lives in a
// small function whose only locals are plain data, so a longjmp out of libpng never skips a C++
// destructor; messages are copied into a char buffer and thrown after the libpng state is freed.
#include "datasets/image_io.h"

#include <png.h>

#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace bfcn {

namespace fs = std::filesystem;

std::vector<uint8_t> read_file_bytes(const fs::path& file) {
  std::error_code ec;
  BFCN_CHECK_IO(fs::is_regular_file(file, ec), file.string(), ": file not found");
  std::ifstream f(file, std::ios::binary);
  BFCN_CHECK_IO(f.good(), file.string(), ": cannot open for reading (check permissions)");
  f.seekg(0, std::ios::end);
  const auto n = static_cast<size_t>(f.tellg());
  f.seekg(0, std::ios::beg);
  std::vector<uint8_t> bytes(n);
  f.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(n));
  BFCN_CHECK_IO(f.gcount() == static_cast<std::streamsize>(n), file.string(),
                ": read failed after ", f.gcount(), " of ", n, " bytes");
  return bytes;
}

namespace {

struct MemReader {
  const uint8_t* data;
  size_t size;
  size_t pos;
};

struct PngErr {
  char msg[256];
};

void png_error_fn(png_structp png, png_const_charp msg) {
  auto* err = static_cast<PngErr*>(png_get_error_ptr(png));
  std::snprintf(err->msg, sizeof(err->msg), "%s", msg);
  png_longjmp(png, 1);
}
void png_warning_fn(png_structp, png_const_charp) {}

void png_read_mem(png_structp png, png_bytep out, png_size_t n) {
  auto* r = static_cast<MemReader*>(png_get_io_ptr(png));
  if (r->pos + n > r->size) png_error(png, "file is truncated (unexpected end of data)");
  std::memcpy(out, r->data + r->pos, n);
  r->pos += n;
}

// Header info of a PNG, filled by decode_label_png before any pixel is read.
struct PngInfo {
  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  bool too_large = false;  // over kMaxImageSide / kMaxImagePixels: refused before allocation
};

bool within_size_limits(int64_t w, int64_t h) {
  return w > 0 && h > 0 && w <= kMaxImageSide && h <= kMaxImageSide && w * h <= kMaxImagePixels;
}

// Returns nullptr on success or the libpng message. `out` is sized by `alloc(h, w)` after the
// header has been checked by `header_ok` (which returns a static reason string or nullptr).
// Plain-data locals only: see the file comment.
const char* decode_label_png(const uint8_t* bytes, size_t n, PngInfo* info, PngErr* err,
                             uint8_t* (*alloc)(void*, png_uint_32, png_uint_32), void* ctx,
                             bool* header_rejected) {
  *header_rejected = false;
  if (n < 8 || png_sig_cmp(bytes, 0, 8) != 0) return "not a PNG file (bad signature)";
  png_structp png =
      png_create_read_struct(PNG_LIBPNG_VER_STRING, err, png_error_fn, png_warning_fn);
  if (png == nullptr) return "libpng: out of memory";
  png_infop pinfo = png_create_info_struct(png);
  if (pinfo == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return "libpng: out of memory";
  }
  MemReader reader{bytes, n, 0};
  png_bytep* volatile rows = nullptr;
  if (setjmp(png_jmpbuf(png))) {
    png_free(png, rows);
    png_destroy_read_struct(&png, &pinfo, nullptr);
    return err->msg;
  }
  png_set_read_fn(png, &reader, png_read_mem);
  png_read_info(png, pinfo);
  info->width = png_get_image_width(png, pinfo);
  info->height = png_get_image_height(png, pinfo);
  info->bit_depth = png_get_bit_depth(png, pinfo);
  info->color_type = png_get_color_type(png, pinfo);
  const bool palette = info->color_type == PNG_COLOR_TYPE_PALETTE;
  const bool gray = info->color_type == PNG_COLOR_TYPE_GRAY;
  info->too_large = !within_size_limits(info->width, info->height);
  if (!(palette || gray) || info->bit_depth > 8 || info->too_large) {
    *header_rejected = true;
    png_destroy_read_struct(&png, &pinfo, nullptr);
    return nullptr;
  }
  if (info->bit_depth < 8) png_set_packing(png);  // 1/2/4-bit → one byte per value, unscaled
  png_set_interlace_handling(png);
  png_read_update_info(png, pinfo);
  uint8_t* dst = alloc(ctx, info->height, info->width);
  rows = static_cast<png_bytep*>(png_malloc(png, sizeof(png_bytep) * info->height));
  for (png_uint_32 y = 0; y < info->height; ++y)
    rows[y] = dst + static_cast<size_t>(y) * info->width;
  png_read_image(png, rows);
  png_read_end(png, nullptr);
  png_free(png, rows);
  png_destroy_read_struct(&png, &pinfo, nullptr);
  return nullptr;
}

uint8_t* alloc_label(void* ctx, png_uint_32 h, png_uint_32 w) {
  auto* m = static_cast<LabelMap*>(ctx);
  m->height = static_cast<int>(h);
  m->width = static_cast<int>(w);
  m->data.assign(static_cast<size_t>(h) * w, 0);
  return m->data.data();
}

const char* color_type_name(int ct, int depth) {
  switch (ct) {
    case PNG_COLOR_TYPE_RGB:
      return "RGB";
    case PNG_COLOR_TYPE_RGB_ALPHA:
      return "RGBA";
    case PNG_COLOR_TYPE_GRAY_ALPHA:
      return "grayscale+alpha";
    case PNG_COLOR_TYPE_GRAY:
      return depth == 16 ? "16-bit grayscale" : "grayscale";
    default:
      return "an unknown colour type";
  }
}

const char* encode_label_png(FILE* fp, const uint8_t* labels, int height, int width,
                             const png_color* colours, int n_colours, PngErr* err) {
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, err, png_error_fn, png_warning_fn);
  if (png == nullptr) return "libpng: out of memory";
  png_infop info = png_create_info_struct(png);
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return "libpng: out of memory";
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return err->msg;
  }
  png_init_io(png, fp);
  png_set_IHDR(png, info, static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), 8,
               colours != nullptr ? PNG_COLOR_TYPE_PALETTE : PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (colours != nullptr) png_set_PLTE(png, info, colours, n_colours);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y)
    png_write_row(png, const_cast<png_bytep>(labels + static_cast<size_t>(y) * width));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return nullptr;
}

std::string lower_ext(const fs::path& file) {
  std::string ext = file.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return ext;
}

// A JPEG is complete when an end-of-image marker (FF D9) follows its last start-of-scan (FF DA).
// Entropy-coded data byte-stuffs every FF, so neither pair can occur inside scan data. OpenCV
// (libjpeg) only warns on truncation and returns grey-filled pixels, hence this check.
bool jpeg_complete(const std::vector<uint8_t>& b) {
  size_t last_sos = 0;
  bool has_sos = false;
  for (size_t i = 0; i + 1 < b.size(); ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xDA) {
      last_sos = i;
      has_sos = true;
    }
  if (!has_sos) return false;
  for (size_t i = last_sos + 2; i + 1 < b.size(); ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xD9) return true;
  return false;
}

}  // namespace

bool peek_image_size(const uint8_t* b, size_t n, int64_t* width, int64_t* height) {
  auto be16 = [&](size_t i) { return int64_t(b[i]) << 8 | b[i + 1]; };
  auto be32 = [&](size_t i) { return be16(i) << 16 | be16(i + 2); };
  if (n >= 24 && png_sig_cmp(b, 0, 8) == 0 && std::memcmp(b + 12, "IHDR", 4) == 0) {
    *width = be32(16);
    *height = be32(20);
    return true;
  }
  if (n < 4 || b[0] != 0xFF || b[1] != 0xD8) return false;
  // JPEG: walk the marker segments up to the first start-of-frame (C0-CF but C4 DHT, C8 JPG,
  // CC DAC), whose payload is precision, height, width.
  size_t i = 2;
  while (i + 4 <= n) {
    if (b[i] != 0xFF) return false;
    const uint8_t marker = b[i + 1];
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01) {
      i += 2;
      continue;
    }
    const size_t len = size_t(be16(i + 2));
    if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC) {
      if (i + 9 > n || len < 7) return false;
      *height = be16(i + 5);
      *width = be16(i + 7);
      return true;
    }
    if (marker == 0xDA || marker == 0xD9 || len < 2) return false;  // scan data before any frame
    i += 2 + len;
  }
  return false;
}

LabelMap read_label_png(const fs::path& file) {
  const std::vector<uint8_t> bytes = read_file_bytes(file);
  int64_t w = 0, h = 0;
  BFCN_CHECK_IO(!peek_image_size(bytes.data(), bytes.size(), &w, &h) || within_size_limits(w, h),
                file.string(), ": label PNG declares ", w, "x", h, " pixels, over the limit of ",
                kMaxImageSide, " per side and ", kMaxImagePixels,
                " in all; refused before decoding (corrupt or not a label?)");
  LabelMap m;
  PngInfo info;
  PngErr err{};
  bool rejected = false;
  const char* msg =
      decode_label_png(bytes.data(), bytes.size(), &info, &err, alloc_label, &m, &rejected);
  BFCN_CHECK_IO(msg == nullptr, file.string(), ": cannot read label PNG: ", msg);
  BFCN_CHECK_IO(!info.too_large, file.string(), ": label PNG declares ", info.width, "x",
                info.height, " pixels, over the limit of ", kMaxImageSide, " per side and ",
                kMaxImagePixels, " in all; refused before decoding (corrupt or not a label?)");
  BFCN_CHECK_IO(!rejected, file.string(),
                ": expected a palette or 8-bit grayscale label PNG, but got ",
                color_type_name(info.color_type, info.bit_depth), " (", info.bit_depth,
                "-bit); did you pass a colour visualisation or an instance map?");
  m.was_palette = info.color_type == PNG_COLOR_TYPE_PALETTE;
  return m;
}

void write_label_png(const fs::path& file, const uint8_t* labels, int height, int width,
                     const Palette* palette) {
  BFCN_CHECK(height > 0 && width > 0, "write_label_png: ", file.string(),
             ": expected a positive size, but got ", height, "x", width);
  std::vector<png_color> colours;
  if (palette != nullptr) {
    BFCN_CHECK(!palette->empty(), "write_label_png: ", file.string(), ": empty palette");
    for (size_t i = 0; i < palette->size() && i < 256; ++i)
      colours.push_back({(*palette)[i][0], (*palette)[i][1], (*palette)[i][2]});
  }
  write_file_atomically(
      file,
      [&](const fs::path& tmp) {
        FILE* fp = std::fopen(tmp.c_str(), "wb");
        BFCN_CHECK_IO(fp != nullptr, file.string(),
                      ": cannot open for writing (does the folder exist and is it writable?)");
        PngErr err{};
        const char* msg =
            encode_label_png(fp, labels, height, width, colours.empty() ? nullptr : colours.data(),
                             static_cast<int>(colours.size()), &err);
        const bool closed = std::fclose(fp) == 0;
        BFCN_CHECK_IO(msg == nullptr, file.string(), ": PNG write failed: ", msg);
        BFCN_CHECK_IO(closed, file.string(), ": write failed (disk full or file-size limit?)");
      },
      Durability::rename_only);
}

ImageRGB read_image_rgb(const fs::path& file) {
  std::vector<uint8_t> bytes = read_file_bytes(file);
  BFCN_CHECK_IO(!bytes.empty(), file.string(), ": empty file");
  const bool is_jpeg = bytes.size() >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8;
  int64_t w = 0, h = 0;
  // OpenCV would decode any format it knows and allocate whatever a header claims: only JPEG and
  // PNG get through, and only within the size limits.
  BFCN_CHECK_IO(peek_image_size(bytes.data(), bytes.size(), &w, &h), file.string(),
                ": not a JPEG or PNG image (or its header is cut short)");
  BFCN_CHECK_IO(within_size_limits(w, h), file.string(), ": image header declares ", w, "x", h,
                " pixels, over the limit of ", kMaxImageSide, " per side and ", kMaxImagePixels,
                " in all; refused before decoding");
  BFCN_CHECK_IO(!is_jpeg || jpeg_complete(bytes), file.string(),
                ": truncated JPEG (no end-of-image marker after the last scan); re-copy the file");
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(cv::Mat(1, static_cast<int>(bytes.size()), CV_8UC1, bytes.data()),
                       cv::IMREAD_COLOR);
  } catch (const cv::Exception& e) {
    throw IoError(file.string() + ": cannot decode image: " + e.what());
  }
  BFCN_CHECK_IO(!bgr.empty(), file.string(),
                ": cannot decode image (unreadable, truncated or not a JPEG/PNG)");
  ImageRGB img;
  img.height = bgr.rows;
  img.width = bgr.cols;
  img.data.resize(static_cast<size_t>(img.height) * img.width * 3);
  cv::Mat rgb(img.height, img.width, CV_8UC3, img.data.data());
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return img;
}

void write_image_rgb(const fs::path& file, const ImageRGB& img) {
  BFCN_CHECK(img.height > 0 && img.width > 0 &&
                 img.data.size() == static_cast<size_t>(img.height) * img.width * 3,
             "write_image_rgb: ", file.string(), ": expected ", img.height, "x", img.width,
             "x3 bytes, but got ", img.data.size());
  const std::string ext = lower_ext(file);
  std::vector<int> params;
  if (ext == ".jpg" || ext == ".jpeg") {
    params = {cv::IMWRITE_JPEG_QUALITY, 95};
  } else {
    BFCN_CHECK(ext == ".png", "write_image_rgb: ", file.string(),
               ": expected a .png, .jpg or .jpeg extension, but got '", ext, "'");
  }
  cv::Mat rgb(img.height, img.width, CV_8UC3, const_cast<uint8_t*>(img.data.data()));
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> buf;
  BFCN_CHECK_IO(cv::imencode(ext, bgr, buf, params), file.string(), ": image encoding failed");
  write_file_atomically(
      file,
      [&](const fs::path& tmp) {
        std::ofstream f(tmp, std::ios::binary);
        BFCN_CHECK_IO(f.good(), file.string(),
                      ": cannot open for writing (does the folder exist and is it writable?)");
        f.write(reinterpret_cast<const char*>(buf.data()),
                static_cast<std::streamsize>(buf.size()));
        f.flush();
        BFCN_CHECK_IO(f.good(), file.string(), ": write failed (disk full or file-size limit?)");
      },
      Durability::rename_only);
}

}  // namespace bfcn
