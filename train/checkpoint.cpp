// Checkpoint layout (one HDF5 file through train/hdf5_io):
//   params/<name>, buffers/<name>      model weights (train/weights)
//   optim/<param name>/<slot>          optimizer state (momentum, exp_avg, exp_avg_sq)
//   attrs: "bfcn_checkpoint" = format version, "config" = resolved config JSON,
//          "train_state" = {"iteration", "epoch", "loader_position", "rng", "best_miou", ...}
#include "train/checkpoint.h"

#include "core/error.h"
#include "layers/model.h"
#include "train/hdf5_io.h"
#include "train/optim.h"
#include "train/weights.h"

namespace bfcn {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kOptimGroup = "optim/";

json rng_to_json(const Rng::State& s) {
  return json{{"s", {s.s[0], s.s[1], s.s[2], s.s[3]}},
              {"seed", s.seed},
              {"has_spare", s.has_spare},
              {"spare", static_cast<double>(s.spare)}};
}

Rng::State rng_from_json(const json& j) {
  Rng::State s{};
  for (int i = 0; i < 4; ++i) s.s[i] = j.at("s").at(i).get<uint64_t>();
  s.seed = j.at("seed").get<uint64_t>();
  s.has_spare = j.at("has_spare").get<bool>();
  s.spare = static_cast<float>(j.at("spare").get<double>());
  return s;
}

json attr_json(const TensorFile& tf, const char* key, const fs::path& file) {
  auto it = tf.attrs.find(key);
  BFCN_CHECK_IO(it != tf.attrs.end(), file.string(), ": not a bfcn training checkpoint (no '", key,
                "' attribute); weights-only files go to --init-from");
  try {
    return json::parse(it->second);
  } catch (const json::parse_error& e) {
    throw IoError(file.string() + ": attribute '" + key + "' is not valid JSON: " + e.what());
  }
}

}  // namespace

fs::path resolve_checkpoint(const fs::path& dir_or_file) {
  if (fs::is_directory(dir_or_file)) {
    for (const char* name : {"last.h5", "best.h5"})
      if (fs::exists(dir_or_file / name)) return dir_or_file / name;
    throw IoError(dir_or_file.string() +
                  ": no last.h5 or best.h5 in this folder; pass a training output folder or a "
                  "checkpoint file");
  }
  BFCN_CHECK_IO(fs::exists(dir_or_file), dir_or_file.string(),
                ": checkpoint not found (expected a training output folder or a .h5 file)");
  return dir_or_file;
}

void save_checkpoint(const fs::path& file, const Module& model, const Optimizer* opt,
                     const TrainState& st, const json& config) {
  TensorFile tf;
  add_model_weights(tf, model);
  json state = {{"iteration", st.iteration},
                {"epoch", st.epoch},
                {"loader_position", st.loader_position},
                {"rng", rng_to_json(st.rng)},
                {"best_miou", st.best_miou},
                {"best_iteration", st.best_iteration}};
  if (opt) {
    for (const auto& [name, t] : opt->state()) tf.tensors[kOptimGroup + name] = t;
    state["optim_type"] = opt->options().type;
    state["optim_steps"] = opt->steps();
  }
  tf.attrs["bfcn_checkpoint"] = std::to_string(kCheckpointFormatVersion);
  tf.attrs["train_state"] = state.dump();
  tf.attrs["config"] = config.dump();
  save_tensor_file(file, tf);
}

TrainState load_checkpoint(const fs::path& file, Module& model, Optimizer* opt) {
  TensorFile tf = load_tensor_file(file);
  const json version = attr_json(tf, "bfcn_checkpoint", file);
  BFCN_CHECK_IO(version.get<int>() == kCheckpointFormatVersion, file.string(),
                ": checkpoint format version ", version.dump(), ", this build reads ",
                kCheckpointFormatVersion);
  const json s = attr_json(tf, "train_state", file);
  load_model_weights(model, tf, /*strict=*/true, file.string());
  TrainState st;
  st.iteration = s.at("iteration").get<int64_t>();
  st.epoch = s.at("epoch").get<int64_t>();
  st.loader_position = s.at("loader_position").get<int64_t>();
  st.rng = rng_from_json(s.at("rng"));
  st.best_miou = s.at("best_miou").get<double>();
  st.best_iteration = s.at("best_iteration").get<int64_t>();
  if (opt) {
    BFCN_CHECK_IO(s.contains("optim_type"), file.string(),
                  ": holds no optimizer state; use --init-from to start from its weights");
    const std::string type = s.at("optim_type").get<std::string>();
    BFCN_CHECK_CONFIG(type == opt->options().type, file.string(), ": optimizer '", type,
                      "' in the checkpoint, but the config asks for '", opt->options().type,
                      "'; resume with the same optimizer or use --init-from");
    std::map<std::string, Tensor> state;
    const std::string prefix = kOptimGroup;
    for (const auto& [key, t] : tf.tensors)
      if (key.compare(0, prefix.size(), prefix) == 0) state[key.substr(prefix.size())] = t;
    opt->load_state(state, s.at("optim_steps").get<int64_t>());
  }
  return st;
}

json read_checkpoint_config(const fs::path& file) {
  return attr_json(load_tensor_file(file), "config", file);
}

LoadedModel load_model_from_checkpoint(const fs::path& ckpt, const json* config_override) {
  const fs::path file = resolve_checkpoint(ckpt);
  TensorFile tf = load_tensor_file(file);
  LoadedModel out;
  if (config_override) {
    out.config = *config_override;
  } else {
    out.config = attr_json(tf, "config", file);
  }
  BFCN_CHECK_CONFIG(out.config.contains("model"), file.string(),
                    ": the config has no \"model\" section");
  out.model = build_model(out.config.at("model"), 0, "model");
  load_model_weights(*out.model, tf, /*strict=*/true, file.string());
  out.model->eval();
  return out;
}

}  // namespace bfcn
