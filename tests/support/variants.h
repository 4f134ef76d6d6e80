// Test helpers for the kernel variant tables (kernels/variant.h): run a check on every variant of a
// family this CPU supports, and check a table's shape and its dispatch choice.
#pragma once

#include <catch2/catch.hpp>
#include <set>
#include <span>
#include <string>

#include "kernels/cpu_features.h"
#include "kernels/variant.h"
#include "tests/support/test_support.h"

namespace bfcn::test {

// check(v) for every variant of table this CPU runs and that has what the test checks (`has`, e.g.
// a non-null epilogue member; the others are neither run nor reported skipped), whatever BFCN_ISA
// says: tests cover every variant. A variant whose ISA the CPU lacks is reported skipped (WARN and
// the skip log, so the test case is not reported passed), never run.
template <class V, class Has, class F>
void for_each_variant(std::span<const V> table, Has has, F&& check) {
  for (const V& v : table) {
    if (!has(v)) continue;
    if (!isa_supported(v.isa)) {
      const std::string reason = std::string(v.name) + ": this CPU lacks " + isa_name(v.isa);
      record_skip(SkipKind::cpu_feature, reason);
      WARN("skipped: " << reason);
      continue;
    }
    INFO("variant " << v.name);
    check(v);
  }
}

// The same over every variant of table.
template <class V, class F>
void for_each_variant(std::span<const V> table, F&& check) {
  for_each_variant(
      table, [](const V&) { return true; }, check);
}

// A table is ref first, then by non-decreasing ISA level, with unique names, and dispatch runs the
// last entry of the highest level active_isa() allows.
template <class V>
void check_variant_table(std::span<const V> table, const V& dispatched) {
  REQUIRE(!table.empty());
  CHECK(table.front().isa == Isa::ref);
  std::set<std::string> names;
  for (size_t i = 0; i < table.size(); ++i) {
    INFO(table[i].name);
    if (i > 0) CHECK(int(table[i - 1].isa) <= int(table[i].isa));
    CHECK(names.insert(table[i].name).second);
  }
  const V* want = &table.front();
  for (const V& v : table)
    if (int(v.isa) <= int(active_isa())) want = &v;
  CHECK(&dispatched == want);
  CHECK(isa_supported(dispatched.isa));
}

}  // namespace bfcn::test
