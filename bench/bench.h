// Benchmarks of `bfcn bench <name>` (the bfcn-bench binary). Each bench/bench_<name>.cpp
// registers one entry; speed is always reported as ratios against a peer run in the same process
// or script (oneDNN, PyTorch, our own fp32 path) — never asserted in tests.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bfcn::bench {

using BenchFn = int (*)(const std::vector<std::string>& args);
struct Bench {
  const char* name;
  const char* summary;
  BenchFn run;
};
bool register_bench(const Bench& b);
const std::vector<Bench>& benches();

// Writes a benchmark's --json results to `path` and says so; throws IoError naming the file.
void write_json(const char* bench, const std::string& path, const nlohmann::json& results);

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

#define BFCN_BENCH_CAT_INNER(a, b) a##b
#define BFCN_BENCH_CAT(a, b) BFCN_BENCH_CAT_INNER(a, b)
#define BFCN_REGISTER_BENCH(name, summary, fn)                                          \
  static const bool BFCN_BENCH_CAT(bfcn_bench_registered_, __LINE__) [[maybe_unused]] = \
      ::bfcn::bench::register_bench({name, summary, fn})
