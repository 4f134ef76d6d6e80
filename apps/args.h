// A small flag parser for subcommands: `--key value`, `--key=value`, boolean `--flag`, and
// repeatable flags (`--set a=1 --set b=2`). Unknown flags and missing values throw bfcn::Error
// naming the flag, so every subcommand rejects typos the same way.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace bfcn::app {

struct FlagSpec {
  std::string name;  // without dashes: "config"
  bool takes_value = true;
  bool repeatable = false;
  std::string help;  // "FILE  model/training config (JSON)"
};

class Args {
 public:
  // Parses args against specs; "--help"/"-h" sets help(). Positional arguments are collected.
  Args(const std::string& command, const std::vector<FlagSpec>& specs,
       const std::vector<std::string>& args);

  bool help() const { return help_; }
  bool has(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::string require(const std::string& name) const;  // error "bfcn train: --config is required"
  int get_int(const std::string& name, int fallback) const;
  double get_double(const std::string& name, double fallback) const;
  std::vector<std::string> get_all(const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // The flag table for --help.
  std::string usage() const;

 private:
  std::string command_;
  std::vector<FlagSpec> specs_;
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

// Parses "512x512" or "512" into (h, w); throws naming the flag on bad input.
std::pair<int, int> parse_hw(const std::string& flag, const std::string& text);

}  // namespace bfcn::app
