// FCN heads over ResNet features. fcn32s/16s/8s: 1x1 score convs (with bias) on layer4, layer3,
// layer2 ("score_layer4", "score_layer3", "score_layer2"); the coarser score map is upsampled
// bilinearly (align_corners false) to the finer one's size and summed, then upsampled to the
// input size. "dilated": one classifier on layer4 (use with output_stride 8), either a 1x1 conv
// ("classifier") or, with head_channels > 0, torchvision's FCNHead shape 3x3 conv → BN → act → 1x1
// ("classifier.0", ".1", ".2", ".3"). Score convs read the features as they are (no quantizer in
// front); with first_last_fp their weights are FP too.
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "layers/conv.h"
#include "layers/quant_config.h"
#include "layers/resnet.h"

namespace bfcn {

struct FcnHeadOptions {
  std::string kind = "fcn8s";  // fcn32s | fcn16s | fcn8s | dilated
  int n_classes = 21;
  std::array<int, 4> channels{};  // backbone layer1..layer4 channels
  int head_channels = 0;          // dilated only: 0 = a single 1x1 classifier
  QuantConfig quant;
};

const std::vector<std::string>& fcn_head_names();

class FcnHead : public Module {
 public:
  FcnHead(const FcnHeadOptions& o, Rng& rng);
  // A head needs several feature maps: use forward_features.
  Var forward(const Var& x) override;
  // feats: layer1..layer4 outputs → logits [N,n_classes,out_h,out_w].
  Var forward_features(const std::vector<Var>& feats, int out_h, int out_w);
  // Rows for the head from the backbone's feature cursors.
  void summarize(const std::array<SummaryCursor, 4>& feats, int out_h, int out_w,
                 std::vector<LayerInfo>& rows) const;
  // Appends the head's runtime layers reading the 4 feature tensors; returns the logits tensor
  // (upsampled to the size of `image`).
  std::string export_to(ExportGraph& g, const std::array<std::string, 4>& feats,
                        const std::string& image) const;
  const FcnHeadOptions& options() const { return opt_; }
  // The convs of the head, by dotted name.
  std::shared_ptr<Conv2d> score_layer4, score_layer3, score_layer2;  // fcn*s (null if unused)
  std::shared_ptr<Module> classifier;  // dilated: a Conv2d or a ModuleChain

 private:
  template <class Flow>
  typename Flow::Value flow(const Flow& f, const std::array<typename Flow::Value, 4>& feats,
                            int out_h, int out_w) const;
  FcnHeadOptions opt_;
};

}  // namespace bfcn
