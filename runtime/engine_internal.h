// Private to runtime/ (not installed, not part of the C API): the validated graph behind rt::Model
// and the engine's three stages, each in its own file so it can be read and tested alone:
//   load     runtime/model_load.cpp  .bfcn header + blobs -> validated Impl (read_graph)
//   plan     runtime/model_plan.cpp  last uses, fusions, prepared bit weights, the FP32 rewrite,
//                                    the activation arena of an input size (plan_arena)
//   execute  runtime/model_run.cpp   one image through the planned graph (execute)
// runtime/engine.cpp is the Model facade that chains them.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kernels/bitconv.h"
#include "runtime/engine.h"
#include "runtime/format.h"

namespace bfcn::rt {

enum class Op { conv_f32, bitconv, quant_act, add, maxpool, upsample };

struct TensorInfo {
  std::string name;
  int c = 0, bits = 0;  // bits 0 = float NHWC, else packed NHWC planes
};

struct Layer {
  std::string name;
  Op op = Op::conv_f32;
  std::vector<int> in;  // tensor ids
  int out = -1;
  int size_of = -1;  // upsample: tensor id, or -1 = the image
  // conv
  int in_c = 0, out_c = 0, kernel = 1, stride = 1, pad = 0, dilation = 1;
  int w_bits = 0, a_bits = 0, out_bits = 0;
  bool relu = false;
  std::vector<float> weight, bias, mul, add;  // f32 weight [OC][K][K][C]
  std::vector<uint64_t> wbits;                // packed [OC][M][row_words]
  // bitconv: wbits re-laid-out for the variants that ran (prepared on first use, not per run)
  struct Prepared {
    std::mutex mu;
    std::vector<std::unique_ptr<PreparedBitWeights>> by_variant;
    std::unique_ptr<RequantThresholds> thresholds;  // of its packed epilogue, once
  };
  std::shared_ptr<Prepared> prepared = std::make_shared<Prepared>();
};

// The activation arena of one input size (plan_arena): every tensor's shape and its bytes in one
// buffer, and every layer's temporaries (float views of packed inputs, a float result before it
// is quantized, the stem's codes, the upsample's resized rows). Byte ranges of tensors or
// temporaries that are live at the same layer never overlap; the others may share bytes.
struct ArenaSlot {
  size_t offset = 0, bytes = 0;  // bytes 0: nothing stored
};
struct ArenaPlan {
  int h = 0, w = 0;                       // the input size it was planned for
  std::vector<std::array<int, 2>> shape;  // per tensor: {h, w} at this input size
  std::vector<ArenaSlot> tensor;          // per tensor (bytes 0: never written, e.g. fused away)
  std::vector<ArenaSlot> scratch;         // per layer: its temporaries, live during that layer only
  std::vector<int> born;                  // per tensor: the layer that writes it (-1: the image)
  int emit_layer = -1;  // the final upsample that writes logits/labels itself (no output tensor)
  size_t bytes = 0;     // the buffer size
};

// An arena: a plan and a buffer of at least plan.bytes (64-byte aligned, kept between runs).
struct Arena {
  ArenaPlan plan;
  std::byte* data = nullptr;
  size_t capacity = 0;
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();
  // Grows the buffer to plan.bytes when needed (its pages touched once, in parallel).
  void reserve();
};

// The arenas of one Model: run() takes one for its whole duration and gives it back, so concurrent
// runs on one Model (the C API allows them) each work in their own. A copy of the model starts
// with none.
class ArenaPool {
 public:
  ArenaPool() = default;
  ArenaPool(const ArenaPool&) {}
  ArenaPool& operator=(const ArenaPool&) { return *this; }
  // An idle arena already planned for h x w, else the largest idle one re-planned, else a new one.
  std::unique_ptr<Arena> take(int h, int w);
  void give_back(std::unique_ptr<Arena> a);
  // Tests: idle arenas, and each of them filled with byte (what a kernel relying on zeroed or
  // earlier contents would then read).
  size_t idle() const;
  void fill_idle(uint8_t byte);

 private:
  mutable std::mutex mu_;
  std::vector<std::unique_ptr<Arena>> idle_;
};

// Layer fusion marks (Model::Impl::fusion): kStemHead = conv_f32 -> maxpool -> quant_act run as
// one fused kernel (conv with the quantizer in its epilogue; the max pool on codes + pack reads a
// few code rows at a time, so the full-size code map is never stored);
// kStemPool = conv_f32 -> maxpool with a float result (a trained model's stem, whose pooled map
// also feeds the first residual): the pool reads conv rows while they are in cache, the conv's
// full-size map is never stored; kAbsorbed = the layers a fusion replaces;
// kResidualConv = a 1x1 bit conv with a float output whose only reader is a bit conv's residual
// (a ResNet block's downsample): that conv computes its rows inside its epilogue (ResidualConv,
// kernels/bitconv.h), so the map is never stored (Model::Impl::residual_conv names the reader's).
constexpr uint8_t kUnfused = 0, kStemHead = 1, kAbsorbed = 2, kStemPool = 3, kResidualConv = 4;

struct Model::Impl {
  nlohmann::json header;
  std::vector<TensorInfo> tensors;  // id 0 = "image" (float, 3 channels)
  std::vector<Layer> layers;
  std::vector<int> last_use;  // per tensor: index of the last layer reading it
  int output = -1;
  int num_classes = 0;
  std::vector<std::string> class_names;
  std::vector<std::array<uint8_t, 3>> palette;
  std::array<float, 3> mean{0, 0, 0}, std{1, 1, 1};
  bool stem_int8 = false;  // Model::set_stem_int8
  int stem_int8_weight_bits = 15;
  mutable std::vector<LayerTiming>* profile = nullptr;
  mutable std::function<void(const TracedTensor&)> trace;
  std::vector<uint8_t> fusion;     // per layer, set by plan_fusions()
  std::vector<int> residual_conv;  // per layer: its kResidualConv layer, or -1 (plan_fusions)
  mutable ArenaPool arenas;        // activation buffers kept between runs (plan_arena)
};

// --- load (model_load.cpp) ---
// Fills header, class names, palette, mean/std, tensors, layers (weights copied out of the blobs)
// and output from a parsed file; every key, range, channel chain, bit width and blob size is
// checked, errors are bfcn::IoError naming the file, the layer and the key.
void read_graph(const ModelFile& file, Model::Impl& I);

// --- plan (model_plan.cpp) ---
// last_use + fusions: what run needs beyond the validated graph.
void plan_graph(Model::Impl& I);
// Per tensor, the index of the last layer reading it (the output: layers.size()).
void compute_last_use(Model::Impl& I);
// Marks conv_f32 -> maxpool -> quant_act chains that may run as one kernel, and the residual
// convs (needs last_use; extends the residual conv's input's to its reader).
void plan_fusions(Model::Impl& I);
// The kResidualConv part of plan_fusions (after the stem fusions).
void plan_residual_convs(Model::Impl& I);
// L's packed-epilogue thresholds (the epilogue e of every run of L has the same kind), built once.
const RequantThresholds* layer_thresholds(const Layer& L, const BitConvShape& s,
                                          const BitConvEpilogue& e);
// L's weights prepared for variant v (s: the layer's shape at this input size), built once.
const PreparedBitWeights& prepared_weights(const Layer& L, const BitConvShape& s,
                                           const BgemmVariant& v);
// The arena of input size h x w: tensor shapes (errors name the layer whose input is too small),
// then offsets of every tensor (live from the layer that writes it to its last_use) and of every
// layer's temporaries, packed so that ranges live at the same layer never overlap.
ArenaPlan plan_arena(const Model::Impl& I, int h, int w);
// The byte sizes plan_arena and execute agree on: a float NHWC map and a packed one.
inline size_t float_map_bytes(int h, int w, int c) { return size_t(h) * w * c * sizeof(float); }
size_t packed_map_bytes(int h, int w, int c, int bits);
// Temporaries are cut from a layer's scratch slot in 64-byte steps (each part cache-line aligned).
inline size_t scratch_part(size_t bytes) { return (bytes + 63) / 64 * 64; }
// The to_fp32() cost model's graph: every bit conv an FP32 conv without its residual, every
// quant_act a clip-like add, all tensors float; re-plans the fusions.
void rewrite_fp32(Model::Impl& I);

// --- execute (model_run.cpp) ---
// Runs one image [3,h,w] through the planned graph (Model::run's contract).
void execute(const Model::Impl& I, const float* image_nchw, int h, int w,
             std::vector<float>* logits, std::vector<uint8_t>* labels, bool normalize);

}  // namespace bfcn::rt
