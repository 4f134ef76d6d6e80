// bfcn-bench: the benchmarks' main. Reached as `bfcn bench <name> [flags]`; dispatches with the
// same registry and parser as bfcn (cli/command.h, group "bfcn bench").
#include <cstdio>
#include <filesystem>
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

nlohmann::json run_python_peer(const std::string& script, const std::string& args) {
  namespace fs = std::filesystem;
  const fs::path exe = fs::read_symlink("/proc/self/exe");
  fs::path found;
  for (const fs::path& p : {exe.parent_path().parent_path() / "bench" / script,
                            exe.parent_path().parent_path().parent_path() / "bench" / script,
                            fs::path("bench") / script})
    if (fs::exists(p)) {
      found = p;
      break;
    }
  if (found.empty()) return {{"error", "bench/" + script + " not found"}};
  const std::string cmd = "/usr/bin/python3 " + found.string() + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {{"error", "cannot run /usr/bin/python3"}};
  std::string out, last;
  char buf[4096];
  while (fgets(buf, sizeof buf, p)) {
    out += buf;
    if (buf[0] == '{') last = buf;
  }
  const int st = pclose(p);
  if (st != 0 || last.empty()) return {{"error", script + " failed: " + out.substr(0, 300)}};
  return nlohmann::json::parse(last);
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
