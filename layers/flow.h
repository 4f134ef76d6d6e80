// A network's data flow, written once per module as a template over a Flow, serves both forward()
// and the `bfcn summary` rows, so the two cannot drift apart: ForwardFlow runs the layers on
// tensors, SummaryFlow walks the same steps with shapes (SummaryCursor) and appends one row per
// step. A Flow has a Value type and three steps: layer (a child module), add (residual or skip sum)
// and resize (bilinear upsampling, the identity when the size already matches).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "autograd/ops.h"
#include "layers/module.h"
#include "layers/summary.h"

namespace bfcn {

struct ForwardFlow {
  using Value = Var;
  Var layer(std::string_view, Module& m, const Var& x) const { return m.forward(x); }
  Var add(std::string_view, const Var& a, const Var& b) const { return bfcn::add(a, b); }
  Var resize(std::string_view, const Var& x, int64_t h, int64_t w) const {
    if (x.dim(2) == h && x.dim(3) == w) return x;
    return upsample_bilinear(x, static_cast<int>(h), static_cast<int>(w), false);
  }
  static int64_t height(const Var& x) { return x.dim(2); }
  static int64_t width(const Var& x) { return x.dim(3); }
};

// Rows are named prefix + step name ("layer1.0." + "conv1").
struct SummaryFlow {
  using Value = SummaryCursor;
  std::string prefix;
  SummaryCursor layer(std::string_view name, const Module& m, SummaryCursor c) const;
  SummaryCursor add(std::string_view name, SummaryCursor a, const SummaryCursor&) const {
    summarize_op(prefix + std::string(name), "Add", a.shape, 32, a);
    return a;
  }
  SummaryCursor resize(std::string_view name, SummaryCursor c, int64_t h, int64_t w) const {
    if (c.shape[2] != h || c.shape[3] != w)
      summarize_op(prefix + std::string(name), "Upsample", Shape{c.shape[0], c.shape[1], h, w}, 32,
                   c);
    return c;
  }
  static int64_t height(const SummaryCursor& c) { return c.shape[2]; }
  static int64_t width(const SummaryCursor& c) { return c.shape[3]; }
};

}  // namespace bfcn
