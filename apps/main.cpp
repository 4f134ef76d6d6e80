// bfcn: the one user-facing binary. Subcommands register themselves (cli/command.h, one
// apps/cmd_*.cpp each); this file prints --version and hands the rest to the shared dispatcher,
// which prints --help and maps exceptions to exit codes (1 user, 2 internal).
#include <omp.h>

#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"
#include "kernels/bitconv.h"
#include "kernels/cpu_features.h"

namespace {

void print_version() {
  std::printf("bfcn %s\n", BFCN_VERSION);
  std::printf("build: %s, compiler: %s, C++%ld\n", BFCN_BUILD_TYPE, BFCN_COMPILER,
              __cplusplus / 100 % 100 + 0L);
  std::printf("cpu features: %s\n", bfcn::cpu_features_string().c_str());
  std::printf(
      "kernels: %s (best supported: %s; set BFCN_ISA=ref|avx2|avx512|avx512vnni to force)\n",
      bfcn::isa_name(bfcn::active_isa()), bfcn::isa_name(bfcn::best_supported_isa()));
  std::printf("bit-conv kernel: %s\n", bfcn::bgemm_active().name);
  std::printf("threads: %d (OpenMP; set OMP_NUM_THREADS or --threads)\n", omp_get_max_threads());
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const bfcn::cli::Group top{
      "bfcn", "bfcn — train, evaluate, export and run Bit Fully Convolutional Networks",
      "  --version  version, build, compiler, CPU features and chosen kernels\n"
      "  --help     this text\n"};
  return bfcn::cli::run_main("bfcn", [&] {
    if (!args.empty() && (args[0] == "--version" || args[0] == "version")) {
      print_version();
      return 0;
    }
    return bfcn::cli::dispatch(top, args);
  });
}
