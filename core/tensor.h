// Tensor: a shared handle to a contiguous, 64-byte-aligned, row-major buffer (NCHW for images).
// Copying a Tensor is SHALLOW (both handles see the same data); clone() makes a deep copy.
// reshape() shares the buffer. There are no strided views: anything that permutes copies.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/shape.h"

namespace bfcn {

enum class DType : uint8_t { f32, i32, u8 };
const char* dtype_name(DType t);
size_t dtype_size(DType t);

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::u8;
}

class Tensor {
 public:
  Tensor() = default;  // undefined: defined() == false
  // Uninitialised storage of the given shape and type.
  static Tensor empty(const Shape& shape, DType dtype = DType::f32);
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32);
  static Tensor full(const Shape& shape, float value);
  static Tensor ones(const Shape& shape) { return full(shape, 1.0f); }
  // Copies `values` (size must equal shape.numel()).
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values);
  static Tensor from_vector_i32(const Shape& shape, const std::vector<int32_t>& values);
  static Tensor from_vector_u8(const Shape& shape, const std::vector<uint8_t>& values);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return shape_.ndim(); }
  int64_t dim(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  // Typed access; throws if T does not match dtype().
  template <class T>
  T* data() {
    check_dtype(dtype_of<T>());
    return static_cast<T*>(raw());
  }
  template <class T>
  const T* data() const {
    check_dtype(dtype_of<T>());
    return static_cast<const T*>(raw());
  }
  template <class T>
  std::span<T> span() {
    return {data<T>(), static_cast<size_t>(numel())};
  }
  template <class T>
  std::span<const T> span() const {
    return {data<T>(), static_cast<size_t>(numel())};
  }
  float* f32() { return data<float>(); }
  const float* f32() const { return data<float>(); }
  void* raw();
  const void* raw() const;

  Tensor clone() const;                      // deep copy
  Tensor reshape(const Shape& shape) const;  // shares storage; numel must match
  void fill(float value);                    // f32 only
  void copy_from(const Tensor& other);       // same shape and dtype, copies data
  Tensor to_f32() const;                     // converts i32/u8 to f32 (copy); f32 → clone
  std::vector<float> to_vector() const;      // f32 copy out (any dtype converted)
  float item() const;                        // numel() must be 1

  // True when both handles share storage.
  bool same_storage(const Tensor& o) const { return storage_ == o.storage_; }

 private:
  void check_dtype(DType want) const;
  struct Storage;
  std::shared_ptr<Storage> storage_;
  Shape shape_;
  DType dtype_ = DType::f32;
};

// "expected [2,3], but got [2,4]" style shape check at API boundaries.
void check_shape(const Tensor& t, const Shape& expected, const char* where);
void check_same_shape(const Tensor& a, const Tensor& b, const char* where);

}  // namespace bfcn
