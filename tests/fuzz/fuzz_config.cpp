// Fuzzes the JSON config path of `bfcn train`: parse -> resolve_config (train section, --set
// overrides) -> resolve_model_config -> DataConfig::from_json. Bad input must end in bfcn::Error
// (ConfigError naming the key), never a crash or an escaped nlohmann exception.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "datasets/dataset.h"
#include "layers/model.h"
#include "train/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const nlohmann::json user = nlohmann::json::parse(data, data + size, nullptr, false);
  if (user.is_discarded()) return 0;  // not JSON: load_json_file reports the parse position
  try {
    const nlohmann::json cfg = bfcn::resolve_config(user, {}, "fuzz.json");
    bfcn::parse_train_config(cfg.at("train"));
    if (cfg.contains("model")) bfcn::resolve_model_config(cfg["model"]);
    if (cfg.contains("data")) bfcn::DataConfig::from_json(cfg["data"], "fuzz.json");
  } catch (const bfcn::Error&) {
  }
  return 0;
}
