// A thin C++ wrapper over the C API (bfcn/bfcn.h): RAII model, exceptions on the C++ side only.
//   bfcn::api::Model m("model.bfcn");
//   std::vector<unsigned char> labels = m.run(rgb, height, width);
#ifndef BFCN_BFCN_HPP
#define BFCN_BFCN_HPP

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "bfcn/bfcn.h"

namespace bfcn::api {

class Error : public std::runtime_error {
 public:
  Error(bfcn_status status, const std::string& message)
      : std::runtime_error(message), status_(status) {}
  bfcn_status status() const { return status_; }

 private:
  bfcn_status status_;
};

inline void check(bfcn_status s) {
  if (s != BFCN_OK) throw Error(s, bfcn_last_error());
}

class Model {
 public:
  explicit Model(const std::string& path) { check(bfcn_model_load_file(path.c_str(), &m_)); }
  Model(const void* data, std::size_t size) { check(bfcn_model_load_memory(data, size, &m_)); }
  ~Model() { bfcn_model_free(m_); }
  Model(Model&& o) noexcept : m_(std::exchange(o.m_, nullptr)) {}
  Model& operator=(Model&& o) noexcept {
    std::swap(m_, o.m_);
    return *this;
  }
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  int num_classes() const { return bfcn_model_num_classes(m_); }
  std::string class_name(int index) const {
    const char* n = bfcn_model_class_name(m_, index);
    if (!n)
      throw Error(BFCN_ERROR_ARGUMENT, "bfcn: class " + std::to_string(index) + " out of range");
    return n;
  }
  std::vector<unsigned char> color(int index) const {
    std::vector<unsigned char> rgb(3);
    check(bfcn_model_palette(m_, index, rgb.data()));
    return rgb;
  }
  void set_threads(int threads) { check(bfcn_model_set_threads(m_, threads)); }
  // weight_bits: 15 or 8 (bfcn_model_set_stem_int8)
  void set_stem_int8(bool on, int weight_bits = 15) {
    check(bfcn_model_set_stem_int8(m_, on ? weight_bits : 0));
  }
  void set_input_size(int height, int width) {
    check(bfcn_model_set_input_size(m_, height, width));
  }
  // Label map (height * width class indices) of an RGB HWC image; logits [C][h][w] if asked.
  std::vector<unsigned char> run(const unsigned char* rgb, int height, int width,
                                 std::vector<float>* logits = nullptr,
                                 std::size_t row_stride = 0) const {
    std::vector<unsigned char> labels(std::size_t(height > 0 ? height : 0) *
                                      std::size_t(width > 0 ? width : 0));
    if (logits) logits->resize(std::size_t(num_classes()) * labels.size());
    check(bfcn_model_run(m_, rgb, height, width, row_stride, labels.data(),
                         logits ? logits->data() : nullptr));
    return labels;
  }
  bfcn_model* handle() const { return m_; }

 private:
  bfcn_model* m_ = nullptr;
};

}  // namespace bfcn::api

#endif  // BFCN_BFCN_HPP
