// `bfcn bench <name>`: runs the bfcn-bench binary that sits next to bfcn. Benchmarks live in their
// own binary so that oneDNN (the speed peer) is never linked into bfcn or the libraries; they
// register in the same command registry (group "bfcn bench", cli/command.h), so `bfcn bench
// --help` lists them and every one parses its flags with the same parser.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "cli/command.h"
#include "core/error.h"

namespace {

int run_bench(const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  fs::path self = fs::read_symlink("/proc/self/exe");
  fs::path bench = self.parent_path() / "bfcn-bench";
  const std::string skipped = BFCN_BENCH_SKIP;  // why configure left bench/ out, if it did
  BFCN_CHECK(fs::exists(bench), "bench: ", bench.string(), " was not built",
             skipped.empty() ? std::string() : " (" + skipped + ")",
             "; install libdnnl-dev and ocl-icd-opencl-dev (scripts/deps.sh), re-run cmake with "
             "-DBFCN_BUILD_BENCH=ON and build the bfcn target");
  std::vector<std::string> argv_s{bench.string()};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : argv_s) argv.push_back(s.data());
  argv.push_back(nullptr);
  execv(bench.c_str(), argv.data());
  throw bfcn::Error("bench: cannot run " + bench.string());
}

}  // namespace

BFCN_REGISTER_COMMAND(
    "bfcn",
    bfcn::cli::Command("bench", "speed benchmarks against peers (ops, train, runtime, loader)")
        .forwards(run_bench));
