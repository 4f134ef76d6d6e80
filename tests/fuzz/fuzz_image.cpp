// Fuzzes the image decode paths of the data loaders: the bytes as a label PNG (libpng, raw palette
// indices) and as an RGB JPEG/PNG (OpenCV). A bad file must end in bfcn::Error; a header declaring
// a huge image must be refused before anything of that size is allocated.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "datasets/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // The readers take paths (as the loaders do): one file in tmpfs per process.
  static const std::string path = "/dev/shm/bfcn_fuzz_image_" + std::to_string(getpid());
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) __builtin_trap();
  if (size > 0 && std::fwrite(data, 1, size, f) != size) __builtin_trap();
  std::fclose(f);
  try {
    bfcn::read_label_png(path);
  } catch (const bfcn::Error&) {
  }
  try {
    bfcn::read_image_rgb(path);
  } catch (const bfcn::Error&) {
  }
  return 0;
}
