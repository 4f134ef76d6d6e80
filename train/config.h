// The training config: one JSON file with "model" (checked by build_model), "data" (checked by
// DataConfig::from_json), "train" (checked here against a table of defaults: every key's type and
// range) and an optional "init_from". Validation happens before anything is built, and every error
// names the file and the JSON path ("c.json: train.lr: expected a number in (0, 10], but got -1").
// `--set a.b=v` overrides one existing key; the value must have the type of the value it replaces.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/lr_schedule.h"
#include "train/optim.h"

namespace bfcn {

struct TrainConfig {
  OptimOptions optim;
  double lr = 0.01;
  int64_t iterations = 0;  // 0: derived from epochs
  int64_t epochs = 0;
  int batch = 8;
  LrSchedule schedule;
  double grad_clip = 0.0;           // global-norm clipping; 0 = off
  int64_t eval_interval = 0;        // validate every N iterations; 0 = at the end only
  bool eval_at_start = false;       // also validate before the first step (fine-tuning baseline)
  int64_t log_interval = 10;        // a metrics.jsonl line every N iterations
  int64_t checkpoint_interval = 0;  // ckpt_<iter>.h5 every N iterations; 0 = at the end only
  int keep_last = 3;                // ckpt_<iter>.h5 files kept
  uint64_t seed = 1;
  int threads = 0;  // 0 = OpenMP default
  // Data-parallel runs (mpirun): batch-norm statistics over all ranks' samples, not each rank's.
  bool sync_bn = false;
  // Data-parallel runs: gradients are averaged in buckets of grad_bucket_mb (MB = 2^20 bytes),
  // each reduced while the rest of the backward pass runs (grad_overlap; off: after the pass,
  // the same sums, for debugging).
  bool grad_overlap = true;
  double grad_bucket_mb = 4.0;
  // Low-bit recipe (docs/quantization.md). Before the first step of a fresh run: N batches set
  // the learned activation clips from FP statistics, then re-estimate the BN running stats.
  int calibrate_batches = 0;
  // After the last step: re-estimate BN running stats over N batches and validate again.
  int bn_recalib_end_batches = 0;
  // Distillation: a teacher checkpoint (run in eval mode, no gradients) whose logits add
  // distill_weight * (KL at distill_temperature, or MSE) to the loss. Empty: off.
  std::string teacher;
  bool distill_mse = false;
  double distill_weight = 1.0, distill_temperature = 2.0;
};

// The "train" section with every key at its default value (the schema for validation).
nlohmann::json default_train_json();

// Reads a JSON file; IoError / ConfigError naming the file and the parse position.
nlohmann::json load_json_file(const std::filesystem::path& file);

// Fills "train" defaults and "init_from", applies `--set` overrides ("train.lr=0.005"; the value
// is parsed as JSON, else taken as a string), and validates the top level and "train". The result
// is the resolved config (model/data are validated by their own builders later). `source` prefixes
// every error message.
nlohmann::json resolve_config(const nlohmann::json& user, const std::vector<std::string>& sets,
                              const std::string& source);

// One `--set path=value` on an already resolved config (type-checked; unknown paths rejected).
void apply_set(nlohmann::json& cfg, const std::string& expr, const std::string& source);

// Typed view of a validated "train" section.
TrainConfig parse_train_config(const nlohmann::json& train);

}  // namespace bfcn
