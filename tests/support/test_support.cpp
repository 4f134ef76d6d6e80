#include "tests/support/test_support.h"

#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

namespace bfcn::test {

namespace fs = std::filesystem;

fs::path source_dir() { return fs::path(BFCN_SOURCE_DIR); }
fs::path shared_dir() {
  if (const char* env = std::getenv("BFCN_SHARED_DIR")) return fs::path(env);
  return fs::path(BFCN_SHARED_DIR);
}
fs::path bfcn_binary() { return fs::path(BFCN_BINARY_DIR) / "bfcn"; }
bool shared_available() { return fs::is_directory(shared_dir() / "data"); }

TempDir::TempDir(const std::string& tag) {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path p = fs::temp_directory_path() / (tag + "_" + std::to_string(rd()));
    if (fs::create_directory(p)) {
      path_ = p;
      return;
    }
  }
  throw std::runtime_error("TempDir: could not create a temp folder");
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

RunResult run_command(const std::string& cmd, bool merge_stderr) {
  RunResult r;
  std::string full = cmd + (merge_stderr ? " 2>&1" : "");
  FILE* p = popen(full.c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

bool torch_available() {
  static const bool ok =
      run_command("/usr/bin/python3 -c 'import torch' >/dev/null 2>&1").status == 0;
  return ok;
}

Tensor random_tensor(const Shape& shape, Rng& rng, float lo, float hi) {
  Tensor t = Tensor::empty(shape);
  for (float& v : t.span<float>()) v = rng.uniform(lo, hi);
  return t;
}

std::vector<float> uniform_floats(size_t n, uint32_t seed, float lo, float hi) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

void write_f32(const fs::path& file, const Tensor& t) {
  std::ofstream f(file, std::ios::binary);
  std::vector<float> v = t.to_vector();
  f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  if (!f) throw std::runtime_error("write_f32: cannot write " + file.string());
}

Tensor read_f32(const fs::path& file, const Shape& shape) {
  std::ifstream f(file, std::ios::binary);
  if (!f) throw std::runtime_error("read_f32: cannot open " + file.string());
  Tensor t = Tensor::empty(shape);
  f.read(reinterpret_cast<char*>(t.f32()), static_cast<std::streamsize>(t.nbytes()));
  if (f.gcount() != static_cast<std::streamsize>(t.nbytes()))
    throw std::runtime_error("read_f32: " + file.string() + " is shorter than shape " +
                             shape.str());
  return t;
}

bool all_close(const Tensor& a, const Tensor& b, float rtol, float atol) {
  if (a.shape() != b.shape()) {
    UNSCOPED_INFO("all_close: shapes differ " << a.shape().str() << " vs " << b.shape().str());
    return false;
  }
  std::vector<float> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  size_t worst_i = 0;
  bool ok = true;
  for (size_t i = 0; i < x.size(); ++i) {
    double err = std::fabs(double(x[i]) - double(y[i]));
    double tol = atol + rtol * std::fabs(double(y[i]));
    if (!(err <= tol)) ok = false;
    double ratio = err / tol;
    if (!(ratio <= worst)) {
      worst = ratio;
      worst_i = i;
    }
  }
  if (!ok)
    UNSCOPED_INFO("all_close: worst element " << worst_i << ": " << x[worst_i] << " vs "
                                              << y[worst_i] << " (err/tol " << worst << ")");
  return ok;
}

}  // namespace bfcn::test
