// A random-weight W1A2 FCN-8s/ResNet-18 (21 classes) saved as a checkpoint, for tests that run
// `bfcn export` / `bfcn infer` on it. Header-only: the runtime-only test build does not link the
// training engine this needs.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "layers/model.h"
#include "train/checkpoint.h"

namespace bfcn::test {

inline void save_random_w1a2_checkpoint(const std::filesystem::path& path, uint64_t seed,
                                        const std::filesystem::path& data_root) {
  const nlohmann::json cfg = {
      {"model",
       {{"backbone", "resnet18"},
        {"head", "fcn8s"},
        {"n_classes", 21},
        {"quant", {{"w_bits", 1}, {"a_bits", 2}, {"first_last_fp", true}}}}},
      {"data", {{"dataset", "voc"}, {"root", data_root.string()}}}};
  auto model = build_model(cfg["model"], seed);
  model->eval();
  save_checkpoint(path, *model, nullptr, TrainState{}, cfg);
}

}  // namespace bfcn::test
