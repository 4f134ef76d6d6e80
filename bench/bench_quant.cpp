// `bfcn bench quant`: what DoReFa quantization adds to a training step. Times forward+backward of
// one block conv3x3 -> BN -> activation at FP32 (Conv2d + ReLU) and quantized (QConv2d + QuantAct)
// in the same run, and the quantizers alone (activation: clip+round vs ReLU; weight: fw vs none).
// Ratios are what matter (issue 3 target: a W1A2 step <= 1.15x the FP32 step).
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "autograd/quant.h"
#include "bench/bench.h"
#include "core/error.h"
#include "core/rng.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/conv.h"

namespace bfcn::bench {
namespace {

Tensor random(const Shape& s, Rng& rng, float lo, float hi) {
  Tensor t = Tensor::empty(s);
  for (float& v : t.span<float>()) v = rng.uniform(lo, hi);
  return t;
}

struct Row {
  std::string name;
  double ms;
  double ratio;  // vs the FP32 reference of its group
};

int run(const cli::Args& a) {
  const int batch = a.get_int("batch"), channels = a.get_int("channels"), reps = a.get_int("reps"),
            threads = a.get_int("threads", 0);
  const std::pair<int, int> hw = a.get_hw("input");
  const int h = hw.first, w = hw.second;
  const std::string json_path = a.get("json");
  if (threads > 0) omp_set_num_threads(threads);

  Rng rng(1);
  const Conv2dOptions o{channels, channels, 3, 1, 1};
  const Tensor x = random({batch, channels, h, w}, rng, -0.5f, 1.5f);
  const Tensor seed = random({batch, channels, h, w}, rng, -1.0f, 1.0f);
  std::vector<Row> rows;

  // Block variants, timed interleaved (round-robin, best of reps each) so that load drifts on a
  // shared machine hit every variant alike. One step: forward, backward from a fixed seed.
  struct Variant {
    std::string name;
    std::shared_ptr<Module> conv, act;
    std::shared_ptr<BatchNorm2d> bn;
    double best = 1e30;
  };
  std::vector<Variant> variants;
  {
    Rng r(2);
    variants.push_back({"block FP32 (Conv2d+BN+ReLU)", std::make_shared<Conv2d>(o, r),
                        std::make_shared<ReLU>(), std::make_shared<BatchNorm2d>(channels)});
  }
  for (const QuantSpec q :
       {QuantSpec{1, 2}, QuantSpec{1, 2, 32, true}, QuantSpec{2, 2}, QuantSpec{1, 2, 8}}) {
    Rng r(2);
    std::string name = "block W" + std::to_string(q.w_bits) + "A" + std::to_string(q.a_bits);
    if (q.g_bits < 32) name += "G" + std::to_string(q.g_bits);
    if (q.w_scale_channel) name += " per-channel E";
    variants.push_back({name, std::make_shared<QConv2d>(o, q, r),
                        std::make_shared<QuantAct>(q.a_bits),
                        std::make_shared<BatchNorm2d>(channels)});
  }
  const Var xv(x, true);
  for (int rep = 0; rep <= reps; ++rep)  // rep 0 is the warm-up
    for (Variant& v : variants) {
      const double s = best_seconds(
          [&] {
            v.conv->zero_grad();
            v.bn->zero_grad();
            v.act->forward(v.bn->forward(v.conv->forward(xv))).backward(seed);
          },
          1, 0);
      if (rep > 0) v.best = std::min(v.best, s);
    }
  const double fp = 1e3 * variants[0].best;
  for (const Variant& v : variants) rows.push_back({v.name, 1e3 * v.best, 1e3 * v.best / fp});

  // The quantizers alone, fwd+bwd, on the activation and on the weight.
  const Var xa(x, true);
  const double relu_ms = 1e3 * best_seconds([&] { relu(xa).backward(seed); }, reps);
  const double qa_ms = 1e3 * best_seconds([&] { quantize_activation(xa, 2).backward(seed); }, reps);
  rows.push_back({"act ReLU fwd+bwd", relu_ms, 1.0});
  rows.push_back({"act quantize_activation(2) fwd+bwd", qa_ms, qa_ms / relu_ms});
  const Tensor wt = random({channels, channels, 3, 3}, rng, -0.1f, 0.1f);
  const Tensor wseed = random(wt.shape(), rng, -1.0f, 1.0f);
  const Var wv(wt, true);
  for (int k : {1, 2}) {
    const double ms = 1e3 * best_seconds([&] { quantize_weight(wv, k).backward(wseed); }, reps);
    rows.push_back({"weight quantize_weight(" + std::to_string(k) + ") fwd+bwd", ms, ms / fp});
  }

  std::printf("bfcn bench quant: batch %d, %d->%d 3x3 @ %dx%d, %d threads, best of %d\n", batch,
              channels, channels, h, w, omp_get_max_threads(), reps);
  std::printf("%-40s %10s %8s\n", "what", "ms", "ratio");
  for (const Row& r : rows) std::printf("%-40s %10.3f %7.3fx\n", r.name.c_str(), r.ms, r.ratio);
  std::printf("(block ratios vs the FP32 block; act vs ReLU; weight vs the FP32 block)\n");
  if (!json_path.empty()) {
    nlohmann::json j;
    j["batch"] = batch;
    j["channels"] = channels;
    j["input"] = std::to_string(h) + "x" + std::to_string(w);
    j["threads"] = omp_get_max_threads();
    for (const Row& r : rows)
      j["rows"].push_back({{"name", r.name}, {"ms", r.ms}, {"ratio", r.ratio}});
    write_json("quant", json_path, j);
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_BENCH(
    cli::Command("quant", "DoReFa quantization overhead: FP32 vs W1A2/W2A2 block fwd+bwd")
        .describe("Times fwd+bwd of conv3x3(C->C) -> BN -> act at FP32 vs W1A2/W2A2 and the "
                  "quantizers alone.")
        .with_flags(
            {cli::integer("batch", "B", "batch size").at_least(1).defaults("2"),
             cli::integer("channels", "C", "channels").at_least(1).defaults("128"),
             cli::size("input", "input size").defaults("40x40"),
             cli::integer("threads", "N", "OpenMP threads (default: all)").at_least(1),
             cli::integer("reps", "R", "timed repetitions (best of)").at_least(1).defaults("5"),
             cli::text("json", "FILE", "write the rows as JSON")})
        .example("bfcn bench quant --batch 2 --channels 128 --input 40x40")
        .runs(run));

}  // namespace bfcn::bench
