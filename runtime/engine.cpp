// rt::Model: the facade over the engine's stages (runtime/engine_internal.h). from_file = load
// (model_load.cpp: read and validate) + plan (model_plan.cpp: buffer lifetimes, fusions); run =
// execute (model_run.cpp); to_fp32 = the plan stage's FP32 rewrite of a copy.
#include "runtime/engine.h"

#include "core/error.h"
#include "runtime/engine_internal.h"

namespace bfcn::rt {

Model::Model() : impl_(std::make_unique<Impl>()) {}
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

int Model::num_classes() const { return impl_->num_classes; }
const std::vector<std::string>& Model::class_names() const { return impl_->class_names; }
const std::vector<std::array<uint8_t, 3>>& Model::palette() const { return impl_->palette; }
const nlohmann::json& Model::header() const { return impl_->header; }
void Model::set_stem_int8(bool on, int weight_bits) {
  BFCN_CHECK(weight_bits == 8 || weight_bits == 15,
             "Model::set_stem_int8: weight_bits must be 8 or 15, got ", weight_bits);
  impl_->stem_int8 = on;
  impl_->stem_int8_weight_bits = weight_bits;
}
bool Model::stem_int8() const { return impl_->stem_int8; }
int Model::stem_int8_weight_bits() const { return impl_->stem_int8_weight_bits; }
void Model::set_profile(std::vector<LayerTiming>* sink) const { impl_->profile = sink; }
void Model::set_trace(std::function<void(const TracedTensor&)> sink) const {
  impl_->trace = std::move(sink);
}

Model Model::load(const std::string& path) { return from_file(read_model_file(path)); }

Model Model::from_file(ModelFile file) {
  Model m;
  read_graph(file, *m.impl_);
  plan_graph(*m.impl_);
  return m;
}

void Model::run(const float* image_nchw, int h, int w, std::vector<float>* logits,
                std::vector<uint8_t>* labels, bool normalize) const {
  execute(*impl_, image_nchw, h, w, logits, labels, normalize);
}

Model Model::to_fp32() const {
  Model m;
  *m.impl_ = *impl_;
  m.impl_->profile = nullptr;
  m.impl_->trace = nullptr;
  rewrite_fp32(*m.impl_);
  return m;
}

}  // namespace bfcn::rt
