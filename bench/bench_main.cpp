// bfcn-bench: dispatches to the registered benchmarks. Reached as `bfcn bench <name> [flags]`.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"

namespace bfcn::bench {
namespace {
std::vector<Bench>& registry() {
  static std::vector<Bench> r;
  return r;
}
}  // namespace
bool register_bench(const Bench& b) {
  registry().push_back(b);
  return true;
}
void write_json(const char* bench, const std::string& path, const nlohmann::json& results) {
  std::ofstream f(path);
  BFCN_CHECK_IO(f.good(), "bench ", bench, ": cannot write --json file '", path,
                "' (check the folder exists and is writable)");
  f << results.dump(2) << "\n";
  BFCN_CHECK_IO(f.good(), "bench ", bench, ": failed writing '", path, "'");
  std::printf("wrote %s\n", path.c_str());
}
const std::vector<Bench>& benches() {
  auto& r = registry();
  std::sort(r.begin(), r.end(),
            [](const Bench& a, const Bench& b) { return std::strcmp(a.name, b.name) < 0; });
  return r;
}
}  // namespace bfcn::bench

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  auto usage = [] {
    std::printf("usage: bfcn bench <name> [flags]   (bfcn bench <name> --help)\n\nbenchmarks:\n");
    for (const auto& b : bfcn::bench::benches()) std::printf("  %-10s %s\n", b.name, b.summary);
  };
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h") {
      usage();
      return args.empty() ? 1 : 0;
    }
    for (const auto& b : bfcn::bench::benches())
      if (args[0] == b.name) return b.run({args.begin() + 1, args.end()});
    std::fprintf(stderr, "bfcn bench: unknown benchmark '%s'\n", args[0].c_str());
    usage();
    return 1;
  } catch (const bfcn::Error& e) {
    std::fprintf(stderr, "bfcn bench: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bfcn bench: internal error: %s\n", e.what());
    return 2;
  }
}
