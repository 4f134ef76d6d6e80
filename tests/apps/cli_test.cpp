// The command line as a whole: the shared typed parser and registry (cli/), and every command and
// benchmark of the built binaries found from `bfcn --help` (recursively through the groups `bfcn
// data` and `bfcn bench`): --help exits 0 and lists the flags of the contract (docs/cli.md); every
// typed flag given a bad value, and a value below its range, exits 1 naming the flag and the
// value; an unknown flag exits 1 naming it. Benchmarks are swept where bfcn-bench was built
// (BFCN_HAVE_BENCH, from CMake); elsewhere `bfcn bench` must exit 1 saying it was not built.
#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace bfcn {
namespace {

struct FlagInfo {
  std::string name;
  std::string kind;  // integer, number, choice, size, boolean, text
  long long min = 0;
  bool has_min = false;
};

test::RunResult bfcn_run(const std::string& args) {
  return test::run_command(test::bfcn_binary().string() + " " + args);
}

// "  name    summary" lines under "commands:".
std::vector<std::string> group_commands(const std::string& help) {
  std::vector<std::string> out;
  std::istringstream is(help);
  bool in = false;
  for (std::string line; std::getline(is, line);) {
    if (line == "commands:") {
      in = true;
      continue;
    }
    if (!in) continue;
    if (line.empty()) break;
    if (line.rfind("  ", 0) != 0) continue;
    const std::string rest = line.substr(2);
    out.push_back(rest.substr(0, rest.find("  ")));
  }
  return out;
}

std::vector<FlagInfo> command_flags(const std::string& help) {
  static const std::regex line_re(R"(^  --([a-z0-9-]+)( [^ ]+)?  +(.*)$)");
  static const std::regex int_min_re(R"(\(integer (>= |in )(-?[0-9]+))");
  std::vector<FlagInfo> out;
  std::istringstream is(help);
  for (std::string line; std::getline(is, line);) {
    std::smatch m;
    if (!std::regex_match(line, m, line_re)) continue;
    FlagInfo f;
    f.name = m[1];
    const std::string text = m[3];
    if (!m[2].matched)
      f.kind = "boolean";
    else if (text.find("(integer") != std::string::npos)
      f.kind = "integer";
    else if (text.find("(number") != std::string::npos)
      f.kind = "number";
    else if (text.find("(one of") != std::string::npos)
      f.kind = "choice";
    else if (text.find("(HxW") != std::string::npos)
      f.kind = "size";
    else
      f.kind = "text";
    std::smatch r;
    if (f.kind == "integer" && std::regex_search(text, r, int_min_re)) {
      f.has_min = true;
      f.min = std::stoll(r[2]);
    }
    if (f.name != "help") out.push_back(f);
  }
  return out;
}

// docs/cli.md's block: command path ("bench runtime") -> the flags it promises.
std::map<std::string, std::set<std::string>> contract_flags() {
  std::ifstream f(test::source_dir() / "docs" / "cli.md");
  std::map<std::string, std::set<std::string>> out;
  std::string current;
  static const std::regex flag_re(R"(--[a-z0-9-]+)");
  bool in_block = false;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("```", 0) == 0) {
      in_block = !in_block;
      continue;
    }
    if (!in_block) continue;
    std::string code = line.substr(0, line.find('#'));
    std::istringstream ws(code);
    std::vector<std::string> words;
    for (std::string w; ws >> w;) words.push_back(w);
    if (words.empty()) continue;
    if (words[0] == "bfcn") {
      std::vector<std::string> path;
      for (size_t i = 1; i < words.size(); ++i) {
        if (words[i][0] == '-' || words[i][0] == '[' || words[i] == "...") break;
        path.push_back(words[i]);
      }
      current.clear();
      if (path.empty()) continue;  // bfcn --version
      if (std::find(path.begin(), path.end(), "|") != path.end()) {
        for (size_t i = 1; i < path.size(); ++i)
          if (path[i] != "|") out[path[0] + " " + path[i]];
        continue;
      }
      for (const auto& p : path) current += (current.empty() ? "" : " ") + p;
      out[current];
    } else if (line[0] != ' ' || current.empty()) {
      continue;
    }
    for (std::sregex_iterator it(code.begin(), code.end(), flag_re), end; it != end; ++it)
      if (current.size()) out[current].insert(it->str());
  }
  return out;
}

std::string bad_value(const FlagInfo& f) {
  if (f.kind == "integer") return "abc";
  if (f.kind == "number") return "abc";
  if (f.kind == "choice") return "no-such-choice";
  if (f.kind == "size") return "12by5";
  return "";
}

// Sweeps a command: --help, a bad value for each typed flag, a value below each integer range,
// an unknown flag. Returns the flags its --help lists.
std::set<std::string> sweep_command(const std::string& path) {
  const std::string cmd = "bfcn " + path;
  INFO(cmd);
  auto r = bfcn_run(path + " --help");
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Catch::StartsWith("usage: " + cmd) && Catch::Contains("-h, --help"));
  const std::vector<FlagInfo> flags = command_flags(r.output);
  std::set<std::string> names;
  for (const FlagInfo& f : flags) {
    names.insert("--" + f.name);
    INFO("--" + f.name + " (" + f.kind + ")");
    if (f.kind == "text") continue;
    const std::string value = bad_value(f);
    const std::string arg =
        f.kind == "boolean" ? "--" + f.name + "=1" : "--" + f.name + " " + value;
    r = bfcn_run(path + " " + arg);
    INFO(r.output);
    CHECK(r.status == 1);
    CHECK_THAT(r.output, Catch::StartsWith(cmd + ": --" + f.name) &&
                             Catch::Contains("'" + (f.kind == "boolean" ? "1" : value) + "'") &&
                             !Catch::Contains("internal error"));
    if (f.kind == "integer" && f.has_min) {
      const std::string low = std::to_string(f.min - 1);
      r = bfcn_run(path + " --" + f.name + " " + low);
      INFO(r.output);
      CHECK(r.status == 1);
      CHECK_THAT(r.output, Catch::StartsWith(cmd + ": --" + f.name + ": expected an integer") &&
                               Catch::Contains("got '" + low + "'"));
    }
  }
  r = bfcn_run(path + " --no-such-flag 1");
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::StartsWith(cmd + ": unknown flag '--no-such-flag'"));
  if (!flags.empty() && flags[0].name.size() >= 4) {  // a typo gets a hint
    const std::string typo = flags[0].name.substr(0, flags[0].name.size() - 1);
    r = bfcn_run(path + " --" + typo + (flags[0].kind == "boolean" ? "" : " 1"));
    INFO(r.output);
    CHECK(r.status == 1);
    if (names.count("--" + typo) == 0)
      CHECK_THAT(r.output, Catch::Contains("did you mean --" + flags[0].name + "?"));
  }
  return names;
}

// All leaf commands under a group path ("" = bfcn itself), sweeping groups on the way.
void collect(const std::string& path, std::map<std::string, std::set<std::string>>& found) {
  auto r = bfcn_run(path + " --help");
  INFO("bfcn " + path + " --help");
  INFO(r.output);
  if (path == "bench" && !BFCN_HAVE_BENCH) {
    CHECK(r.status == 1);
    CHECK_THAT(r.output, Catch::Contains("bfcn-bench was not built"));
    return;
  }
  REQUIRE(r.status == 0);
  const std::vector<std::string> cmds = group_commands(r.output);
  if (cmds.empty()) {
    found[path] = sweep_command(path);
    return;
  }
  const std::string group = path.empty() ? "bfcn" : "bfcn " + path;
  auto bad = bfcn_run(path + " no-such-command");
  INFO(bad.output);
  CHECK(bad.status == 1);
  CHECK_THAT(bad.output, Catch::StartsWith(group + ": unknown command 'no-such-command'"));
  for (const auto& c : cmds) collect(path.empty() ? c : path + " " + c, found);
}

}  // namespace

TEST_CASE("cli: every command and benchmark: --help, bad values, unknown flags exit 0/1/1",
          "[apps][cli]") {
  REQUIRE(std::filesystem::exists(test::bfcn_binary()));
  std::map<std::string, std::set<std::string>> found;
  collect("", found);
  std::set<std::string> expected = {"data make fashion-seg",
                                    "data check",
                                    "summary",
                                    "train",
                                    "eval",
                                    "export",
                                    "infer",
                                    "report"};
  if (BFCN_HAVE_BENCH)
    for (const char* b : {"bitconv", "loader", "nn", "ops", "quant", "runtime", "train"})
      expected.insert(std::string("bench ") + b);
  for (const auto& e : expected) {
    INFO(e);
    CHECK(found.count(e) == 1);
  }
  // The flags of the contract (docs/cli.md) are all there, under the same names.
  for (const auto& [path, flags] : contract_flags()) {
    if (path.rfind("bench", 0) == 0 && !BFCN_HAVE_BENCH) continue;
    INFO("docs/cli.md: bfcn " + path);
    REQUIRE(found.count(path) == 1);
    for (const auto& flag : flags) {
      INFO(flag);
      CHECK(found[path].count(flag) == 1);
    }
  }
  // bfcn alone: the command list on stderr, exit 1.
  auto r = bfcn_run("");
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("commands:"));
}

TEST_CASE("cli: bfcn bench runtime --threads abc is a user error, not an internal one",
          "[apps][cli]") {
  if (!BFCN_HAVE_BENCH) {
    auto r = bfcn_run("bench runtime --threads abc");
    CHECK(r.status == 1);
    CHECK_THAT(r.output, Catch::Contains("bfcn-bench was not built"));
    return;
  }
  auto r = bfcn_run("bench runtime --threads abc");
  CHECK(r.status == 1);
  CHECK(r.output == "bfcn bench runtime: --threads: expected an integer, got 'abc'\n");
  r = bfcn_run("bench runtime --help");
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("--threads N") && Catch::Contains("--model FILE") &&
                           Catch::Contains("Example"));
  r = bfcn_run("bench runtime --input 16x16");
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("sides >= 32, got '16x16'"));
  r = bfcn_run("bench ops --clock gpu");
  CHECK(r.status == 1);
  CHECK(r.output == "bfcn bench ops: --clock: expected one of wall, cpu, got 'gpu'\n");
}

}  // namespace bfcn
