// examples/segment_image.c built against the INSTALLED runtime package (cmake --install of this
// build folder into a temporary prefix; find_package(bfcn_runtime) with the shared and the static
// library, and pkg-config), run on a model from `bfcn export`: its labels equal `bfcn infer`'s.
// The installed shared library exports the C API's bfcn_* functions only.
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "datasets/image_io.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_checkpoint.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> read_pgm(const fs::path& p, int& w, int& h) {
  std::ifstream f(p, std::ios::binary);
  std::string magic;
  int maxval = 0;
  f >> magic >> w >> h >> maxval;
  f.get();
  REQUIRE(magic == "P5");
  REQUIRE(maxval == 255);
  std::vector<uint8_t> v(size_t(w) * size_t(h));
  f.read(reinterpret_cast<char*>(v.data()), std::streamsize(v.size()));
  REQUIRE(f.good());
  return v;
}

test::RunResult run(const std::string& cmd) {
  auto r = test::run_command(cmd);
  INFO(cmd << "\n" << r.output);
  REQUIRE(r.status == 0);
  return r;
}

}  // namespace

TEST_CASE("deploy: segment_image.c against the installed package equals bfcn infer",
          "[deploy][example]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_deploy_example");
  test::save_random_w1a2_checkpoint(tmp / "m.h5", 3, tmp / "none");
  const std::string bin = test::bfcn_binary().string(), q = "'", m = (tmp / "m.bfcn").string();
  run(bin + " export --checkpoint " + (tmp / "m.h5").string() + " --out " + m);

  // One image as PNG (bfcn infer) and binary PPM (the example).
  ImageRGB img;
  img.height = 41;
  img.width = 67;
  img.data.resize(size_t(41) * 67 * 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = uint8_t((i * 53 + i / 201 * 7) % 256);
  fs::create_directories(tmp / "in");
  write_image_rgb(tmp / "in" / "a.png", img);
  {
    std::ofstream ppm(tmp / "a.ppm", std::ios::binary);
    ppm << "P6\n67 41\n255\n";
    ppm.write(reinterpret_cast<const char*>(img.data.data()), std::streamsize(img.data.size()));
  }
  run(bin + " infer --model " + m + " --input " + (tmp / "in").string() + " --out " +
      (tmp / "out").string());
  const LabelMap want = read_label_png(tmp / "out" / "a.png");

  // Install this build's runtime package and build the example against it.
  const fs::path prefix = tmp / "prefix", ex = tmp / "ex";
  run("cmake --install " + q + BFCN_BINARY_DIR + q + " --prefix " + prefix.string() + " 2>&1");
  const bool sanitized = std::getenv("BFCN_SANITIZED") != nullptr;  // the ASan pass of test.sh
  const std::string san = sanitized ? " -fsanitize=address,undefined" : "";
  run("cmake -S " + q + BFCN_SOURCE_DIR + "/examples" + q + " -B " + ex.string() +
      " -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH=" + prefix.string() +
      " '-DCMAKE_C_FLAGS=" + san + "' '-DCMAKE_EXE_LINKER_FLAGS=" + san + "' 2>&1");
  run("cmake --build " + ex.string() + " 2>&1");

  // ... and with pkg-config, by hand.
  fs::path libdir;
  for (const auto& e : fs::recursive_directory_iterator(prefix))
    if (e.path().filename() == "bfcn_runtime.pc") libdir = e.path().parent_path().parent_path();
  REQUIRE(!libdir.empty());
  run("PKG_CONFIG_PATH=" + (libdir / "pkgconfig").string() + " cc -std=c99" + san + " " +
      BFCN_SOURCE_DIR + "/examples/segment_image.c -o " + (tmp / "seg_pc").string() +
      " $(PKG_CONFIG_PATH=" + (libdir / "pkgconfig").string() +
      " pkg-config --cflags --libs bfcn_runtime) -Wl,-rpath," + libdir.string() + " 2>&1");
  // The C header is C89.
  run("printf '#include <bfcn/bfcn.h>\\n' | cc -std=c89 -pedantic-errors -Werror -fsyntax-only -I" +
      (prefix / "include").string() + " -x c - 2>&1");

  for (const std::string& exe :
       {(ex / "segment_image").string(), (ex / "segment_image_static").string(),
        (tmp / "seg_pc").string()}) {
    INFO(exe);
    const auto r =
        run(exe + " " + m + " " + (tmp / "a.ppm").string() + " " + (tmp / "a.pgm").string() + " 1");
    CHECK_THAT(r.output, Catch::Contains("67x41"));
    int w = 0, h = 0;
    const std::vector<uint8_t> got = read_pgm(tmp / "a.pgm", w, h);
    REQUIRE((w == 67 && h == 41));
    CHECK(got == want.data);
    fs::remove(tmp / "a.pgm");
  }
  CHECK(std::set<uint8_t>(want.data.begin(), want.data.end()).size() > 1);  // not a flat map

  // Only the C API is exported from the shared library.
  const fs::path so = libdir / "libbfcn_runtime.so";
  REQUIRE(fs::exists(so));
  const auto syms = run("nm -D --defined-only " + so.string() + " | awk '{print $3}'");
  std::istringstream lines(syms.output);
  std::string s;
  int api = 0;
  std::vector<std::string> other;
  while (std::getline(lines, s)) {
    if (s.rfind("bfcn_", 0) == 0)
      ++api;
    else if (!s.empty() && s.rfind("__", 0) != 0 && s != "_init" && s != "_fini" &&
             s.find("BFCN") == std::string::npos)
      other.push_back(s);
  }
  CHECK(api >= 12);
  INFO("exported beyond the C API: " << (other.empty() ? "" : other.front()));
  CHECK(other.empty());
}
