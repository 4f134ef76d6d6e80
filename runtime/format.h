// The .bfcn deploy file (spec: docs/format.md), the only reader/writer of it. Layout:
// "BFCN" | u32 version | u64 json_bytes | JSON header | zero pad to 64 | 64-aligned blobs | u64
// FNV-1a-64 of every byte before it. The loader checks every size, offset, dtype, the version and
// the checksum before anything is used, and throws bfcn::IoError naming the file and what to do.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace bfcn::rt {

constexpr uint32_t kFormatVersion = 1;

enum class BlobType { f32, u64 };

// One blob to write: raw bytes with a name and element type.
struct BlobData {
  std::string name;
  BlobType type = BlobType::f32;
  std::vector<uint8_t> bytes;
};
BlobData make_blob(const std::string& name, const std::vector<float>& v);
BlobData make_blob(const std::string& name, const std::vector<uint64_t>& v);

// A loaded, validated file: header JSON (with "blobs" filled in) and the blob bytes.
struct ModelFile {
  std::string path;
  nlohmann::json header;
  std::vector<uint8_t> data;  // blob section
  struct Entry {
    std::string name;
    BlobType type;
    uint64_t offset, bytes;
  };
  std::vector<Entry> blobs;

  // Checked typed views: the blob must exist, have this type and hold exactly `count` elements.
  const float* f32(const std::string& name, uint64_t count) const;
  const uint64_t* u64(const std::string& name, uint64_t count) const;

 private:
  const Entry& find(const std::string& name, BlobType type, uint64_t count) const;
};

// header must be a JSON object; its "blobs" key is written by this function.
void write_model_file(const std::filesystem::path& path, nlohmann::json header,
                      const std::vector<BlobData>& blobs);
std::vector<uint8_t> serialize_model(nlohmann::json header, const std::vector<BlobData>& blobs);
ModelFile read_model_file(const std::filesystem::path& path);
// Parses a file image already in memory (path only names it in errors).
ModelFile parse_model(const std::string& path, const std::vector<uint8_t>& file);

uint64_t fnv1a64(const uint8_t* p, size_t n);

}  // namespace bfcn::rt
