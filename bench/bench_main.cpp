// bfcn-bench: the benchmarks' main. Reached as `bfcn bench <name> [flags]`; dispatches with the
// same registry and parser as bfcn (cli/command.h, group "bfcn bench").
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"

namespace bfcn::bench {
void write_json(const char* bench, const std::string& path, const nlohmann::json& results) {
  std::ofstream f(path);
  BFCN_CHECK_IO(f.good(), "bench ", bench, ": cannot write --json file '", path,
                "' (check the folder exists and is writable)");
  f << results.dump(2) << "\n";
  BFCN_CHECK_IO(f.good(), "bench ", bench, ": failed writing '", path, "'");
  std::printf("wrote %s\n", path.c_str());
}
}  // namespace bfcn::bench

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const bfcn::cli::Group bench{
      "bfcn bench",
      "bfcn bench — speed benchmarks, each against a peer in the same process (oneDNN, PyTorch, "
      "our FP32 path)",
      ""};
  return bfcn::cli::run_main("bfcn bench", [&] { return bfcn::cli::dispatch(bench, args); });
}
