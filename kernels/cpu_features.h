// Run-time CPU feature detection and the ISA choice for kernels. Decided once at start-up;
// BFCN_ISA=ref|avx2|avx512 forces a level (an unsupported forced level is an error, not a crash).
#pragma once

#include <string>

namespace bfcn {

enum class Isa { ref = 0, avx2 = 1, avx512 = 2 };

struct CpuFeatures {
  bool avx2 = false, fma = false, popcnt = false, bmi2 = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512vpopcntdq = false, avx512vnni = false;
};

const CpuFeatures& cpu_features();
// "avx2 fma popcnt avx512f ..." — what this CPU has.
std::string cpu_features_string();
// Highest level this CPU supports.
Isa best_supported_isa();
bool isa_supported(Isa isa);
// The level kernels use: BFCN_ISA if set (validated), else best_supported_isa(). Cached.
Isa active_isa();
const char* isa_name(Isa isa);
// Parses "ref" | "avx2" | "avx512"; throws bfcn::Error naming the bad value.
Isa parse_isa(const std::string& name);

}  // namespace bfcn
