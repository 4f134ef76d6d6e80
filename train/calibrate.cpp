// Learned-clip calibration and BN re-estimation (see calibrate.h).
#include "train/calibrate.h"

#include <vector>

#include "autograd/var.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/module.h"

namespace bfcn {

int calibrate_learned_clips(Module& model, const BatchSource& next, int batches) {
  std::vector<QuantAct*> acts;
  for (const auto& [name, m] : model.named_modules())
    if (auto* q = dynamic_cast<QuantAct*>(m); q && q->learned_clip()) acts.push_back(q);
  if (acts.empty() || batches <= 0) return 0;
  NoGradGuard ng;
  model.train();
  for (auto* q : acts) q->begin_calibration();
  Tensor x;
  for (int b = 0; b < batches && next(x); ++b) model.forward(Var(x));
  for (auto* q : acts) q->end_calibration();
  return static_cast<int>(acts.size());
}

int reestimate_batch_norm(Module& model, const BatchSource& next, int batches) {
  std::vector<BatchNorm2d*> bns;
  for (const auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) bns.push_back(bn);
  if (bns.empty() || batches <= 0) return 0;
  std::vector<float> momenta;
  for (auto* bn : bns) momenta.push_back(bn->momentum());
  NoGradGuard ng;
  model.train();
  Tensor x;
  int used = 0;
  for (; used < batches && next(x); ++used) {
    // Momentum 1/(i+1): running stats become the plain average of the batch statistics.
    for (auto* bn : bns) bn->set_momentum(1.0f / static_cast<float>(used + 1));
    model.forward(Var(x));
  }
  for (size_t i = 0; i < bns.size(); ++i) bns[i]->set_momentum(momenta[i]);
  return used;
}

}  // namespace bfcn
