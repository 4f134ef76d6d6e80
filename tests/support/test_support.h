// Shared helpers for the Catch2 suites: where the repo, ../shared and the bfcn binary are, temp
// folders, running the PyTorch oracle, and tensor comparisons.
#pragma once

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace bfcn::test {

std::filesystem::path source_dir();   // the repo
std::filesystem::path shared_dir();   // ../shared beside the repo (may be absent)
std::filesystem::path bfcn_binary();  // build/bfcn
bool shared_available();              // ../shared/data exists

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "bfcn_test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Runs a shell command; returns its exit status and captured stdout (+stderr when merge=true).
struct RunResult {
  int status = -1;
  std::string output;
};
RunResult run_command(const std::string& cmd, bool merge_stderr = true);

// True when Debian's /usr/bin/python3 can import torch (the PyTorch oracle).
bool torch_available();

// Random f32 tensor with values uniform in [lo, hi).
Tensor random_tensor(const Shape& shape, Rng& rng, float lo = -1.0f, float hi = 1.0f);

// n floats uniform in [lo, hi) from std::mt19937(seed) (kernel tests on raw arrays).
std::vector<float> uniform_floats(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f);

// Raw little-endian f32 file I/O, for exchanging tensors with the Python oracle.
void write_f32(const std::filesystem::path& file, const Tensor& t);
Tensor read_f32(const std::filesystem::path& file, const Shape& shape);

// Max |a-b| / (|b| + atol-ish floor): passes when every element has |a-b| <= atol + rtol*|b|.
// On failure, reports the worst index and values through Catch's INFO.
bool all_close(const Tensor& a, const Tensor& b, float rtol = 1e-4f, float atol = 1e-5f);

}  // namespace bfcn::test

namespace bfcn::test {
// Catch2 v2 has no skip, so a skipped test case records its reason here and returns; the test
// main (tests/support/test_main.cpp) then exits with kSkipReturnCode, which ctest reports as
// "Skipped" (SKIP_RETURN_CODE), and appends the reason to $BFCN_SKIP_LOG for scripts/test.sh.
enum class SkipKind { missing_dependency, cpu_feature, sanitizer_pass };
constexpr int kSkipReturnCode = 77;
// Under CI=true a missing dependency or missing data is a failure, not a skip: only a CPU feature
// the machine lacks may skip there. Returns true when the caller should return (skip recorded).
bool record_skip(SkipKind kind, const std::string& reason);
}  // namespace bfcn::test

// Skip for a missing oracle, data set, package or binary (a failure under CI=true).
#define BFCN_SKIP(reason)                                                                          \
  do {                                                                                             \
    const std::string bfcn_skip_reason_ = (reason);                                                \
    if (!::bfcn::test::record_skip(::bfcn::test::SkipKind::missing_dependency, bfcn_skip_reason_)) \
      FAIL("CI=true: a missing dependency must not skip: " << bfcn_skip_reason_);                  \
    WARN("skipped: " << bfcn_skip_reason_);                                                        \
    return;                                                                                        \
  } while (0)

// Skip in the ASan/UBSan pass a case the Release pass runs (allowed everywhere, listed by
// scripts/test.sh).
#define BFCN_SKIP_SANITIZED(reason)                                                       \
  do {                                                                                    \
    const std::string bfcn_skip_reason_ = (reason);                                       \
    ::bfcn::test::record_skip(::bfcn::test::SkipKind::sanitizer_pass, bfcn_skip_reason_); \
    WARN("skipped: " << bfcn_skip_reason_);                                               \
    return;                                                                               \
  } while (0)

// Skip because this CPU lacks an ISA (allowed everywhere, listed by scripts/test.sh).
#define BFCN_SKIP_ISA(reason)                                                          \
  do {                                                                                 \
    const std::string bfcn_skip_reason_ = (reason);                                    \
    ::bfcn::test::record_skip(::bfcn::test::SkipKind::cpu_feature, bfcn_skip_reason_); \
    WARN("skipped: " << bfcn_skip_reason_);                                            \
    return;                                                                            \
  } while (0)
