// ResNet backbones with torchvision's layout and parameter names ("conv1", "bn1",
// "layer1.0.conv1", "layer2.0.downsample.0", ...; no fc), so a converted torchvision state_dict
// loads by name: resnet18/34 (BasicBlock), resnet50 (Bottleneck, stride on the 3x3 as v1.5), and
// DoReFa's pre-activation ResNet-18 ("resnet18_preact", research/paper.md §6.6). Output stride
// 16/8 replaces the strides of layer3/layer4 by dilation with torchvision's
// replace_stride_with_dilation rules. Every conv takes QuantConfig::spec_for(<its dotted name>).
#pragma once

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "layers/conv.h"
#include "layers/export_graph.h"
#include "layers/module.h"
#include "layers/quant_config.h"
#include "layers/summary.h"

namespace bfcn {

struct ResNetOptions {
  std::string arch = "resnet18";  // resnet18 | resnet34 | resnet50 | resnet18_preact
  int output_stride = 32;         // 32, 16 (layer4 dilated) or 8 (layer3 and layer4 dilated)
  int in_channels = 3;
  QuantConfig quant;
};

const std::vector<std::string>& resnet_arch_names();

// Conv2d when the spec is all-FP (w_bits and g_bits 32), QConv2d otherwise.
std::shared_ptr<Conv2d> make_conv(const Conv2dOptions& o, const QuantSpec& q, Rng& rng);
// QuantAct(a_bits) for a_bits < 32 (with a learned clip parameter when learned_clip), ReLU
// otherwise.
std::shared_ptr<Module> make_act(int a_bits, bool learned_clip = false);

// Children "0", "1", ... run in order (torch.nn.Sequential; type "Sequential").
class ModuleChain : public Module {
 public:
  ModuleChain() : Module("Sequential") {}
  void append(std::shared_ptr<Module> m);
  Var forward(const Var& x) override;
};

// A residual block that can describe itself for `bfcn summary` and `bfcn export`.
class ResBlock : public Module {
 public:
  using Module::Module;
  virtual void summarize(const std::string& prefix, SummaryCursor& c) const = 0;
  // Appends the block's runtime layers reading tensor x; returns the output tensor. `name` is
  // the block's dotted name ("layer1.0"). This default throws: the runtime has no such block.
  virtual std::string export_to(ExportGraph& g, const std::string& name,
                                const std::string& x) const;
};

// The blocks keep their layers as public handles (tests and calibration walk them).
// torchvision BasicBlock: act2(bn2(conv2(act1(bn1(conv1(x))))) + downsample(x)).
// The 3x3 convs both use the block's dilation (torchvision has no dilated BasicBlock; this is the
// usual generalisation). Activations after bn1/bn2 take the a_bits of conv1/conv2's spec.
// With the "fp" residual policy (Bi-Real style): xq = act_in(x) feeds conv1 (and a bit
// downsample), act2 is a ReLU, so relu(bn2(conv2(.)) + identity) stays FP; an FP32/8-bit
// downsample reads the FP x.
class BasicBlock : public ResBlock {
 public:
  BasicBlock(int in, int planes, int stride, int dilation, const std::string& prefix,
             const QuantConfig& q, Rng& rng);
  Var forward(const Var& x) override;
  void summarize(const std::string& prefix, SummaryCursor& c) const override;
  std::string export_to(ExportGraph& g, const std::string& name,
                        const std::string& x) const override;
  std::shared_ptr<Conv2d> conv1, conv2;
  std::shared_ptr<Module> bn1, bn2, act1, act2;
  std::shared_ptr<ModuleChain> downsample;  // "0" conv 1x1 (stride), "1" BN; null if identity
  std::shared_ptr<Module> act_in;           // fp residual only: the quantizer of the block input
  bool downsample_reads_fp = false;         // fp residual with an FP32/8-bit downsample

 private:
  // The block's data flow, the one description behind forward() and summarize() (layers/flow.h).
  template <class Flow>
  typename Flow::Value flow(const Flow& f, const typename Flow::Value& x) const;
};

// torchvision Bottleneck (v1.5): 1x1 → 3x3 (stride, dilation) → 1x1 (x4), act3 after the add.
class Bottleneck : public ResBlock {
 public:
  Bottleneck(int in, int planes, int stride, int dilation, const std::string& prefix,
             const QuantConfig& q, Rng& rng);
  Var forward(const Var& x) override;
  void summarize(const std::string& prefix, SummaryCursor& c) const override;
  std::shared_ptr<Conv2d> conv1, conv2, conv3;
  std::shared_ptr<Module> bn1, bn2, bn3, act1, act2, act3;
  std::shared_ptr<ModuleChain> downsample;

 private:
  // The block's data flow, the one description behind forward() and summarize() (layers/flow.h).
  template <class Flow>
  typename Flow::Value flow(const Flow& f, const typename Flow::Value& x) const;
};

// DoReFa pre-activation block (paper.md §6.6), first block of a stage (project = true):
//   x' = avgpool_s(x) (when stride s > 1); a = act1(bn1(x'));
//   out = shortcut(a) + conv2(act2(bn2(conv1(a))))
// other blocks: out = x + conv2(act2(bn2(conv1(act1(bn1(x)))))). Residual sums stay FP.
// act1 takes conv1's a_bits (it feeds conv1 and the shortcut), act2 takes conv2's.
class PreactBlock : public ResBlock {
 public:
  PreactBlock(int in, int planes, int stride, int dilation, bool project, const std::string& prefix,
              const QuantConfig& q, Rng& rng);
  Var forward(const Var& x) override;
  void summarize(const std::string& prefix, SummaryCursor& c) const override;
  std::shared_ptr<Module> avgpool;  // null when stride 1
  std::shared_ptr<Module> bn1, act1, bn2, act2;
  std::shared_ptr<Conv2d> conv1, conv2, shortcut;  // shortcut: 1x1 conv, null when identity

 private:
  // The block's data flow, the one description behind forward() and summarize() (layers/flow.h).
  template <class Flow>
  typename Flow::Value flow(const Flow& f, const typename Flow::Value& x) const;
};

// Appends the rows of any module built here (conv, BN, activation, pool, block, chain).
void summarize_module(const std::string& name, const Module& m, SummaryCursor& c);

class ResNet : public Module {
 public:
  ResNet(const ResNetOptions& o, Rng& rng);
  Var forward(const Var& x) override;  // the last feature map
  // x [N,3,H,W] → layer1..layer4 outputs (strides 4, 8, 16|8, 32|16|8). For resnet18_preact the
  // last one is after the final BN + ReLU (the residual stream itself is unnormalised).
  std::vector<Var> features(const Var& x);
  const ResNetOptions& options() const { return opt_; }
  std::array<int, 4> channels() const { return channels_; }
  // Rows of the whole backbone from cursor c (the input); returns the 4 feature cursors.
  std::array<SummaryCursor, 4> summarize(SummaryCursor& c) const;
  // Appends the stem's and the blocks' runtime layers reading tensor `image`; returns the 4
  // feature tensors.
  std::array<std::string, 4> export_to(ExportGraph& g, const std::string& image) const;

 private:
  // Stem, stages and (preact) final BN + ReLU, the one description behind features() and
  // summarize(): the 4 feature values (layers/flow.h).
  template <class Flow>
  std::array<typename Flow::Value, 4> flow(const Flow& f, const typename Flow::Value& x) const;

  ResNetOptions opt_;
  std::array<int, 4> channels_{};
  bool preact_ = false;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<Module> bn1_, act1_, maxpool_;
  std::array<std::shared_ptr<ModuleChain>, 4> layers_;
  std::shared_ptr<Module> bn_final_, act_final_;  // resnet18_preact only
};

}  // namespace bfcn
