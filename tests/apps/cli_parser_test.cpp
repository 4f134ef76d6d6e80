// The shared command-line parser and registry (cli/): typed flags with ranges and defaults, the
// one-line errors naming the command, the flag and the value, --help text, closest-match hints,
// and the dispatcher with its exit codes.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"

namespace bfcn {
namespace {

using cli::Args;
using cli::UsageError;

std::string usage_error(const std::vector<cli::Flag>& flags, const std::vector<std::string>& argv) {
  try {
    Args a("bfcn test", flags, argv);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("cli parser: typed values, defaults and both --key value forms", "[apps][cli]") {
  const std::vector<cli::Flag> flags = {
      cli::integer("threads", "N", "threads").at_least(1).defaults("2"),
      cli::number("overlap", "F", "overlap").range_open(0, 1),
      cli::choice("clock", {"wall", "cpu"}, "clock").defaults("wall"),
      cli::size("input", "input").at_least(32).defaults("512x512"),
      cli::boolean("flip", "flip"),
      cli::text("set", "K=V", "override").many(),
      cli::text("out", "DIR", "out")};
  Args a("bfcn test", flags,
         {"--threads", "4", "--overlap=0.25", "--clock", "cpu", "--input", "64x48", "--flip",
          "--set", "a=1", "--set=b=2", "--out", "-dir"});
  CHECK_FALSE(a.help());
  CHECK(a.get_int("threads") == 4);
  CHECK(a.get_double("overlap") == 0.25);
  CHECK(a.get("clock") == "cpu");
  CHECK(a.get_hw("input") == std::pair<int, int>(64, 48));
  CHECK(a.has("flip"));
  CHECK(a.get_all("set") == std::vector<std::string>{"a=1", "b=2"});
  CHECK(a.get("out") == "-dir");  // a value may start with a dash

  Args d("bfcn test", flags, {});
  CHECK(d.get_int("threads") == 2);     // declared default
  CHECK(d.get_int("threads", 7) == 7);  // absent: the caller's fallback
  CHECK_FALSE(d.has("threads"));
  CHECK(d.get("clock") == "wall");
  CHECK(d.get_hw("input") == std::pair<int, int>(512, 512));
  CHECK(d.get_double("overlap", 0.5) == 0.5);
  CHECK_FALSE(d.has("flip"));
  CHECK(d.get_all("set").empty());
  CHECK(Args("bfcn test", flags, {"--input", "96"}).get_hw("input") == std::pair<int, int>(96, 96));
}

TEST_CASE("cli parser: every bad value names the command, the flag and the value", "[apps][cli]") {
  const std::vector<cli::Flag> flags = {cli::integer("threads", "N", "threads").at_least(1),
                                        cli::integer("wbits", "W", "bits").range(1, 8),
                                        cli::number("overlap", "F", "overlap").range_open(0, 1),
                                        cli::choice("clock", {"wall", "cpu"}, "clock"),
                                        cli::size("input", "input").at_least(32),
                                        cli::boolean("flip", "flip"),
                                        cli::text("out", "DIR", "out").needed()};
  auto err = [&](std::vector<std::string> argv) {
    argv.push_back("--out");
    argv.push_back("o");
    return usage_error(flags, argv);
  };
  CHECK(err({"--threads", "abc"}) == "bfcn test: --threads: expected an integer, got 'abc'");
  CHECK(err({"--threads", "3.5"}) == "bfcn test: --threads: expected an integer, got '3.5'");
  CHECK(err({"--threads", ""}) == "bfcn test: --threads: expected an integer, got ''");
  CHECK(err({"--threads", "99999999999"}) ==
        "bfcn test: --threads: expected an integer >= 1, got '99999999999'");
  CHECK(err({"--threads", "0"}) == "bfcn test: --threads: expected an integer >= 1, got '0'");
  CHECK(err({"--wbits=9"}) == "bfcn test: --wbits: expected an integer in 1..8, got '9'");
  CHECK(err({"--overlap", "1"}) == "bfcn test: --overlap: expected a number in [0, 1), got '1'");
  CHECK(err({"--overlap", "nan"}) == "bfcn test: --overlap: expected a number, got 'nan'");
  CHECK(err({"--overlap", "0.5x"}) == "bfcn test: --overlap: expected a number, got '0.5x'");
  CHECK(err({"--clock", "gpu"}) == "bfcn test: --clock: expected one of wall, cpu, got 'gpu'");
  CHECK(err({"--input", "16x64"}) ==
        "bfcn test: --input: expected HxW such as 512x512 (or one number) with sides >= 32, got "
        "'16x64'");
  CHECK(err({"--input", "64x"}) != "");
  CHECK(err({"--input", "x64"}) != "");
  CHECK(err({"--flip=yes"}) == "bfcn test: --flip takes no value, got 'yes'");
  CHECK(err({"--threads"}) != "");  // "--threads --out": --out taken as the value, not an integer
  CHECK(usage_error(flags, {"--out"}) == "bfcn test: --out needs a value (DIR)");
  CHECK(usage_error(flags, {}) == "bfcn test: --out is required (see `bfcn test --help`)");
  CHECK(err({"--out", "p"}) == "bfcn test: --out given more than once");
  CHECK(err({"stray"}) ==
        "bfcn test: unexpected argument 'stray' (flags start with --; see `bfcn test --help`)");
  CHECK(err({"--thread", "2"}) ==
        "bfcn test: unknown flag '--thread' (did you mean --threads?); known: --threads, --wbits, "
        "--overlap, --clock, --input, --flip, --out");
  CHECK_THAT(err({"--zzzzzzzz"}), !Catch::Contains("did you mean") &&
                                      Catch::StartsWith("bfcn test: unknown flag '--zzzzzzzz'"));
  // --help wins over errors before or after it, and over a missing required flag.
  CHECK(Args("bfcn test", flags, {"--threads", "abc", "--help"}).help());
  CHECK(Args("bfcn test", flags, {"-h", "--bogus"}).help());
  CHECK(usage_error(flags, {"--threads", "abc", "--help"}).empty());
}

TEST_CASE("cli parser: --help lists every flag with its type, range and default", "[apps][cli]") {
  Args a("bfcn bench demo",
         {cli::integer("reps", "N", "timed repetitions").at_least(1).defaults("3"),
          cli::choice("arch", {"fcn8s_r18", "fcn8s_r34"}, "model").defaults("fcn8s_r18"),
          cli::size("input", "input size").at_least(32), cli::boolean("flip", "flip it")},
         {"--help"}, {"", "What it does.", {"bfcn bench demo --reps 1"}});
  const std::string h = a.help_text();
  CHECK_THAT(h, Catch::StartsWith("usage: bfcn bench demo [flags]\nWhat it does.\n"));
  CHECK_THAT(h, Catch::Contains("--reps N") &&
                    Catch::Contains("timed repetitions (integer >= 1; default 3)"));
  CHECK_THAT(h, Catch::Contains("--arch fcn8s_r18|fcn8s_r34") &&
                    Catch::Contains("(one of fcn8s_r18, fcn8s_r34; default fcn8s_r18)"));
  CHECK_THAT(h,
             Catch::Contains("--input HxW") && Catch::Contains("(HxW or one side, sides >= 32)"));
  CHECK_THAT(h, Catch::Contains("--flip ") && Catch::Contains("-h, --help"));
  CHECK_THAT(h, Catch::Contains("Example:\n  bfcn bench demo --reps 1\n"));
  // A default that its own flag would reject is a programming error, caught at once.
  CHECK_THROWS_AS(Args("bfcn test", {cli::integer("n", "N", "n").at_least(1).defaults("0")}, {}),
                  UsageError);
  // Reading a flag that was never declared is an internal error (exit 2), not a user error.
  Args empty("bfcn test", {}, {});
  CHECK_THROWS_AS(empty.get("nope"), std::logic_error);
}

TEST_CASE("cli parser: closest-match hints", "[apps][cli]") {
  CHECK(cli::edit_distance("threads", "threads") == 0);
  CHECK(cli::edit_distance("thread", "threads") == 1);
  CHECK(cli::edit_distance("kitten", "sitting") == 3);
  CHECK(cli::edit_distance("", "abc") == 3);
  CHECK(cli::closest("--thread", {"--reps", "--threads", "--json"}) == "--threads");
  CHECK(cli::closest("--jsno", {"--reps", "--threads", "--json"}) == "--json");
  CHECK(cli::closest("--colour", {"--color", "--out"}) == "--color");
  CHECK(cli::closest("--banana", {"--reps", "--json"}).empty());
}

namespace {
std::vector<std::string> g_seen;
int record_run(const cli::Args& a) {
  g_seen = {a.command(), a.get("name", "-")};
  return 7;
}
int record_raw(const std::vector<std::string>& args) {
  g_seen = args;
  return 5;
}
}  // namespace

BFCN_REGISTER_COMMAND("bfcn-test", cli::Command("make thing", "two words")
                                       .with_flags({cli::text("name", "N", "a name")})
                                       .runs(record_run));
BFCN_REGISTER_COMMAND("bfcn-test", cli::Command("check", "one word")
                                       .with_flags({cli::integer("n", "N", "n").needed()})
                                       .runs(record_run));
BFCN_REGISTER_COMMAND("bfcn-test", cli::Command("raw", "unparsed").forwards(record_raw));

TEST_CASE("cli registry: one dispatcher for bfcn, bfcn data and bfcn bench", "[apps][cli]") {
  const cli::Group g{"bfcn-test", "Test group.", "footer line\n"};
  CHECK(cli::dispatch(g, {"make", "thing", "--name", "x"}) == 7);
  CHECK(g_seen == std::vector<std::string>{"bfcn-test make thing", "x"});
  CHECK(cli::dispatch(g, {"raw", "--anything", "goes"}) == 5);
  CHECK(g_seen == std::vector<std::string>{"--anything", "goes"});
  g_seen.clear();
  CHECK(cli::dispatch(g, {"check", "--help"}) == 0);  // help without the required flag
  CHECK(g_seen.empty());
  CHECK(cli::dispatch(g, {"--help"}) == 0);
  CHECK(cli::dispatch(g, {}) == 1);
  const std::string h = cli::group_help(g);
  CHECK_THAT(h, Catch::StartsWith("Test group.\n\nusage: bfcn-test <command> [flags]"));
  CHECK_THAT(h,
             Catch::Contains("commands:\n  check       one word\n  make thing  two words\n  raw"));
  CHECK_THAT(h, Catch::EndsWith("footer line\n"));
  auto error_of = [&](const std::vector<std::string>& argv) {
    try {
      cli::dispatch(g, argv);
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(error_of({"chek"}) ==
        "bfcn-test: unknown command 'chek' (did you mean 'check'?); known: check, make thing, raw "
        "(see `bfcn-test --help`)");
  CHECK_THAT(error_of({"make", "other"}),
             Catch::Contains("unknown command 'make other' (did you mean 'make thing'?)"));
  CHECK(error_of({"check", "--n", "x"}) == "bfcn-test check: --n: expected an integer, got 'x'");
  CHECK(error_of({"check"}) == "bfcn-test check: --n is required (see `bfcn-test check --help`)");
  // Exit codes: a usage error 1 (printed as it is), another bfcn::Error 1, anything else 2.
  CHECK(cli::run_main("p", [] { return 3; }) == 3);
  CHECK(cli::run_main("p", [&] { return cli::dispatch(g, {"chek"}); }) == 1);
  CHECK(cli::run_main("p", []() -> int { throw Error("bad"); }) == 1);
  CHECK(cli::run_main("p", []() -> int { throw std::runtime_error("bug"); }) == 2);
}

}  // namespace bfcn
