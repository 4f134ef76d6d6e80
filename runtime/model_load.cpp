// Load stage: a parsed .bfcn file (runtime/format.h checked sizes, offsets and the checksum) into
// a validated graph. Every layer is checked here (types, channel counts, bit widths, blob sizes)
// so execution only meets shape errors that depend on the image size.
#include <map>
#include <string>

#include "core/error.h"
#include "kernels/bitpack.h"
#include "runtime/engine_internal.h"

namespace bfcn::rt {

namespace {

// Reads the graph of one file; every error names the file, the layer and the key, and says to
// re-export.
class GraphReader {
 public:
  GraphReader(const ModelFile& file, Model::Impl& I) : file_(file), I_(I) {}

  void read() {
    I_.header = file_.header;
    read_meta(file_.header);
    I_.tensors.push_back({"image", 3, 0});
    ids_["image"] = 0;
    const nlohmann::json layers = need(file_.header, "layers", "header");
    BFCN_CHECK_IO(layers.is_array() && !layers.empty(), where("header"),
                  ": 'layers' must be a non-empty array", kHint);
    for (size_t li = 0; li < layers.size(); ++li) read_layer(layers[li], li);
    read_output(file_.header);
  }

 private:
  static constexpr const char* kHint = "; re-export it with `bfcn export`";

  std::string where(const std::string& what) const { return file_.path + ": " + what; }

  nlohmann::json need(const nlohmann::json& j, const char* key, const std::string& ctx) const {
    const auto it = j.find(key);
    BFCN_CHECK_IO(it != j.end(), where(ctx), ": missing key '", key, "'", kHint);
    return *it;
  }

  int get_int(const nlohmann::json& j, const char* key, const std::string& ctx, int lo,
              int hi) const {
    const nlohmann::json v = need(j, key, ctx);
    BFCN_CHECK_IO(v.is_number_integer(), where(ctx), ": '", key, "' must be an integer", kHint);
    const int64_t x = v.get<int64_t>();
    BFCN_CHECK_IO(x >= lo && x <= hi, where(ctx), ": '", key, "' must be ", lo, "..", hi, ", got ",
                  x, kHint);
    return int(x);
  }

  // num_classes, class names, palette and the input normalization.
  void read_meta(const nlohmann::json& h) {
    I_.num_classes = get_int(h, "num_classes", "header", 1, 255);
    if (h.contains("class_names") && h["class_names"].is_array())
      for (const auto& n : h["class_names"])
        I_.class_names.push_back(n.is_string() ? n.get<std::string>() : "");
    if (h.contains("palette") && h["palette"].is_array())
      for (const auto& c : h["palette"]) {
        std::array<uint8_t, 3> rgb{0, 0, 0};
        if (c.is_array() && c.size() == 3)
          for (int i = 0; i < 3; ++i)
            rgb[size_t(i)] =
                c[size_t(i)].is_number_integer() ? uint8_t(c[size_t(i)].get<int>() & 255) : 0;
        I_.palette.push_back(rgb);
      }
    if (h.contains("input") && h["input"].is_object()) read_normalization(h["input"]);
  }

  void read_normalization(const nlohmann::json& in) {
    for (const char* key : {"mean", "std"})
      if (in.contains(key)) {
        const nlohmann::json& v = in[key];
        BFCN_CHECK_IO(v.is_array() && v.size() == 3, where("input"), ": '", key,
                      "' must be 3 numbers", kHint);
        for (size_t i = 0; i < 3; ++i) {
          BFCN_CHECK_IO(v[i].is_number(), where("input"), ": '", key, "' must be 3 numbers", kHint);
          (key[0] == 'm' ? I_.mean : I_.std)[i] = v[i].get<float>();
        }
      }
    for (float s : I_.std) BFCN_CHECK_IO(s > 0.0f, where("input"), ": std must be positive", kHint);
  }

  // layers[li]: the keys every layer has, then its op's keys and blobs; appends the layer and its
  // output tensor.
  void read_layer(const nlohmann::json& j, size_t li) {
    const std::string ctx = "layers[" + std::to_string(li) + "]";
    BFCN_CHECK_IO(j.is_object(), where(ctx), ": must be an object", kHint);
    Layer L;
    const nlohmann::json nm = need(j, "name", ctx), ty = need(j, "type", ctx),
                         ins = need(j, "inputs", ctx), outn = need(j, "output", ctx);
    BFCN_CHECK_IO(nm.is_string() && ty.is_string() && outn.is_string() && ins.is_array() &&
                      !ins.empty() && ins.size() <= 2,
                  where(ctx), ": name/type/output must be strings, inputs 1-2 names", kHint);
    L.name = nm.get<std::string>();
    const std::string lctx = ctx + " '" + L.name + "'";
    L.op = op_of(ty.get<std::string>(), lctx);
    for (const auto& n : ins) {
      BFCN_CHECK_IO(n.is_string() && ids_.count(n.get<std::string>()), where(lctx),
                    ": input must name an earlier tensor", kHint);
      L.in.push_back(ids_[n.get<std::string>()]);
    }
    const TensorInfo& x = I_.tensors[size_t(L.in[0])];
    TensorInfo out{outn.get<std::string>(), x.c, 0};
    BFCN_CHECK_IO(!ids_.count(out.name), where(lctx), ": output '", out.name, "' defined twice",
                  kHint);
    if (j.contains("relu")) L.relu = j["relu"].is_boolean() && j["relu"].get<bool>();
    if (j.contains("out_bits")) L.out_bits = get_int(j, "out_bits", lctx, 0, 8);
    read_op(j, lctx, L, out);
    out.bits = L.out_bits;
    L.out = int(I_.tensors.size());
    ids_[out.name] = L.out;
    I_.tensors.push_back(out);
    I_.layers.push_back(std::move(L));
  }

  Op op_of(const std::string& type, const std::string& lctx) const {
    static const std::map<std::string, Op> kOps = {
        {"conv_f32", Op::conv_f32}, {"bitconv", Op::bitconv}, {"quant_act", Op::quant_act},
        {"add", Op::add},           {"maxpool", Op::maxpool}, {"upsample", Op::upsample}};
    BFCN_CHECK_IO(kOps.count(type), where(lctx), ": unknown layer type '", type, "'", kHint);
    return kOps.at(type);
  }

  // The op's own keys and blobs; out.c is the output's channel count (the input's unless set).
  void read_op(const nlohmann::json& j, const std::string& lctx, Layer& L, TensorInfo& out) {
    const TensorInfo& x = I_.tensors[size_t(L.in[0])];
    const size_t nin = L.in.size();
    switch (L.op) {
      case Op::conv_f32:
      case Op::bitconv:
        read_conv(j, lctx, L);
        out.c = L.out_c;
        break;
      case Op::quant_act:
        read_quant_act(j, lctx, L);
        break;
      case Op::add:
        BFCN_CHECK_IO(nin == 2 && I_.tensors[size_t(L.in[1])].c == x.c, where(lctx),
                      ": add takes two inputs with equal channels", kHint);
        break;
      case Op::maxpool:
        L.kernel = get_int(j, "kernel", lctx, 1, 15);
        L.stride = get_int(j, "stride", lctx, 1, 16);
        L.pad = get_int(j, "pad", lctx, 0, 7);
        BFCN_CHECK_IO(2 * L.pad <= L.kernel, where(lctx), ": pad must be <= kernel/2", kHint);
        L.out_bits = 0;
        break;
      case Op::upsample: {
        const nlohmann::json so = need(j, "size_of", lctx);
        BFCN_CHECK_IO(so.is_string() &&
                          (so.get<std::string>() == "image" || ids_.count(so.get<std::string>())),
                      where(lctx), ": size_of must name an earlier tensor or \"image\"", kHint);
        L.size_of = so.get<std::string>() == "image" ? -1 : ids_[so.get<std::string>()];
        L.out_bits = 0;
        break;
      }
    }
  }

  // conv_f32 / bitconv: geometry, then the float weights or the bit planes + epilogue.
  void read_conv(const nlohmann::json& j, const std::string& lctx, Layer& L) {
    const TensorInfo& x = I_.tensors[size_t(L.in[0])];
    L.in_c = get_int(j, "in_c", lctx, 1, 1 << 16);
    L.out_c = get_int(j, "out_c", lctx, 1, 1 << 16);
    L.kernel = get_int(j, "kernel", lctx, 1, 15);
    L.stride = get_int(j, "stride", lctx, 1, 16);
    L.pad = get_int(j, "pad", lctx, 0, 64);
    L.dilation = get_int(j, "dilation", lctx, 1, 64);
    BFCN_CHECK_IO(x.c == L.in_c, where(lctx), ": in_c ", L.in_c, " but input '", x.name, "' has ",
                  x.c, " channels", kHint);
    if (L.op == Op::conv_f32)
      read_conv_f32_blobs(lctx, L);
    else
      read_bitconv(j, lctx, L);
  }

  void read_conv_f32_blobs(const std::string& lctx, Layer& L) {
    BFCN_CHECK_IO(L.in.size() == 1, where(lctx), ": conv_f32 takes one input", kHint);
    const uint64_t n = uint64_t(L.out_c) * L.kernel * L.kernel * L.in_c;
    const float* wp = file_.f32(L.name + ".weight", n);
    L.weight.assign(wp, wp + n);
    const float* bp = file_.f32(L.name + ".bias", uint64_t(L.out_c));
    L.bias.assign(bp, bp + L.out_c);
  }

  void read_bitconv(const nlohmann::json& j, const std::string& lctx, Layer& L) {
    const TensorInfo& x = I_.tensors[size_t(L.in[0])];
    L.w_bits = get_int(j, "w_bits", lctx, 1, 4);
    L.a_bits = get_int(j, "a_bits", lctx, 1, 4);
    BFCN_CHECK_IO(x.bits == L.a_bits, where(lctx), ": a_bits ", L.a_bits, " but input '", x.name,
                  "' has ", x.bits, " bits (0 = float)", kHint);
    if (L.in.size() == 2)
      BFCN_CHECK_IO(I_.tensors[size_t(L.in[1])].c == L.out_c, where(lctx),
                    ": residual channels must equal out_c", kHint);
    const uint64_t words =
        uint64_t(L.out_c) * L.w_bits * bitconv_row_words(L.kernel * L.kernel, L.in_c);
    const uint64_t* wp = file_.u64(L.name + ".weight", words);
    L.wbits.assign(wp, wp + words);
    const float* mp = file_.f32(L.name + ".mul", uint64_t(L.out_c));
    const float* ap = file_.f32(L.name + ".add", uint64_t(L.out_c));
    L.mul.assign(mp, mp + L.out_c);
    L.add.assign(ap, ap + L.out_c);
  }

  void read_quant_act(const nlohmann::json& j, const std::string& lctx, Layer& L) {
    const int c = I_.tensors[size_t(L.in[0])].c;
    L.out_bits = get_int(j, "bits", lctx, 1, 4);
    BFCN_CHECK_IO(L.in.size() == 1, where(lctx), ": quant_act takes one input", kHint);
    if (j.contains("affine") && j["affine"].is_boolean() && j["affine"].get<bool>()) {
      const float* mp = file_.f32(L.name + ".mul", uint64_t(c));
      const float* ap = file_.f32(L.name + ".add", uint64_t(c));
      L.mul.assign(mp, mp + c);
      L.add.assign(ap, ap + c);
    }
  }

  // The header's "output": a float tensor with num_classes channels.
  void read_output(const nlohmann::json& h) {
    const nlohmann::json on = need(h, "output", "header");
    BFCN_CHECK_IO(on.is_string() && ids_.count(on.get<std::string>()), where("header"),
                  ": 'output' must name a tensor", kHint);
    I_.output = ids_[on.get<std::string>()];
    const TensorInfo& t = I_.tensors[size_t(I_.output)];
    BFCN_CHECK_IO(t.c == I_.num_classes && t.bits == 0, where("header"),
                  ": output tensor must be float with num_classes channels", kHint);
  }

  const ModelFile& file_;
  Model::Impl& I_;
  std::map<std::string, int> ids_;  // tensor name -> id, in definition order
};

}  // namespace

void read_graph(const ModelFile& file, Model::Impl& I) { GraphReader(file, I).read(); }

}  // namespace bfcn::rt
