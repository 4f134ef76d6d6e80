// Analytic layer table rows and the `bfcn summary` formatting.
#include "layers/summary.h"

#include <cstdio>
#include <sstream>

#include "layers/batch_norm.h"
#include "layers/conv.h"

namespace bfcn {

int64_t conv_out_size(int64_t in, int kernel, int stride, int pad, int dilation) {
  return (in + 2 * pad - static_cast<int64_t>(dilation) * (kernel - 1) - 1) / stride + 1;
}

void summarize_conv(const std::string& name, const Conv2d& conv, SummaryCursor& c) {
  const Conv2dOptions& o = conv.options();
  BFCN_CHECK(c.shape.ndim() == 4 && c.shape[1] == o.in_channels, "summary: layer '", name,
             "': expected input [N,", o.in_channels, ",H,W], but got ", c.shape.str());
  const int64_t ho = conv_out_size(c.shape[2], o.kernel, o.stride, o.padding, o.dilation);
  const int64_t wo = conv_out_size(c.shape[3], o.kernel, o.stride, o.padding, o.dilation);
  LayerInfo r;
  r.name = name;
  r.type = conv.type();
  r.out_shape = Shape{c.shape[0], o.out_channels, ho, wo};
  const auto* q = dynamic_cast<const QConv2d*>(&conv);
  r.w_bits = q ? q->quant().w_bits : 32;
  r.a_bits = c.a_bits;
  r.params = conv.parameter_count();
  // MACs = N*Ho*Wo*K*(C/g)*kh*kw
  r.macs = c.shape[0] * ho * wo * o.out_channels * (o.in_channels / o.groups) * o.kernel * o.kernel;
  c.rows->push_back(r);
  c.shape = r.out_shape;
  c.a_bits = 32;
}

void summarize_bn(const std::string& name, const BatchNorm2d& bn, SummaryCursor& c) {
  c.rows->push_back({name, bn.type(), c.shape, 32, 32, bn.parameter_count(), 0});
}

void summarize_act(const std::string& name, int a_bits, SummaryCursor& c) {
  c.rows->push_back({name, a_bits < 32 ? "QuantAct" : "ReLU", c.shape, 32, a_bits, 0, 0});
  c.a_bits = a_bits;
}

void summarize_pool(const std::string& name, const char* type, int kernel, int stride, int pad,
                    SummaryCursor& c) {
  Shape out{c.shape[0], c.shape[1], conv_out_size(c.shape[2], kernel, stride, pad, 1),
            conv_out_size(c.shape[3], kernel, stride, pad, 1)};
  c.rows->push_back({name, type, out, 32, c.a_bits, 0, 0});
  c.shape = out;
}

void summarize_op(const std::string& name, const char* type, const Shape& out, int a_bits,
                  SummaryCursor& c) {
  c.rows->push_back({name, type, out, 32, a_bits, 0, 0});
  c.shape = out;
  c.a_bits = a_bits;
}

SummaryTotals summary_totals(const std::vector<LayerInfo>& rows) {
  SummaryTotals t;
  for (const LayerInfo& r : rows) {
    t.params += r.params;
    t.macs += r.macs;
    if (r.w_bits < 32 && r.a_bits < 32) t.bit_macs += r.macs;
  }
  return t;
}

namespace {
std::string bits_str(int b) { return b < 32 ? std::to_string(b) : "fp"; }
}  // namespace

std::string format_summary(const std::vector<LayerInfo>& rows, const std::string& title) {
  std::ostringstream os;
  char line[256];
  os << title << "\n";
  std::snprintf(line, sizeof line, "%-28s %-12s %-20s %4s %4s %12s %14s\n", "name", "type",
                "output", "w", "a", "params", "MACs");
  os << line << std::string(100, '-') << "\n";
  for (const LayerInfo& r : rows) {
    std::snprintf(line, sizeof line, "%-28s %-12s %-20s %4s %4s %12lld %14lld\n", r.name.c_str(),
                  r.type.c_str(), r.out_shape.str().c_str(), bits_str(r.w_bits).c_str(),
                  bits_str(r.a_bits).c_str(), static_cast<long long>(r.params),
                  static_cast<long long>(r.macs));
    os << line;
  }
  SummaryTotals t = summary_totals(rows);
  os << std::string(100, '-') << "\n";
  std::snprintf(line, sizeof line,
                "total params %lld (%.2f M), MACs %lld (%.3f GMACs), bit-conv share of MACs "
                "%.1f%%\n",
                static_cast<long long>(t.params), t.params / 1e6, static_cast<long long>(t.macs),
                t.macs / 1e9, 100.0 * t.bit_mac_share());
  os << line;
  return os.str();
}

nlohmann::json summary_json(const std::vector<LayerInfo>& rows) {
  nlohmann::json layers = nlohmann::json::array();
  for (const LayerInfo& r : rows) {
    nlohmann::json shape = nlohmann::json::array();
    for (int i = 0; i < r.out_shape.ndim(); ++i) shape.push_back(r.out_shape[i]);
    layers.push_back({{"name", r.name},
                      {"type", r.type},
                      {"out_shape", shape},
                      {"w_bits", r.w_bits},
                      {"a_bits", r.a_bits},
                      {"params", r.params},
                      {"macs", r.macs}});
  }
  SummaryTotals t = summary_totals(rows);
  return {{"layers", layers},
          {"total_params", t.params},
          {"total_macs", t.macs},
          {"total_gmacs", t.macs / 1e9},
          {"bit_conv_mac_share", t.bit_mac_share()}};
}

}  // namespace bfcn
