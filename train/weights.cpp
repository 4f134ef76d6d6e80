// Model weights ↔ TensorFile. Loading first matches every name and shape, and only then copies, so
// a strict load that fails leaves the model untouched.
#include "train/weights.h"

#include <map>
#include <set>
#include <sstream>

#include "core/error.h"

namespace bfcn {
namespace {

std::string list_names(const std::vector<std::string>& names, size_t max_shown = 10) {
  std::ostringstream os;
  for (size_t i = 0; i < names.size() && i < max_shown; ++i) os << (i ? ", " : "") << names[i];
  if (names.size() > max_shown) os << ", ... (" << names.size() - max_shown << " more)";
  return os.str();
}

bool is_weight_key(const std::string& key) {
  auto starts = [&](const char* g) {
    std::string p = std::string(g) + "/";
    return key.compare(0, p.size(), p) == 0;
  };
  return starts(kParamsGroup) || starts(kBuffersGroup);
}

}  // namespace

std::string LoadReport::str() const {
  std::ostringstream os;
  os << "loaded " << loaded.size();
  if (!missing.empty()) os << "; missing " << missing.size() << " (" << list_names(missing) << ")";
  if (!unexpected.empty())
    os << "; unexpected " << unexpected.size() << " (" << list_names(unexpected) << ")";
  if (!shape_mismatch.empty())
    os << "; shape mismatch " << shape_mismatch.size() << " (" << list_names(shape_mismatch) << ")";
  return os.str();
}

void add_model_weights(TensorFile& tf, const Module& m) {
  for (const auto& [name, p] : m.named_parameters())
    tf.tensors[std::string(kParamsGroup) + "/" + name] = p.value();
  for (const auto& [name, b] : m.named_buffers())
    tf.tensors[std::string(kBuffersGroup) + "/" + name] = b;
}

LoadReport load_model_weights(Module& m, const TensorFile& tf, bool strict,
                              const std::string& source) {
  // Destinations: the module's own storage (shallow handles).
  std::map<std::string, Tensor> dest;
  for (auto& [name, p] : m.named_parameters())
    dest[std::string(kParamsGroup) + "/" + name] = p.value();
  for (auto& [name, b] : m.named_buffers()) dest[std::string(kBuffersGroup) + "/" + name] = b;

  LoadReport r;
  std::vector<std::pair<Tensor, Tensor>> copies;  // (dst, src)
  for (const auto& [key, dst] : dest) {
    auto it = tf.tensors.find(key);
    if (it == tf.tensors.end()) {
      r.missing.push_back(key);
    } else if (it->second.shape() != dst.shape() ||
               (it->second.dtype() != dst.dtype() && dst.dtype() != DType::f32)) {
      r.shape_mismatch.push_back(key + " " + it->second.shape().str() + " " +
                                 dtype_name(it->second.dtype()) + " vs model " + dst.shape().str() +
                                 " " + dtype_name(dst.dtype()));
    } else {
      r.loaded.push_back(key);
      copies.emplace_back(dst, it->second);
    }
  }
  for (const auto& [key, t] : tf.tensors)
    if (is_weight_key(key) && !dest.count(key)) r.unexpected.push_back(key);

  if (strict) {
    BFCN_CHECK_IO(r.missing.empty() && r.unexpected.empty() && r.shape_mismatch.empty(), source,
                  ": weights do not match the model: ", r.str(),
                  " (the model config must match the one the weights were made for)");
  } else {
    BFCN_CHECK_IO(!r.loaded.empty(), source,
                  ": no tensor matched the model by name and shape (expected groups 'params/' and "
                  "'buffers/' with names like 'params/layer1.0.conv1.weight'): ",
                  r.str());
  }
  for (auto& [dst, src] : copies) dst.copy_from(src.dtype() == dst.dtype() ? src : src.to_f32());
  return r;
}

}  // namespace bfcn
