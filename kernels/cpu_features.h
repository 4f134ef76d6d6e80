// Run-time CPU feature detection and the ISA choice for kernels. Decided once at start-up;
// BFCN_ISA=ref|avx2|avx512|avx512vnni forces a level (an unsupported forced level is an error, not
// a crash).
#pragma once

#include <string>

// 1 when compiling for x86: only then are the *__avx2 / *__avx512 kernel files built (CMake leaves
// them out for other CPUs, e.g. the aarch64 cross build), so every call into them is guarded by it.
#if defined(__x86_64__) || defined(__i386__)
#define BFCN_X86 1
#else
#define BFCN_X86 0
#endif

namespace bfcn {

// Each level includes the one below; avx512vnni adds VNNI's 8-bit dot products (VPDPBUSD).
enum class Isa { ref = 0, avx2 = 1, avx512 = 2, avx512vnni = 3 };

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
// Parses "ref" | "avx2" | "avx512" | "avx512vnni"; throws bfcn::Error naming the bad value.
Isa parse_isa(const std::string& name);

}  // namespace bfcn
