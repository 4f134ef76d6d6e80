// Subcommands of the `bfcn` binary. Each apps/cmd_<name>.cpp registers itself with
// BFCN_REGISTER_COMMAND, so adding a subcommand touches no other file.
// Exit codes (docs/cli.md): 0 success, 1 user error (bfcn::Error), 2 internal error.
#pragma once

#include <string>
#include <vector>

namespace bfcn::app {

// args excludes the program and subcommand names: `bfcn train --config x` → {"--config", "x"}.
using CommandFn = int (*)(const std::vector<std::string>& args);

struct Command {
  const char* name;
  const char* summary;  // one line for `bfcn --help`
  CommandFn run;
};

bool register_command(const Command& cmd);
const std::vector<Command>& commands();

}  // namespace bfcn::app

#define BFCN_CAT_INNER(a, b) a##b
#define BFCN_CAT(a, b) BFCN_CAT_INNER(a, b)
#define BFCN_REGISTER_COMMAND(name, summary, fn)                            \
  static const bool BFCN_CAT(bfcn_registered_, __LINE__) [[maybe_unused]] = \
      ::bfcn::app::register_command({name, summary, fn})
