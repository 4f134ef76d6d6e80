// `bfcn export --verify`: an exported .bfcn model in the runtime against the training engine's
// quantized eval forward on the same normalised images. Besides labels and logits it compares,
// quantizer by quantizer, the activation codes of every packed tensor whose layer names its
// training quantizer ("quantizer" in docs/format.md), and sorts each differing code:
//   a rounding tie: the training engine's pre-quantizer value x·n/clip lies within tie_tolerance
//     of a rounding boundary k + 1/2, where the two engines' float sums (different order, FMA,
//     the runtime's folded BN) may land on either side. Not a bug, but one flipped code can
//     cascade through a trained network to many labels;
//   anything else: the engines compute different things (an export or kernel bug).
// The codes are compared in a second training forward that takes the runtime's code wherever the
// two differ at a tie, so every quantizer sees the runtime's inputs: a flip is counted where it
// happens, not in every layer it cascades to, and that pass's labels say how much of the label
// disagreement the ties explain.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bfcn {

class SegmentationModel;
namespace rt {
class Model;
}

struct QuantizerCodes {
  std::string quantizer, layer;  // training module, runtime layer
  int64_t codes = 0, differ = 0, ties = 0;
};

struct EngineComparison {
  int64_t images = 0, pixels = 0, same = 0;
  int64_t same_ties_resolved = 0;  // labels with the runtime's codes replayed at the ties
  double worst_image = 1.0, max_logit_diff = 0.0;
  double max_logit_diff_ties_resolved = 0.0;  // float rounding only, when every difference is a tie
  std::vector<QuantizerCodes> quantizers;     // summed over images, in execution order
  std::string first_non_tie;                  // where the first non-tie difference was, if any

  int64_t codes() const;
  int64_t differ() const;
  int64_t ties() const;
  double agreement() const { return pixels ? double(same) / double(pixels) : 0.0; }
  double agreement_ties_resolved() const {
    return pixels ? double(same_ties_resolved) / double(pixels) : 0.0;
  }
};

// Runs image x [1,3,h,w] (normalised) through both engines and adds the result to `acc`. The
// model must be in eval mode; its quantizers' observers are set during the call and cleared after.
void compare_engines_on_image(SegmentationModel& model, const rt::Model& runtime, const Tensor& x,
                              EngineComparison& acc, double tie_tolerance = 1e-5);

// One paragraph for people: agreement, codes, ties, and what they mean.
std::string describe(const EngineComparison& c, double tie_tolerance = 1e-5);

}  // namespace bfcn
