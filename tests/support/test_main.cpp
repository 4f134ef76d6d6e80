// The Catch2 main of every test binary: runs the session, then turns a recorded skip into
// kSkipReturnCode so that ctest reports the test as skipped rather than passed.
#define CATCH_CONFIG_RUNNER
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <vector>

#include "tests/support/test_support.h"

namespace bfcn::test {
namespace {
std::mutex skip_mutex;
std::vector<std::string>& skips() {
  static std::vector<std::string> s;
  return s;
}
}  // namespace

bool record_skip(SkipKind kind, const std::string& reason) {
  const char* ci = std::getenv("CI");
  const bool strict = ci && std::string(ci) == "true" && kind == SkipKind::missing_dependency;
  if (strict) return false;
  const std::string test = Catch::getResultCapture().getCurrentTestName();
  std::lock_guard<std::mutex> lock(skip_mutex);
  skips().push_back(test + " | " +
                    (kind == SkipKind::cpu_feature      ? "cpu feature"
                     : kind == SkipKind::sanitizer_pass ? "sanitizer pass"
                                                        : "missing dependency") +
                    " | " + reason);
  return true;
}
}  // namespace bfcn::test

int main(int argc, char* argv[]) {
  const int result = Catch::Session().run(argc, argv);
  const auto& skipped = bfcn::test::skips();
  if (result != 0 || skipped.empty()) return result;
  std::ofstream log;
  if (const char* path = std::getenv("BFCN_SKIP_LOG")) log.open(path, std::ios::app);
  for (const std::string& s : skipped) {
    std::cout << "BFCN-SKIPPED: " << s << "\n";
    if (log) log << s << "\n";
  }
  return bfcn::test::kSkipReturnCode;
}
