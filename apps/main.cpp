// bfcn: the one user-facing binary. Subcommands register themselves (apps/command.h); this file
// dispatches, prints --version/--help, and maps exceptions to exit codes (1 user, 2 internal).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "apps/command.h"
#include "core/error.h"
#include "kernels/bitconv.h"
#include "kernels/cpu_features.h"

namespace bfcn::app {

namespace {
std::vector<Command>& registry() {
  static std::vector<Command> r;
  return r;
}
}  // namespace

bool register_command(const Command& cmd) {
  registry().push_back(cmd);
  return true;
}

const std::vector<Command>& commands() {
  auto& r = registry();
  std::sort(r.begin(), r.end(),
            [](const Command& a, const Command& b) { return std::strcmp(a.name, b.name) < 0; });
  return r;
}

}  // namespace bfcn::app

namespace {

void print_version() {
  std::printf("bfcn %s\n", BFCN_VERSION);
  std::printf("build: %s, compiler: %s, C++%ld\n", BFCN_BUILD_TYPE, BFCN_COMPILER,
              __cplusplus / 100 % 100 + 0L);
  std::printf("cpu features: %s\n", bfcn::cpu_features_string().c_str());
  std::printf("kernels: %s (best supported: %s; set BFCN_ISA=ref|avx2|avx512 to force)\n",
              bfcn::isa_name(bfcn::active_isa()), bfcn::isa_name(bfcn::best_supported_isa()));
  std::printf("bit-conv kernel: %s\n", bfcn::bgemm_active().name);
  std::printf("threads: %d (OpenMP; set OMP_NUM_THREADS or --threads)\n", omp_get_max_threads());
}

void print_help() {
  std::printf(
      "bfcn — train, evaluate, export and run Bit Fully Convolutional Networks\n\n"
      "usage: bfcn <command> [flags]   (bfcn <command> --help for its flags and an example)\n\n"
      "commands:\n");
  for (const auto& c : bfcn::app::commands()) std::printf("  %-10s %s\n", c.name, c.summary);
  std::printf(
      "\n  --version  version, build, compiler, CPU features and chosen kernels\n"
      "  --help     this text\n");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
      print_help();
      return args.empty() ? 1 : 0;
    }
    if (args[0] == "--version" || args[0] == "version") {
      print_version();
      return 0;
    }
    for (const auto& c : bfcn::app::commands()) {
      if (args[0] == c.name) return c.run({args.begin() + 1, args.end()});
    }
    std::fprintf(stderr, "bfcn: unknown command '%s' (run `bfcn --help` for the list)\n",
                 args[0].c_str());
    return 1;
  } catch (const bfcn::Error& e) {
    std::fprintf(stderr, "bfcn: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bfcn: internal error: %s\n", e.what());
    return 2;
  }
}
