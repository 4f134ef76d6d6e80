// `bfcn bench <name>`: runs the bfcn-bench binary that sits next to bfcn. Benchmarks live in their
// own binary so that oneDNN (the speed peer) is never linked into bfcn or the libraries.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "apps/command.h"
#include "core/error.h"

namespace {

int run_bench(const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  fs::path self = fs::read_symlink("/proc/self/exe");
  fs::path bench = self.parent_path() / "bfcn-bench";
  BFCN_CHECK(fs::exists(bench), "bench: ", bench.string(),
             " not found; build it with -DBFCN_BUILD_BENCH=ON (needs libdnnl-dev)");
  std::vector<std::string> argv_s{bench.string()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  execv(bench.c_str(), argv.data());
  throw bfcn::Error("bench: cannot run " + bench.string());
}

}  // namespace

BFCN_REGISTER_COMMAND("bench", "speed benchmarks against peers (ops, train, runtime, loader)",
                      run_bench);
