// The C API of runtime/include/bfcn/bfcn.h over bfcn::rt::Model: every entry point catches all
// exceptions and turns them into a status plus a thread-local message.
#include <omp.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "bfcn/bfcn.h"
#include "core/error.h"
#include "kernels/upsample.h"
#include "runtime/engine.h"
#include "runtime/format.h"

struct bfcn_model {
  bfcn::rt::Model model;
  int input_h = 0, input_w = 0;  // 0 x 0: run at each image's own size
  int threads = 0;               // 0: OpenMP's default
};

namespace {

constexpr int kMaxSide = 16384;  // Model::run's limit

thread_local std::string t_error;

bfcn_status fail(bfcn_status s, std::string message) {
  t_error = std::move(message);
  return s;
}

// Runs f (returning bfcn_status) with every exception mapped to a status and message.
template <class F>
bfcn_status guarded(const char* where, F&& f) noexcept {
  try {
    return f();
  } catch (const bfcn::IoError& e) {
    return fail(BFCN_ERROR_IO, std::string(where) + ": " + e.what());
  } catch (const std::bad_alloc&) {
    return fail(BFCN_ERROR_MEMORY, std::string(where) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(BFCN_ERROR_RUNTIME, std::string(where) + ": " + e.what());
  } catch (...) {
    return fail(BFCN_ERROR_RUNTIME, std::string(where) + ": unknown error");
  }
}

// This thread's OpenMP team size for one call (nthreads-var is per thread), restored after.
class ThreadsScope {
 public:
  explicit ThreadsScope(int threads) : saved_(omp_get_max_threads()), set_(threads > 0) {
    if (set_) omp_set_num_threads(threads);
  }
  ~ThreadsScope() {
    if (set_) omp_set_num_threads(saved_);
  }
  ThreadsScope(const ThreadsScope&) = delete;
  ThreadsScope& operator=(const ThreadsScope&) = delete;

 private:
  int saved_;
  bool set_;
};

bfcn_status load(bfcn::rt::Model&& m, bfcn_model** out) {
  *out = new bfcn_model{std::move(m)};
  return BFCN_OK;
}

// The index of the first maximum (the engine's tie rule).
unsigned char argmax_planar(const float* v, int64_t plane, int n) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (v[best * plane] < v[i * plane]) best = i;
  return static_cast<unsigned char>(best);
}

}  // namespace

extern "C" {

const char* bfcn_last_error(void) { return t_error.c_str(); }

const char* bfcn_version(void) { return BFCN_RUNTIME_VERSION; }

bfcn_status bfcn_model_load_file(const char* path, bfcn_model** out) {
  if (!out) return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_load_file: out is NULL");
  *out = nullptr;
  if (!path) return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_load_file: path is NULL");
  return guarded("bfcn_model_load_file", [&] { return load(bfcn::rt::Model::load(path), out); });
}

bfcn_status bfcn_model_load_memory(const void* data, size_t size, bfcn_model** out) {
  if (!out) return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_load_memory: out is NULL");
  *out = nullptr;
  if (!data && size > 0)
    return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_load_memory: data is NULL, size > 0");
  return guarded("bfcn_model_load_memory", [&] {
    const auto* p = static_cast<const uint8_t*>(data);
    std::vector<uint8_t> bytes(p, p + size);
    return load(bfcn::rt::Model::from_file(bfcn::rt::parse_model("(memory buffer)", bytes)), out);
  });
}

void bfcn_model_free(bfcn_model* model) { delete model; }

int bfcn_model_num_classes(const bfcn_model* model) {
  return model ? model->model.num_classes() : -1;
}

const char* bfcn_model_class_name(const bfcn_model* model, int index) {
  if (!model || index < 0) return nullptr;
  const auto& names = model->model.class_names();
  return size_t(index) < names.size() ? names[size_t(index)].c_str() : nullptr;
}

bfcn_status bfcn_model_palette(const bfcn_model* model, int index, unsigned char rgb[3]) {
  if (!model || !rgb) return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_palette: NULL argument");
  if (index < 0 || index >= model->model.num_classes())
    return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_palette: class " + std::to_string(index) +
                                         " out of range 0.." +
                                         std::to_string(model->model.num_classes() - 1));
  const auto& pal = model->model.palette();
  for (size_t c = 0; c < 3; ++c) rgb[c] = size_t(index) < pal.size() ? pal[size_t(index)][c] : 0;
  return BFCN_OK;
}

bfcn_status bfcn_model_set_input_size(bfcn_model* model, int height, int width) {
  if (!model) return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_set_input_size: model is NULL");
  const bool native = height == 0 && width == 0;
  if (!native && (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide))
    return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_set_input_size: " + std::to_string(height) + "x" +
                                         std::to_string(width) + " must be 0x0 or within 1..16384");
  model->input_h = height;
  model->input_w = width;
  return BFCN_OK;
}

bfcn_status bfcn_model_input_size(const bfcn_model* model, int* height, int* width) {
  if (!model || !height || !width)
    return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_input_size: NULL argument");
  *height = model->input_h;
  *width = model->input_w;
  return BFCN_OK;
}

bfcn_status bfcn_model_set_threads(bfcn_model* model, int threads) {
  if (!model) return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_set_threads: model is NULL");
  if (threads < 0)
    return fail(BFCN_ERROR_ARGUMENT,
                "bfcn_model_set_threads: threads must be >= 0, got " + std::to_string(threads));
  model->threads = threads;
  return BFCN_OK;
}

bfcn_status bfcn_model_set_stem_int8(bfcn_model* model, int on) {
  if (!model) return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_set_stem_int8: model is NULL");
  if (on != 0 && on != 1 && on != 8 && on != 15)
    return fail(BFCN_ERROR_ARGUMENT,
                "bfcn_model_set_stem_int8: on must be 0 (FP32), 1 or 15 (15-bit weights) or 8 "
                "(8-bit weights), got " +
                    std::to_string(on));
  model->model.set_stem_int8(on != 0, on == 8 ? 8 : 15);
  return BFCN_OK;
}

bfcn_status bfcn_model_run(const bfcn_model* model, const unsigned char* rgb, int height, int width,
                           size_t row_stride, unsigned char* labels, float* logits) {
  if (!model || !rgb || !labels)
    return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_run: model, rgb and labels must not be NULL");
  if (height < 1 || width < 1 || height > kMaxSide || width > kMaxSide)
    return fail(BFCN_ERROR_ARGUMENT, "bfcn_model_run: image size " + std::to_string(height) + "x" +
                                         std::to_string(width) + " must be within 1..16384");
  const size_t stride = row_stride ? row_stride : size_t(3) * size_t(width);
  if (stride < size_t(3) * size_t(width))
    return fail(BFCN_ERROR_ARGUMENT,
                "bfcn_model_run: row_stride " + std::to_string(row_stride) + " < 3 * width");
  return guarded("bfcn_model_run", [&] {
    const ThreadsScope threads(model->threads);
    const int64_t h = height, w = width, pix = h * w;
    // RGB bytes -> [3][h][w] in [0,1], the same arithmetic as `bfcn infer`.
    std::vector<float> x(size_t(3 * pix));
    for (int64_t y = 0; y < h; ++y) {
      const unsigned char* row = rgb + size_t(y) * stride;
      for (int64_t i = 0; i < w; ++i)
        for (int64_t c = 0; c < 3; ++c) x[size_t(c * pix + y * w + i)] = row[i * 3 + c] / 255.0f;
    }
    const bfcn::rt::Model& m = model->model;
    const int rh = model->input_h ? model->input_h : height;
    const int rw = model->input_w ? model->input_w : width;
    if (rh == height && rw == width) {
      std::vector<float> out_logits;
      std::vector<uint8_t> out_labels;
      m.run(x.data(), height, width, logits ? &out_logits : nullptr, &out_labels);
      std::memcpy(labels, out_labels.data(), out_labels.size());
      if (logits) std::memcpy(logits, out_logits.data(), out_logits.size() * sizeof(float));
      return BFCN_OK;
    }
    std::vector<float> xr(size_t(3) * size_t(rh) * size_t(rw));
    bfcn::upsample_bilinear_forward(x.data(), xr.data(), 3, h, w, rh, rw, false);
    x = {};
    std::vector<float> small;
    m.run(xr.data(), rh, rw, &small, nullptr);
    const int nc = m.num_classes();
    std::vector<float> local;
    float* full = logits;
    if (!full) {
      local.resize(size_t(nc) * size_t(pix));
      full = local.data();
    }
    bfcn::upsample_bilinear_forward(small.data(), full, nc, rh, rw, h, w, false);
    for (int64_t p = 0; p < pix; ++p) labels[p] = argmax_planar(full + p, pix, nc);
    return BFCN_OK;
  });
}

}  // extern "C"
