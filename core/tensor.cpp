#include "core/tensor.h"

#include <malloc.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>

namespace bfcn {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32:
      return "f32";
    case DType::i32:
      return "i32";
    case DType::u8:
      return "u8";
  }
  return "?";
}

size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::i32:
      return 4;
    case DType::u8:
      return 1;
  }
  return 0;
}

namespace {
// A training step frees and re-allocates the same large activations. By default glibc mmaps blocks
// above an adaptive threshold and trims the heap top on free, so every step page-faults (and the
// kernel zeroes) hundreds of MB again. A fixed 32 MiB threshold (glibc's maximum) and no trimming
// keep freed blocks for reuse: about half the page faults and ~5% faster training steps, with the
// same peak RSS (docs/bench_train.md). Called once, before the first tensor allocation.
bool keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
  return true;
}
}  // namespace

// 64-byte aligned block; size rounded up so aligned_alloc's contract holds.
struct Tensor::Storage {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Storage(size_t n) : bytes(n) {
    [[maybe_unused]] static const bool tuned = keep_freed_memory();
    size_t rounded = std::max<size_t>(64, (n + 63) / 64 * 64);
    ptr = std::aligned_alloc(64, rounded);
    BFCN_CHECK(ptr != nullptr, "Tensor: out of memory allocating ", n, " bytes");
  }
  ~Storage() { std::free(ptr); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

Tensor Tensor::empty(const Shape& shape, DType dtype) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * dtype_size(dtype));
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype) {
  Tensor t = empty(shape, dtype);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::full(const Shape& shape, float value) {
  Tensor t = empty(shape, DType::f32);
  t.fill(value);
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values) {
  BFCN_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from_vector: shape ",
             shape, " needs ", shape.numel(), " values, but got ", values.size());
  Tensor t = empty(shape, DType::f32);
  std::copy(values.begin(), values.end(), t.f32());
  return t;
}

Tensor Tensor::from_vector_i32(const Shape& shape, const std::vector<int32_t>& values) {
  BFCN_CHECK(static_cast<int64_t>(values.size()) == shape.numel(),
             "Tensor::from_vector_i32: shape ", shape, " needs ", shape.numel(),
             " values, but got ", values.size());
  Tensor t = empty(shape, DType::i32);
  std::copy(values.begin(), values.end(), t.data<int32_t>());
  return t;
}

Tensor Tensor::from_vector_u8(const Shape& shape, const std::vector<uint8_t>& values) {
  BFCN_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "Tensor::from_vector_u8: shape ",
             shape, " needs ", shape.numel(), " values, but got ", values.size());
  Tensor t = empty(shape, DType::u8);
  std::copy(values.begin(), values.end(), t.data<uint8_t>());
  return t;
}

void* Tensor::raw() {
  BFCN_CHECK(defined(), "Tensor: access to an undefined tensor");
  return storage_->ptr;
}
const void* Tensor::raw() const {
  BFCN_CHECK(defined(), "Tensor: access to an undefined tensor");
  return storage_->ptr;
}

void Tensor::check_dtype(DType want) const {
  BFCN_CHECK(dtype_ == want, "Tensor: expected dtype ", dtype_name(want), ", but got ",
             dtype_name(dtype_));
}

Tensor Tensor::clone() const {
  if (!defined()) return {};
  Tensor t = empty(shape_, dtype_);
  std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

Tensor Tensor::reshape(const Shape& shape) const {
  BFCN_CHECK(shape.numel() == numel(), "Tensor::reshape: cannot reshape ", shape_, " (", numel(),
             " elements) to ", shape, " (", shape.numel(), " elements)");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

void Tensor::fill(float value) {
  float* p = f32();
  std::fill(p, p + numel(), value);
}

void Tensor::copy_from(const Tensor& other) {
  BFCN_CHECK(other.shape_ == shape_ && other.dtype_ == dtype_, "Tensor::copy_from: expected ",
             shape_, " ", dtype_name(dtype_), ", but got ", other.shape_, " ",
             dtype_name(other.dtype_));
  std::memcpy(raw(), other.raw(), nbytes());
}

Tensor Tensor::to_f32() const {
  if (dtype_ == DType::f32) return clone();
  Tensor t = empty(shape_, DType::f32);
  float* out = t.f32();
  const int64_t n = numel();
  if (dtype_ == DType::i32) {
    const int32_t* p = data<int32_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
  } else {
    const uint8_t* p = data<uint8_t>();
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
  }
  return t;
}

std::vector<float> Tensor::to_vector() const {
  Tensor f = dtype_ == DType::f32 ? *this : to_f32();
  return {f.f32(), f.f32() + f.numel()};
}

float Tensor::item() const {
  BFCN_CHECK(numel() == 1, "Tensor::item: expected 1 element, but got ", numel(), " (shape ",
             shape_, ")");
  return to_vector()[0];
}

void check_shape(const Tensor& t, const Shape& expected, const char* where) {
  BFCN_CHECK(t.shape() == expected, where, ": expected shape ", expected, ", but got ", t.shape());
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* where) {
  BFCN_CHECK(a.shape() == b.shape(), where, ": shapes must match, but got ", a.shape(), " and ",
             b.shape());
}

}  // namespace bfcn
