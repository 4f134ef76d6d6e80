// Training checkpoints (HDF5 through train/hdf5_io): model params + buffers (train/weights),
// optimizer state under "optim/...", and the training position as attributes (iteration, epoch,
// loader state, RNG state, best metric, resolved config JSON, format version). Writes are atomic
// (temp file + rename) so a crash never leaves a half-written checkpoint under its final name.
// load_model_from_checkpoint() is the entry point for eval and export: config + weights → model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/rng.h"

namespace bfcn {

class SegmentationModel;
class Module;
class Optimizer;

inline constexpr int kCheckpointFormatVersion = 1;

struct LoadedModel {
  std::shared_ptr<SegmentationModel> model;  // in eval mode
  nlohmann::json config;                     // the resolved config stored in the checkpoint
};

// Builds the model from the checkpoint's stored config (or *config_override when given; only its
// "model" section is used) and loads the weights strictly. `ckpt` may also be a training output
// DIR, meaning DIR/last.h5 (or DIR/best.h5 when last.h5 is absent).
LoadedModel load_model_from_checkpoint(const std::filesystem::path& ckpt,
                                       const nlohmann::json* config_override = nullptr);

// Where training stands; everything needed besides weights and optimizer moments to continue
// bit-exactly.
struct TrainState {
  int64_t iteration = 0;        // optimizer steps done
  int64_t epoch = 0;            // data loader epoch
  int64_t loader_position = 0;  // next sample index within the epoch
  Rng::State rng{};             // trainer RNG (dropout etc.)
  double best_miou = -1.0;      // best validation mIoU so far (-1: none yet)
  int64_t best_iteration = -1;
};

// DIR → DIR/last.h5; a file stays itself. Throws IoError naming what is missing.
std::filesystem::path resolve_checkpoint(const std::filesystem::path& dir_or_file);

// Writes atomically to `file`. `opt` may be null (weights-only file).
void save_checkpoint(const std::filesystem::path& file, const Module& model, const Optimizer* opt,
                     const TrainState& state, const nlohmann::json& config);

// Restores weights (strict), optimizer state (when opt != null) and returns the training state.
TrainState load_checkpoint(const std::filesystem::path& file, Module& model, Optimizer* opt);

// The resolved config JSON stored in a checkpoint.
nlohmann::json read_checkpoint_config(const std::filesystem::path& file);

}  // namespace bfcn
