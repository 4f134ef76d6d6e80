// Fuzzes the .bfcn reader: bytes -> parse_model (sizes, offsets, checksum) -> Model::from_file
// (graph validation, shapes, blob counts). A bad file must end in bfcn::Error, never a crash, an
// out-of-bounds read or an unbounded allocation (libFuzzer's -malloc_limit_mb catches those).
// The checksum is recomputed when the input has a plausible footer, so mutations reach the JSON
// header and the graph checks instead of stopping at the checksum.
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/format.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> file(data, data + size);
  for (int fix = 0; fix < 2; ++fix) {
    if (fix == 1) {
      if (file.size() < 24) break;
      const uint64_t h = bfcn::rt::fnv1a64(file.data(), file.size() - 8);
      std::memcpy(file.data() + file.size() - 8, &h, 8);
    }
    try {
      bfcn::rt::Model::from_file(bfcn::rt::parse_model("fuzz.bfcn", file));
    } catch (const bfcn::Error&) {
    } catch (const nlohmann::json::exception&) {
      __builtin_trap();  // a JSON error must be wrapped into a bfcn::Error naming the file
    }
  }
  return 0;
}
