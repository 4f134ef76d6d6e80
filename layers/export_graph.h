// How modules describe themselves for deployment (`bfcn export`). A module appends the layers the
// deploy runtime runs for it to an ExportGraph, in execution order and already fused the way the
// runtime executes them (conv + BN + residual + output quantizer in one step), so export follows
// the module tree and a new block type exports by implementing ResBlock::export_to. The graph is an
// interface because layers/ must not know the .bfcn format or link runtime/ (layering,
// docs/architecture.md): train/export.cpp implements it (weight packing, BN folding, value units).
// Tensors are named by strings; the names become the inputs/outputs of the exported layers.
#pragma once

#include <string>

namespace bfcn {

class BatchNorm2d;
class Conv2d;
class MaxPool2d;
class Module;

// One conv step: conv (+ BN) (+ residual) then the output quantizer (out_bits > 0) or, for a
// float output, the optional relu.
struct ExportConv {
  std::string name{};  // dotted module name: layer and blob names
  const Conv2d* conv = nullptr;
  const BatchNorm2d* bn = nullptr;  // folded into the conv; null: none
  std::string in{};
  std::string residual{};  // added before the output quantizer or relu; "" none
  std::string out{};
  int out_bits = 0;         // output quantizer bits (1..4); 0: float output
  float out_clip = 1.0f;    // the output quantizer's clip
  std::string quantizer{};  // out_bits > 0: the output quantizer's module name (export --verify)
  bool relu = false;        // float output only
  float float_unit = 1.0f;  // a float output's unit (the sum it feeds may have another)
};

class ExportGraph {
 public:
  virtual ~ExportGraph() = default;

  // An activation module as the runtime runs it: its bits 1..4 (a QuantAct), 0 for a ReLU (FP).
  // Throws naming `name` for anything the runtime cannot pack.
  virtual int act_bits(const std::string& name, const Module& act) const = 0;
  // Its clip: the learned alpha, else 1 (DoReFa's fixed clip, ReLU).
  virtual float act_clip(const Module& act) const = 0;

  // A bit conv when the weights have 1..4 bits and c.in is packed, else a float conv.
  virtual void conv(const ExportConv& c) = 0;
  // A float conv whatever its input (stem and score convs); no residual or output quantizer.
  virtual void conv_f32(const ExportConv& c) = 0;
  // Quantizes `in` to `bits` with clip `clip`.
  virtual void quant_act(const std::string& name, const std::string& in, const std::string& out,
                         int bits, float clip) = 0;
  virtual void maxpool(const std::string& name, const MaxPool2d& pool, const std::string& in,
                       const std::string& out) = 0;
  virtual void add(const std::string& name, const std::string& a, const std::string& b,
                   const std::string& out) = 0;
  // Bilinear upsampling of `in` to the spatial size of `size_of`.
  virtual void upsample(const std::string& name, const std::string& in, const std::string& size_of,
                        const std::string& out) = 0;
};

}  // namespace bfcn
