// Layer tables for `bfcn summary`: one LayerInfo per leaf layer (conv, BN, activation, pool,
// upsample, add) with its output shape, bit widths, parameters and MACs, computed analytically from
// the module options (no forward pass, so a 2048x1024 summary is instant).
// Bit widths: a conv row's w_bits are its weight bits and a_bits the bits of the activation it
// reads (a "bit conv" has both < 32); an activation row's a_bits are its output bits; others 32.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/shape.h"

namespace bfcn {

class Conv2d;
class BatchNorm2d;

struct LayerInfo {
  std::string name, type;
  Shape out_shape;
  int w_bits = 32, a_bits = 32;
  int64_t params = 0, macs = 0;
};

// Walks a network's layers in forward order, carrying the current activation shape and bits.
struct SummaryCursor {
  Shape shape;      // current activation [N,C,H,W]
  int a_bits = 32;  // bits of the current activation (32 = FP)
  std::vector<LayerInfo>* rows = nullptr;
};

// Conv output size along one axis: (in + 2p - d(k-1) - 1)/s + 1.
int64_t conv_out_size(int64_t in, int kernel, int stride, int pad, int dilation);

// Each appends one row and advances the cursor (the conv also resets a_bits to 32: its output is
// FP until an activation quantizes it).
void summarize_conv(const std::string& name, const Conv2d& conv, SummaryCursor& c);
void summarize_bn(const std::string& name, const BatchNorm2d& bn, SummaryCursor& c);
void summarize_act(const std::string& name, int a_bits, SummaryCursor& c);
void summarize_pool(const std::string& name, const char* type, int kernel, int stride, int pad,
                    SummaryCursor& c);
// Shape-changing rows without parameters ("Upsample", "Add"); the caller sets bits.
void summarize_op(const std::string& name, const char* type, const Shape& out, int a_bits,
                  SummaryCursor& c);

struct SummaryTotals {
  int64_t params = 0, macs = 0, bit_macs = 0;  // bit_macs: convs with w_bits < 32 and a_bits < 32
  double bit_mac_share() const { return macs ? static_cast<double>(bit_macs) / macs : 0.0; }
};
SummaryTotals summary_totals(const std::vector<LayerInfo>& rows);

// The printed table with a totals footer (params, GMACs, share of MACs in bit convs).
std::string format_summary(const std::vector<LayerInfo>& rows, const std::string& title);
// {"layers":[{"name","type","out_shape":[...],"w_bits","a_bits","params","macs"}...],
//  "total_params","total_macs","total_gmacs","bit_conv_mac_share"}
nlohmann::json summary_json(const std::vector<LayerInfo>& rows);

}  // namespace bfcn
