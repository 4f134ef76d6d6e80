// Colour palettes of the label sets: index → RGB, used to write palette PNGs and visualisations.
// The VOC colormap is computed (bits of the index interleaved MSB-first into R,G,B), not tabled,
// so every one of its 256 entries is exact; Cityscapes colours come from the official labels table.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bfcn {

using Palette = std::vector<std::array<uint8_t, 3>>;  // index → (R,G,B)

// The 256-entry PASCAL VOC colormap: 0 = (0,0,0), 1 = (128,0,0), 15 = (192,128,128),
// 255 = (224,224,192).
Palette voc_palette();

// 256 entries: trainIds 0..18 take the Cityscapes label colours, every other index (255 = ignore)
// is black.
Palette cityscapes_train_palette();

}  // namespace bfcn
