// One dispatch style for every kernel family. A family lists its variants in one table (a
// std::span of a struct with at least `Isa isa` and `const char* name`, ref first, then by
// non-decreasing ISA level), and dispatch, the reference-equality tests and `bfcn bench` all read
// that table: adding a variant is its kernel file plus one table line.
//
// An Isa level names a whole feature set (kernels/cpu_features.cpp, isa_supported): avx2 means
// AVX2 + FMA + POPCNT + BMI2, avx512 adds F/BW/VL/DQ/VPOPCNTDQ, avx512vnni adds VNNI; so an entry
// needs no separate feature flag. Per-call constraints (e.g. "bits <= 8") are fields of the
// family's struct, checked by the `fits` predicate of best_variant.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "kernels/cpu_features.h"

namespace bfcn {

// True when dispatch may run kernels of level isa: isa <= active_isa() (BFCN_ISA caps it; a level
// at or below the active one is supported, as each level includes the one below).
inline bool isa_enabled(Isa isa) { return int(isa) <= int(active_isa()); }

// The variant dispatch runs: the last entry of `table` whose level is enabled and that `fits`
// (ref, entry 0, when none does). Families cache the result when fits does not depend on the call.
template <class V, class Fits>
const V& best_variant(std::span<const V> table, Fits fits) {
  for (size_t i = table.size(); i-- > 1;)
    if (isa_enabled(table[i].isa) && fits(table[i])) return table[i];
  return table.front();
}
template <class V>
const V& best_variant(std::span<const V> table) {
  return best_variant(table, [](const V&) { return true; });
}

// "sgemm__avx512 conv_rows__avx512 ...": the variant dispatch runs in every family (bit convs:
// bgemm_active(), the default before per-shape timing), for benchmark headers.
std::string dispatched_variants_string();

}  // namespace bfcn
