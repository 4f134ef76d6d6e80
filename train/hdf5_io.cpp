// HDF5 reader/writer for TensorFile over the HDF5 C API, with RAII handles. HDF5's own error stack
// printing is silenced while we work; every failure becomes an IoError naming the file.
#include "train/hdf5_io.h"

#include <hdf5.h>

#include <fstream>
#include <system_error>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"

namespace bfcn {
namespace {

namespace fs = std::filesystem;

constexpr const char* kKeyAttr = "bfcn_key";

// Closes an HDF5 id with the matching close function.
class H5Id {
 public:
  H5Id() = default;
  H5Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~H5Id() { reset(); }
  H5Id(const H5Id&) = delete;
  H5Id& operator=(const H5Id&) = delete;
  H5Id(H5Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  H5Id& operator=(H5Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && close_) close_(id_);
    id_ = -1;
  }

 private:
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Turns HDF5's automatic error printing off for the scope (we report errors ourselves).
class SilenceH5 {
 public:
  SilenceH5() {
    H5Eget_auto2(H5E_DEFAULT, &func_, &data_);
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~SilenceH5() { H5Eset_auto2(H5E_DEFAULT, func_, data_); }
  SilenceH5(const SilenceH5&) = delete;
  SilenceH5& operator=(const SilenceH5&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
};

hid_t h5_type(DType t) {
  switch (t) {
    case DType::f32:
      return H5T_NATIVE_FLOAT;
    case DType::i32:
      return H5T_NATIVE_INT32;
    case DType::u8:
      return H5T_NATIVE_UINT8;
  }
  return H5T_NATIVE_FLOAT;
}

void write_string_attr(hid_t obj, const std::string& name, const std::string& value,
                       const std::string& where) {
  H5Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  BFCN_CHECK_IO(type.ok(), where, ": cannot create string type");
  H5Tset_size(type.get(), value.empty() ? 1 : value.size());
  H5Tset_strpad(type.get(), H5T_STR_NULLPAD);
  H5Id space(H5Screate(H5S_SCALAR), H5Sclose);
  H5Id attr(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
            H5Aclose);
  BFCN_CHECK_IO(attr.ok(), where, ": cannot create attribute '", name, "'");
  std::string buf = value.empty() ? std::string(1, '\0') : value;
  BFCN_CHECK_IO(H5Awrite(attr.get(), type.get(), buf.data()) >= 0, where,
                ": cannot write attribute '", name, "'");
}

// Reads a scalar string attribute (fixed or variable length, as h5py writes either).
std::string read_string_attr(hid_t attr, const std::string& where) {
  H5Id type(H5Aget_type(attr), H5Tclose);
  BFCN_CHECK_IO(type.ok() && H5Tget_class(type.get()) == H5T_STRING, where,
                ": expected a string attribute");
  if (H5Tis_variable_str(type.get()) > 0) {
    H5Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    char* s = nullptr;
    BFCN_CHECK_IO(H5Aread(attr, mem.get(), &s) >= 0, where, ": cannot read string attribute");
    std::string out = s ? s : "";
    H5free_memory(s);
    return out;
  }
  size_t n = H5Tget_size(type.get());
  std::vector<char> buf(n + 1, '\0');
  BFCN_CHECK_IO(H5Aread(attr, type.get(), buf.data()) >= 0, where,
                ": cannot read string attribute");
  return std::string(buf.data());  // stops at the first NUL (null-padded strings)
}

// Creates every missing group along "/a/b/c" (excluding the last component).
void ensure_parent_groups(hid_t file, const std::string& path, const std::string& where) {
  for (size_t pos = path.find('/', 1); pos != std::string::npos; pos = path.find('/', pos + 1)) {
    std::string g = path.substr(0, pos);
    if (H5Lexists(file, g.c_str(), H5P_DEFAULT) > 0) continue;
    H5Id grp(H5Gcreate2(file, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    BFCN_CHECK_IO(grp.ok(), where, ": cannot create group '", g, "'");
  }
}

// The file is built in memory (HDF5's core driver, no backing store) and its image written with
// plain I/O: a failed disk write (full disk, file-size limit) is then an ordinary error, whereas an
// HDF5 file whose flush failed stays open inside the library and crashes it at exit.
void write_file(const fs::path& file, const TensorFile& tf) {
  const std::string where = file.string();
  H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  BFCN_CHECK_IO(fapl.ok() && H5Pset_fapl_core(fapl.get(), size_t(64) << 20, 0) >= 0, where,
                ": cannot set up an in-memory HDF5 file");
  H5Id f(H5Fcreate(where.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, fapl.get()), H5Fclose);
  BFCN_CHECK_IO(f.ok(), where, ": cannot create HDF5 file");
  for (const auto& [name, value] : tf.attrs) write_string_attr(f.get(), name, value, where);
  for (const auto& [key, t] : tf.tensors) {
    BFCN_CHECK_IO(t.defined(), where, ": tensor '", key, "' is undefined");
    const std::string path = tensor_key_to_h5_path(key);
    ensure_parent_groups(f.get(), path, where);
    std::vector<hsize_t> dims;
    for (int i = 0; i < t.ndim(); ++i) dims.push_back(static_cast<hsize_t>(t.dim(i)));
    H5Id space(dims.empty() ? H5Screate(H5S_SCALAR)
                            : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
    H5Id ds(H5Dcreate2(f.get(), path.c_str(), h5_type(t.dtype()), space.get(), H5P_DEFAULT,
                       H5P_DEFAULT, H5P_DEFAULT),
            H5Dclose);
    BFCN_CHECK_IO(ds.ok(), where, ": cannot create dataset '", path, "' for tensor '", key,
                  "' (a name that is both a tensor and a module?)");
    if (t.numel() > 0)
      BFCN_CHECK_IO(
          H5Dwrite(ds.get(), h5_type(t.dtype()), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()) >= 0,
          where, ": cannot write tensor '", key, "'");
    write_string_attr(ds.get(), kKeyAttr, key, where);
  }
  BFCN_CHECK_IO(H5Fflush(f.get(), H5F_SCOPE_GLOBAL) >= 0, where, ": cannot flush");
  const ssize_t bytes = H5Fget_file_image(f.get(), nullptr, 0);
  BFCN_CHECK_IO(bytes > 0, where, ": cannot get the HDF5 file image");
  std::vector<char> image(static_cast<size_t>(bytes));
  BFCN_CHECK_IO(H5Fget_file_image(f.get(), image.data(), image.size()) == bytes, where,
                ": cannot get the HDF5 file image");
  f.reset();
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  BFCN_CHECK_IO(out.good(), where,
                ": cannot create the file (check the folder exists and is writable)");
  out.write(image.data(), static_cast<std::streamsize>(image.size()));
  out.flush();
  BFCN_CHECK_IO(out.good(), where, ": write failed (disk full or file-size limit?)");
}

struct VisitCtx {
  TensorFile* tf;
  std::string where;
  std::string error;  // first error (exceptions may not cross the C callback)
};

DType dtype_from_h5(hid_t type, bool* ok) {
  *ok = true;
  H5T_class_t cls = H5Tget_class(type);
  size_t size = H5Tget_size(type);
  if (cls == H5T_FLOAT) return DType::f32;  // f64 is converted to f32 by H5Dread
  if (cls == H5T_INTEGER && size == 1 && H5Tget_sign(type) == H5T_SGN_NONE) return DType::u8;
  if (cls == H5T_INTEGER && size <= 4) return DType::i32;
  if (cls == H5T_INTEGER && size == 8) return DType::i32;  // int64 tensors from torch (narrowed)
  *ok = false;
  return DType::f32;
}

void read_dataset(hid_t loc, const char* name, VisitCtx& ctx) {
  H5Id ds(H5Dopen2(loc, name, H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) throw IoError(ctx.where + ": cannot open dataset '/" + name + "'");
  H5Id type(H5Dget_type(ds.get()), H5Tclose);
  bool ok = false;
  DType dt = dtype_from_h5(type.get(), &ok);
  if (!ok)
    throw IoError(ctx.where + ": dataset '/" + name +
                  "' has an unsupported type (expected float, int or uint8)");
  H5Id space(H5Dget_space(ds.get()), H5Sclose);
  int nd = H5Sget_simple_extent_ndims(space.get());
  if (nd < 0 || nd > kMaxDims)
    throw IoError(ctx.where + ": dataset '/" + name + "' has " + std::to_string(nd) +
                  " dims, at most " + std::to_string(kMaxDims) + " are supported");
  hsize_t dims[kMaxDims] = {0, 0, 0, 0};
  H5Sget_simple_extent_dims(space.get(), dims, nullptr);
  Shape shape;
  switch (nd) {
    case 0:
      shape = Shape{};
      break;
    case 1:
      shape = Shape{static_cast<int64_t>(dims[0])};
      break;
    case 2:
      shape = Shape{static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1])};
      break;
    case 3:
      shape = Shape{static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1]),
                    static_cast<int64_t>(dims[2])};
      break;
    default:
      shape = Shape{static_cast<int64_t>(dims[0]), static_cast<int64_t>(dims[1]),
                    static_cast<int64_t>(dims[2]), static_cast<int64_t>(dims[3])};
  }
  Tensor t = Tensor::empty(shape, dt);
  if (t.numel() > 0 && H5Dread(ds.get(), h5_type(dt), H5S_ALL, H5S_ALL, H5P_DEFAULT, t.raw()) < 0)
    throw IoError(ctx.where + ": cannot read dataset '/" + name + "'");
  std::string key = h5_path_to_tensor_key(std::string("/") + name);
  if (H5Aexists(ds.get(), kKeyAttr) > 0) {
    H5Id attr(H5Aopen(ds.get(), kKeyAttr, H5P_DEFAULT), H5Aclose);
    key = read_string_attr(attr.get(), ctx.where);
  }
  ctx.tf->tensors[key] = t;
}

#if H5_VERSION_GE(1, 12, 0)
using ObjInfo = H5O_info2_t;
#else
using ObjInfo = H5O_info_t;
#endif

herr_t visit_cb(hid_t obj, const char* name, const ObjInfo* info, void* op_data) {
  auto* ctx = static_cast<VisitCtx*>(op_data);
  if (info->type != H5O_TYPE_DATASET || !ctx->error.empty()) return 0;
  try {
    read_dataset(obj, name, *ctx);
  } catch (const std::exception& e) {
    ctx->error = e.what();
    return -1;
  }
  return 0;
}

herr_t attr_cb(hid_t loc, const char* name, const H5A_info_t*, void* op_data) {
  auto* ctx = static_cast<VisitCtx*>(op_data);
  try {
    H5Id attr(H5Aopen(loc, name, H5P_DEFAULT), H5Aclose);
    H5Id type(H5Aget_type(attr.get()), H5Tclose);
    if (H5Tget_class(type.get()) != H5T_STRING) return 0;  // non-string attributes are skipped
    ctx->tf->attrs[name] = read_string_attr(attr.get(), ctx->where);
  } catch (const std::exception& e) {
    ctx->error = e.what();
    return -1;
  }
  return 0;
}

bool is_hdf5(const std::string& file) {
#if H5_VERSION_GE(1, 12, 0)
  return H5Fis_accessible(file.c_str(), H5P_DEFAULT) > 0;
#else
  return H5Fis_hdf5(file.c_str()) > 0;
#endif
}

}  // namespace

std::string tensor_key_to_h5_path(const std::string& key) {
  BFCN_CHECK(!key.empty() && key.front() != '/' && key.back() != '.',
             "tensor file: bad tensor key '", key, "' (expected \"group/dotted.name\")");
  size_t slash = key.rfind('/');
  std::string path = "/" + key;
  for (size_t i = slash == std::string::npos ? 1 : slash + 2; i < path.size(); ++i)
    if (path[i] == '.') path[i] = '/';
  return path;
}

std::string h5_path_to_tensor_key(const std::string& path) {
  std::string p = path.empty() || path.front() != '/' ? path : path.substr(1);
  size_t slash = p.find('/');
  if (slash == std::string::npos) return p;
  for (size_t i = slash + 1; i < p.size(); ++i)
    if (p[i] == '/') p[i] = '.';
  return p;
}

void save_tensor_file(const fs::path& file, const TensorFile& tf) {
  SilenceH5 quiet;
  write_file_atomically(file, [&](const fs::path& tmp) { write_file(tmp, tf); });
}

TensorFile load_tensor_file(const fs::path& file) {
  SilenceH5 quiet;
  const std::string where = file.string();
  BFCN_CHECK_IO(fs::exists(file), where, ": no such file");
  BFCN_CHECK_IO(is_hdf5(where), where,
                ": not an HDF5 file (expected weights from scripts/convert_torchvision.py or a "
                "bfcn checkpoint)");
  H5Id f(H5Fopen(where.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  BFCN_CHECK_IO(f.ok(), where, ": cannot open HDF5 file");
  TensorFile tf;
  VisitCtx ctx{&tf, where, {}};
  hsize_t idx = 0;
  H5Aiterate2(f.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, attr_cb, &ctx);
  if (!ctx.error.empty()) throw IoError(ctx.error);
#if H5_VERSION_GE(1, 12, 0)
  herr_t st = H5Ovisit3(f.get(), H5_INDEX_NAME, H5_ITER_INC, visit_cb, &ctx, H5O_INFO_BASIC);
#else
  herr_t st = H5Ovisit2(f.get(), H5_INDEX_NAME, H5_ITER_INC, visit_cb, &ctx, H5O_INFO_BASIC);
#endif
  if (!ctx.error.empty()) throw IoError(ctx.error);
  BFCN_CHECK_IO(st >= 0, where, ": cannot walk the file's groups");
  return tf;
}

}  // namespace bfcn
