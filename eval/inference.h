// Model-agnostic dense inference: whole image (padded to the model's output-stride multiple and
// cropped back) or sliding windows with overlap (Cityscapes 2048x1024), plus flip and multi-scale
// test-time augmentation. The model is only a LogitsFn, so a training-graph model, the bit runtime
// or a test lambda all plug in. All passes are combined by averaging logits.
#pragma once

#include <functional>
#include <vector>

#include "core/tensor.h"

namespace bfcn {

// images f32 [1,3,h,w] → logits f32 [1,C,h,w] (same h, w as given).
using LogitsFn = std::function<Tensor(const Tensor& images)>;

struct InferenceOptions {
  int pad_multiple = 32;  // inputs are zero-padded (bottom/right) to a multiple of this
  bool sliding = false;   // sliding windows instead of the whole image
  int window_h = 512, window_w = 1024;
  float overlap = 1.0f / 3;  // fraction of a window shared with its neighbour, in [0, 1)
  bool flip = false;         // also run the horizontally flipped image and un-flip its logits
  std::vector<float> scales{1.0f};  // image resized by each scale; logits resized back
};

// image f32 [1,3,H,W] (already normalised) → logits f32 [1,C,H,W], the average over scales x
// flips, each computed whole-image or by averaging overlapping windows.
Tensor predict_logits(const LogitsFn& fn, const Tensor& image, const InferenceOptions& o);

// logits f32 [1,C,H,W] → argmax class per pixel, u8 [H,W] (ties → lowest class).
Tensor argmax_labels(const Tensor& logits);

// Window origins along one axis of length `size` for windows of `win` with stride `stride`: the
// first at 0, the last ending at size (when size > win), evenly stepped; {0} when size <= win.
std::vector<int> window_starts(int size, int win, int stride);

// Bilinear resize of f32 [1,C,H,W] to [1,C,h,w] (half-pixel centres, as OpenCV INTER_LINEAR and
// PyTorch align_corners=false).
Tensor resize_bilinear(const Tensor& x, int h, int w);

}  // namespace bfcn
