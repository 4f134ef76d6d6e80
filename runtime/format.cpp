// Reader/writer of the .bfcn file (docs/format.md). Everything read from the file is untrusted:
// sizes are compared by subtraction (no overflowing additions) and JSON is type-checked on access.
#include "runtime/format.h"

#include <cstring>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace bfcn::rt {

namespace {

constexpr char kMagic[4] = {'B', 'F', 'C', 'N'};
constexpr uint64_t kPrefixBytes = 16;  // magic + version + json length
constexpr uint64_t kAlign = 64;

uint64_t align_up(uint64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

template <class T>
void put(std::vector<uint8_t>& out, T v) {
  const size_t at = out.size();
  out.resize(at + sizeof(T));
  std::memcpy(out.data() + at, &v, sizeof(T));
}

template <class T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

const char* type_name(BlobType t) { return t == BlobType::f32 ? "f32" : "u64"; }
uint64_t type_size(BlobType t) { return t == BlobType::f32 ? 4 : 8; }

}  // namespace

uint64_t fnv1a64(const uint8_t* p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

BlobData make_blob(const std::string& name, const std::vector<float>& v) {
  BlobData b{name, BlobType::f32, std::vector<uint8_t>(v.size() * 4)};
  if (!v.empty()) std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
  return b;
}

BlobData make_blob(const std::string& name, const std::vector<uint64_t>& v) {
  BlobData b{name, BlobType::u64, std::vector<uint8_t>(v.size() * 8)};
  if (!v.empty()) std::memcpy(b.bytes.data(), v.data(), b.bytes.size());
  return b;
}

std::vector<uint8_t> serialize_model(nlohmann::json header, const std::vector<BlobData>& blobs) {
  BFCN_CHECK(header.is_object(), "write_model_file: header must be a JSON object");
  nlohmann::json table = nlohmann::json::array();
  uint64_t offset = 0;
  for (const BlobData& b : blobs) {
    table.push_back({{"name", b.name},
                     {"dtype", type_name(b.type)},
                     {"offset", offset},
                     {"bytes", b.bytes.size()}});
    offset = align_up(offset + b.bytes.size());
  }
  header["blobs"] = table;
  const std::string json = header.dump();
  std::vector<uint8_t> out;
  out.resize(4);
  std::memcpy(out.data(), kMagic, 4);
  put<uint32_t>(out, kFormatVersion);
  put<uint64_t>(out, json.size());
  out.insert(out.end(), json.begin(), json.end());
  out.resize(align_up(out.size()), 0);
  const uint64_t data_start = out.size();
  for (size_t i = 0; i < blobs.size(); ++i) {
    out.resize(data_start + table[i]["offset"].get<uint64_t>(), 0);
    out.insert(out.end(), blobs[i].bytes.begin(), blobs[i].bytes.end());
  }
  out.resize(align_up(out.size()), 0);
  put<uint64_t>(out, fnv1a64(out.data(), out.size()));
  return out;
}

void write_model_file(const std::filesystem::path& path, nlohmann::json header,
                      const std::vector<BlobData>& blobs) {
  const std::vector<uint8_t> bytes = serialize_model(std::move(header), blobs);
  // Never a half-written model: a temp file beside it, fsync'ed, renamed into place.
  write_file_atomically(path, [&](const std::filesystem::path& tmp) {
    std::ofstream f(tmp, std::ios::binary);
    BFCN_CHECK_IO(f.good(), path.string(), ": cannot open ", tmp.string(),
                  " for writing (check the folder exists and is writable)");
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    f.flush();
    BFCN_CHECK_IO(f.good(), path.string(), ": write failed (disk full or file-size limit?)");
  });
}

ModelFile read_model_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  BFCN_CHECK_IO(f.good(), path.string(), ": cannot open model file (check the path)");
  const std::streamoff size = f.tellg();
  BFCN_CHECK_IO(size >= 0, path.string(), ": cannot read model file size");
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(bytes.data()), size);
  BFCN_CHECK_IO(f.good() || size == 0, path.string(), ": read failed");
  return parse_model(path.string(), bytes);
}

ModelFile parse_model(const std::string& path, const std::vector<uint8_t>& file) {
  const std::string hint = "; re-export it with `bfcn export`";
  const uint64_t n = file.size();
  BFCN_CHECK_IO(n >= kPrefixBytes + 8, path, ": not a .bfcn model (", n, " bytes, too short)",
                hint);
  BFCN_CHECK_IO(std::memcmp(file.data(), kMagic, 4) == 0, path,
                ": not a .bfcn model (bad magic, expected \"BFCN\")");
  const uint32_t version = get<uint32_t>(file.data() + 4);
  BFCN_CHECK_IO(version == kFormatVersion, path, ": format version ", version,
                ", this runtime reads ", kFormatVersion, hint);
  const uint64_t stored = get<uint64_t>(file.data() + n - 8);
  BFCN_CHECK_IO(stored == fnv1a64(file.data(), n - 8), path,
                ": checksum mismatch (the file is truncated or corrupted)", hint);
  const uint64_t json_bytes = get<uint64_t>(file.data() + 8);
  BFCN_CHECK_IO(json_bytes <= n - kPrefixBytes - 8, path, ": JSON header length ", json_bytes,
                " exceeds the file size ", n, hint);
  const uint64_t data_start = align_up(kPrefixBytes + json_bytes);
  BFCN_CHECK_IO(data_start <= n - 8, path, ": blob section starts past the end of the file", hint);

  ModelFile m;
  m.path = path;
  try {
    m.header = nlohmann::json::parse(file.begin() + kPrefixBytes,
                                     file.begin() + int64_t(kPrefixBytes + json_bytes));
  } catch (const nlohmann::json::exception& e) {
    throw IoError(path + ": JSON header does not parse (" + e.what() + ")" + hint);
  }
  BFCN_CHECK_IO(m.header.is_object(), path, ": JSON header must be an object", hint);
  m.data.assign(file.begin() + int64_t(data_start), file.end() - 8);
  const uint64_t data_bytes = m.data.size();

  const auto it = m.header.find("blobs");
  BFCN_CHECK_IO(it != m.header.end() && it->is_array(), path, ": header has no \"blobs\" array",
                hint);
  for (size_t i = 0; i < it->size(); ++i) {
    const nlohmann::json& b = (*it)[i];
    const std::string where = path + ": blobs[" + std::to_string(i) + "]";
    BFCN_CHECK_IO(b.is_object() && b.contains("name") && b["name"].is_string() &&
                      b.contains("dtype") && b["dtype"].is_string() && b.contains("offset") &&
                      b["offset"].is_number_unsigned() && b.contains("bytes") &&
                      b["bytes"].is_number_unsigned(),
                  where, ": expected {name, dtype, offset, bytes}", hint);
    ModelFile::Entry e;
    e.name = b["name"].get<std::string>();
    const std::string dt = b["dtype"].get<std::string>();
    BFCN_CHECK_IO(dt == "f32" || dt == "u64", where, ": dtype must be f32 or u64, got '", dt, "'",
                  hint);
    e.type = dt == "f32" ? BlobType::f32 : BlobType::u64;
    e.offset = b["offset"].get<uint64_t>();
    e.bytes = b["bytes"].get<uint64_t>();
    BFCN_CHECK_IO(e.offset % kAlign == 0, where, ": offset ", e.offset, " is not 64-byte aligned",
                  hint);
    BFCN_CHECK_IO(e.offset <= data_bytes && e.bytes <= data_bytes - e.offset, where, " ('", e.name,
                  "'): offset ", e.offset, " + ", e.bytes, " bytes exceeds the blob section (",
                  data_bytes, " bytes)", hint);
    BFCN_CHECK_IO(e.bytes % type_size(e.type) == 0, where, ": ", e.bytes,
                  " bytes is not a whole number of ", dt, hint);
    m.blobs.push_back(e);
  }
  return m;
}

const ModelFile::Entry& ModelFile::find(const std::string& name, BlobType type,
                                        uint64_t count) const {
  for (const Entry& e : blobs)
    if (e.name == name) {
      BFCN_CHECK_IO(e.type == type, path, ": blob '", name, "' has dtype ", type_name(e.type),
                    ", expected ", type_name(type), "; re-export it with `bfcn export`");
      BFCN_CHECK_IO(e.bytes == count * type_size(type), path, ": blob '", name, "' holds ",
                    e.bytes / type_size(type), " values, expected ", count,
                    "; re-export it with `bfcn export`");
      return e;
    }
  throw IoError(path + ": blob '" + name + "' is missing; re-export it with `bfcn export`");
}

const float* ModelFile::f32(const std::string& name, uint64_t count) const {
  const Entry& e = find(name, BlobType::f32, count);
  return reinterpret_cast<const float*>(data.data() + e.offset);
}

const uint64_t* ModelFile::u64(const std::string& name, uint64_t count) const {
  const Entry& e = find(name, BlobType::u64, count);
  return reinterpret_cast<const uint64_t*>(data.data() + e.offset);
}

}  // namespace bfcn::rt
