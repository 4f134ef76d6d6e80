// The flag parser meant to serve `bfcn` and `bfcn-bench` alike (issue 19: apps/ and bench/ move
// onto it from their own parsers; not yet wired in). A command declares its flags with a type, a
// default and help text; every value is checked while parsing, before any work starts, so a typo
// or a bad value ends the command with exit 1 and one line naming the command, the flag and the
// value ("bfcn bench runtime: --threads: expected an integer, got 'abc'"). --help / -h print the
// generated flag table. Accepted forms: `--key value`, `--key=value`, boolean `--flag`, and
// repeatable flags (`--set a=1 --set b=2`).
#pragma once

#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/json_read.h"

namespace bfcn::cli {

// A bad command line (unknown flag, bad value, missing flag). Its message already names the
// command, so the program prints it as it is and exits 1.
class UsageError : public Error {
 public:
  using Error::Error;
};

enum class FlagType { text, integer, number, boolean, choice, size };

struct Flag {
  std::string name;  // without dashes: "threads"
  FlagType type = FlagType::text;
  std::string meta;  // the value's placeholder in --help: "N", "FILE"
  std::string help;
  std::string def;  // default in text form: shown in --help, returned when the flag is absent
  // integer / number: accepted range, [lo, hi] (or [lo, hi) with hi_open); size: smallest side.
  double lo = -std::numeric_limits<double>::infinity();
  double hi = std::numeric_limits<double>::infinity();
  bool hi_open = false;
  std::vector<std::string> choices;  // choice
  bool repeatable = false;
  bool required = false;

  Flag& at_least(double v);
  Flag& range(double min, double max);         // inclusive
  Flag& range_open(double min, double below);  // [min, below)
  Flag& defaults(std::string text);
  Flag& many();
  Flag& needed();
  // "integer >= 1; default 2", the part of the --help line the parser generates.
  std::string annotation() const;
};

// Flag declarations. meta is the placeholder shown in --help ("N", "FILE", "HxW").
Flag text(std::string name, std::string meta, std::string help);
Flag integer(std::string name, std::string meta, std::string help);
Flag number(std::string name, std::string meta, std::string help);
Flag boolean(std::string name, std::string help);
Flag choice(std::string name, std::vector<std::string> choices, std::string help);
Flag size(std::string name, std::string help);  // "512x384" or "512" (square); sides >= at_least

// What a command shows in --help besides its flags.
struct HelpText {
  std::string usage;        // "bfcn export --checkpoint CKPT --out MODEL.bfcn" (default: generated)
  std::string description;  // one paragraph
  std::vector<std::string> examples;
};

class Args {
 public:
  // Parses args (program and command names excluded) against flags; throws UsageError naming
  // `command` ("bfcn bench runtime"). With --help or -h anywhere, help() is set and nothing throws.
  Args(std::string command, std::vector<Flag> flags, const std::vector<std::string>& args,
       HelpText help_text = {});

  bool help() const { return help_; }
  const std::string& command() const { return command_; }
  bool has(const std::string& name) const;
  // The last value given; else the declared default; else fallback.
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::string require(const std::string& name) const;  // "bfcn train: --config is required ..."
  // Typed values (already checked by the parser); when absent: the fallback if one is passed,
  // else the declared default.
  int get_int(const std::string& name) const;
  int get_int(const std::string& name, int fallback) const;
  double get_double(const std::string& name) const;
  double get_double(const std::string& name, double fallback) const;
  std::pair<int, int> get_hw(const std::string& name) const;
  std::pair<int, int> get_hw(const std::string& name, std::pair<int, int> fallback) const;
  std::vector<std::string> get_all(const std::string& name) const;
  // The flag table (one line per flag, with its type, range and default).
  std::string usage() const;
  // The whole --help text: usage line, description, flag table, examples.
  std::string help_text() const;

 private:
  const Flag& spec(const std::string& name) const;
  std::string command_;
  std::vector<Flag> flags_;
  HelpText text_;
  std::map<std::string, std::vector<std::string>> values_;
  bool help_ = false;
};

// Parses "512x512" or "512" into (h, w); throws UsageError naming the flag on bad input or a side
// below min_side.
std::pair<int, int> parse_hw(const std::string& flag, const std::string& text, int min_side = 1);

// "Did you mean" hints: core's edit distance and closest match (core/json_read.h), shared with the
// config readers.
using bfcn::edit_distance;
inline std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  return closest_match(word, candidates);
}

}  // namespace bfcn::cli
