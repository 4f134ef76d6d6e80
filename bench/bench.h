// Benchmarks of `bfcn bench <name>` (the bfcn-bench binary). Each bench/bench_<name>.cpp
// registers one command in the shared registry (group "bfcn bench", cli/command.h) with its typed
// flags; speed is always reported as ratios against a peer run in the same process or script
// (oneDNN, PyTorch, our own fp32 path) — never asserted in tests.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command.h"

namespace bfcn::bench {

// Writes a benchmark's --json results to `path` and says so; throws IoError naming the file.
void write_json(const char* bench, const std::string& path, const nlohmann::json& results);

// Runs a Python peer script of bench/ (found beside the source tree of this binary or under
// ./bench) with /usr/bin/python3 and returns the JSON object on its last line starting with '{';
// on any failure {"error": "..."} with the script's output, so a missing peer never stops a bench.
nlohmann::json run_python_peer(const std::string& script, const std::string& args);

// Wall-clock seconds of the best of `reps` runs of fn after `warmup` runs.
template <class F>
double best_seconds(F&& fn, int reps = 5, int warmup = 1) {
  for (int i = 0; i < warmup; ++i) fn();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) best = s;
  }
  return best;
}

}  // namespace bfcn::bench

// BFCN_REGISTER_BENCH(cli::Command("runtime", "...").with_flags({...}).runs(fn));
#define BFCN_REGISTER_BENCH(...) BFCN_REGISTER_COMMAND("bfcn bench", __VA_ARGS__)
