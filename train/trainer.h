// The training loop behind `bfcn train`: builds model, data and optimizer from a resolved config,
// then steps (forward, loss, backward, clip, update) with periodic logging, validation (mIoU with
// eval's confusion matrix, under NoGradGuard in eval mode), checkpoints and curves.png.
// Exact resume: everything a step depends on (weights, buffers, optimizer moments, loader epoch and
// position, RNG) is in the checkpoint and the LR is a pure function of the iteration, so an
// interrupted-and-resumed run reproduces the uninterrupted run's losses bit for bit.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace bfcn {

struct TrainOptions {
  nlohmann::json config;  // resolved (resolve_config); with resume, the checkpoint's (+ --set)
  std::string source = "config";  // prefixes config errors (the file name)
  std::filesystem::path out_dir;
  std::filesystem::path resume;     // a checkpoint file (resolved); empty = fresh run
  std::filesystem::path init_from;  // weights only, non-strict; empty = config's init_from
  int threads = -1;                 // -1: train.threads from the config
  int64_t stop_at = -1;       // act as if interrupted after this iteration (tests, time boxes)
  int progress = -1;          // 1 bar, 0 plain lines, -1 auto (bar when stderr is a terminal)
  int64_t fault_nan_at = -1;  // testing: treat the loss of this iteration (1-based) as NaN
};

struct TrainResult {
  int64_t iteration = 0;   // last completed iteration
  int64_t iterations = 0;  // planned total
  bool interrupted = false;
  double last_loss = 0;
  double final_miou = -1;  // last validation (-1: none)
  double best_miou = -1;
  std::filesystem::path last_checkpoint;
};

// Throws ConfigError/IoError for bad input (before training starts), Error when the loss becomes
// NaN/Inf (naming the iteration; the last good checkpoint stays in place).
TrainResult run_training(const TrainOptions& opt);

// Asks a running run_training to stop after the current step (async-signal-safe).
void request_training_stop();

}  // namespace bfcn
