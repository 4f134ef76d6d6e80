// Visual outputs of evaluation: label maps coloured with the dataset palette, and a panel
// image | ground truth | prediction with a legend of the classes that appear (OpenCV drawing).
// Large frames (Cityscapes 2048 wide) are shrunk so each tile is at most max_tile_width wide.
#pragma once

#include <string>
#include <vector>

#include "datasets/image_io.h"
#include "datasets/palette.h"

namespace bfcn {

// labels [H,W] → RGB via palette (256 entries; index 255 = ignore colour).
ImageRGB colorize_labels(const LabelMap& labels, const Palette& palette);

struct PanelOptions {
  int max_tile_width = 1024;
  int ignore_index = 255;
};

// image | gt | pred side by side (gt may be null: image | pred), titled, with a legend strip under
// them: one colour swatch + name per class present in gt or pred.
ImageRGB make_panel(const ImageRGB& image, const LabelMap* gt, const LabelMap& pred,
                    const Palette& palette, const std::vector<std::string>& class_names,
                    const PanelOptions& o = {});

}  // namespace bfcn
