// The command registry meant to serve `bfcn` and `bfcn-bench` alike (issue 19; apps/main.cpp and
// bench/bench_main.cpp still have their own until they move onto it). Each command registers itself
// with its flags (cli/args.h), help text and function; a group ("bfcn", "bfcn data", "bfcn bench")
// dispatches its first argument to a command, parses the rest against the command's flags and
// prints --help, so every command and benchmark gets the same --help and the same errors.
// Exit codes (docs/cli.md): 0 success, 1 user error (bfcn::Error), 2 internal error.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cli/args.h"

namespace bfcn::cli {

using RunFn = int (*)(const Args& args);
// A command that takes its arguments unparsed: a nested group (bfcn data) or a forwarder (bfcn
// bench runs the bfcn-bench binary).
using RawFn = int (*)(const std::vector<std::string>& args);

struct Command {
  Command(std::string name_, std::string summary_)
      : name(std::move(name_)), summary(std::move(summary_)) {}
  Command& describe(std::string text) {
    help.description = std::move(text);
    return *this;
  }
  Command& usage(std::string line) {
    help.usage = std::move(line);
    return *this;
  }
  Command& with_flags(std::vector<Flag> f) {
    flags = std::move(f);
    return *this;
  }
  Command& example(std::string e) {
    help.examples.push_back(std::move(e));
    return *this;
  }
  Command& runs(RunFn fn) {
    run = fn;
    return *this;
  }
  Command& forwards(RawFn fn) {
    raw = fn;
    return *this;
  }

  std::string name;     // "train", or two words for "make fashion-seg"
  std::string summary;  // one line in the group's --help
  HelpText help;
  std::vector<Flag> flags;
  RunFn run = nullptr;
  RawFn raw = nullptr;
};

struct Group {
  std::string name;    // "bfcn bench": how the user calls it
  std::string title;   // the first line of its --help
  std::string footer;  // lines after the command list (e.g. --version)
};

bool register_command(const std::string& group, Command cmd);
// The commands of a group, sorted by name.
std::vector<Command> commands(const std::string& group);
// The group's --help: title, usage line, "commands:" with one "  name  summary" line each.
std::string group_help(const Group& g);
// Runs the command named by args[0] (or args[0..1] for two-word names). No arguments: the help
// on stderr, exit 1; --help/-h/help: the help, exit 0; an unknown name: UsageError.
int dispatch(const Group& g, const std::vector<std::string>& args);
// A program's main: runs body and maps exceptions to exit codes and one stderr line. A UsageError
// is printed as it is (it names the command), another bfcn::Error as "<program>: error: ...".
int run_main(const std::string& program, const std::function<int()>& body);

}  // namespace bfcn::cli

#define BFCN_CLI_CAT_INNER(a, b) a##b
#define BFCN_CLI_CAT(a, b) BFCN_CLI_CAT_INNER(a, b)
// BFCN_REGISTER_COMMAND("bfcn", cli::Command("export", "...").with_flags({...}).runs(fn));
#define BFCN_REGISTER_COMMAND(group, ...)                                           \
  static const bool BFCN_CLI_CAT(bfcn_cli_registered_, __LINE__) [[maybe_unused]] = \
      ::bfcn::cli::register_command(group, __VA_ARGS__)
