#include "kernels/cpu_features.h"

#include <cstdlib>
#include <stdexcept>

#include "core/error.h"

namespace bfcn {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.popcnt = __builtin_cpu_supports("popcnt");
    c.bmi2 = __builtin_cpu_supports("bmi2");
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512dq = __builtin_cpu_supports("avx512dq");
    c.avx512vpopcntdq = __builtin_cpu_supports("avx512vpopcntdq");
    c.avx512vnni = __builtin_cpu_supports("avx512vnni");
#endif
    return c;
  }();
  return f;
}

std::string cpu_features_string() {
  const CpuFeatures& c = cpu_features();
  std::string s;
  auto add = [&](bool on, const char* name) {
    if (on) s += (s.empty() ? "" : " ") + std::string(name);
  };
  add(c.popcnt, "popcnt");
  add(c.bmi2, "bmi2");
  add(c.avx2, "avx2");
  add(c.fma, "fma");
  add(c.avx512f, "avx512f");
  add(c.avx512bw, "avx512bw");
  add(c.avx512vl, "avx512vl");
  add(c.avx512dq, "avx512dq");
  add(c.avx512vpopcntdq, "avx512vpopcntdq");
  add(c.avx512vnni, "avx512vnni");
  return s.empty() ? "none" : s;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& c = cpu_features();
  switch (isa) {
    case Isa::ref:
      return true;
    case Isa::avx2:
      return c.avx2 && c.fma && c.popcnt && c.bmi2;
    case Isa::avx512:
      return isa_supported(Isa::avx2) && c.avx512f && c.avx512bw && c.avx512vl && c.avx512dq &&
             c.avx512vpopcntdq;
    case Isa::avx512vnni:
      return isa_supported(Isa::avx512) && c.avx512vnni;
  }
  return false;
}

Isa best_supported_isa() {
  if (isa_supported(Isa::avx512vnni)) return Isa::avx512vnni;
  if (isa_supported(Isa::avx512)) return Isa::avx512;
  if (isa_supported(Isa::avx2)) return Isa::avx2;
  return Isa::ref;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::ref:
      return "ref";
    case Isa::avx2:
      return "avx2";
    case Isa::avx512:
      return "avx512";
    case Isa::avx512vnni:
      return "avx512vnni";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  if (name == "ref" || name == "scalar") return Isa::ref;
  if (name == "avx2") return Isa::avx2;
  if (name == "avx512") return Isa::avx512;
  if (name == "avx512vnni") return Isa::avx512vnni;
  throw Error("BFCN_ISA: expected one of ref, avx2, avx512, avx512vnni, but got '" + name + "'");
}

Isa active_isa() {
  static const Isa isa = [] {
    const char* env = std::getenv("BFCN_ISA");
    if (env == nullptr || *env == '\0') return best_supported_isa();
    Isa want = parse_isa(env);
    if (!isa_supported(want))
      throw Error(std::string("BFCN_ISA=") + env + ": this CPU does not support it (has: " +
                  cpu_features_string() + "); unset BFCN_ISA or choose a lower level");
    return want;
  }();
  return isa;
}

}  // namespace bfcn
