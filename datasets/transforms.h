// Training-time augmentation on raw samples (HWC uint8 image + index label), config-driven:
// random scale (bilinear image, NEAREST label so no new label values appear), pad-and-crop (image
// padded with the mean colour, label with 255 = ignore), horizontal flip, photometric jitter; and
// the final normalisation into an f32 CHW buffer. All randomness comes from the Rng passed in,
// drawn in a fixed order, so a sample's augmentation depends only on its forked stream.
#pragma once

#include <array>

#include "core/rng.h"
#include "datasets/dataset.h"

namespace bfcn {

// Resizes image (bilinear) and label (nearest) to round(H*factor) x round(W*factor), min 1.
void scale_sample(RawSample& s, float factor);
// Pads bottom/right to at least crop_h x crop_w (image with pad_rgb, label with 255), then cuts
// the crop_h x crop_w window at (y0, x0) of the padded sample.
void pad_crop_sample(RawSample& s, int crop_h, int crop_w, int y0, int x0,
                     const std::array<uint8_t, 3>& pad_rgb);
void flip_sample(RawSample& s);  // horizontal mirror of image and label
// Brightness, contrast and saturation factors, each uniform in [1-j, 1+j].
void jitter_image(ImageRGB& img, float brightness, float contrast, float saturation);

// The full random pipeline: scale → pad+crop → flip → jitter (each skipped when off in `a`).
// The pad colour is `mean` (on [0,1]) as uint8.
void augment_sample(RawSample& s, const AugmentConfig& a, const std::array<float, 3>& mean,
                    Rng& rng);

// dst [3,H,W] = (rgb/255 - mean) / std.
void normalize_image(const ImageRGB& img, const std::array<float, 3>& mean,
                     const std::array<float, 3>& std, float* dst);

}  // namespace bfcn
