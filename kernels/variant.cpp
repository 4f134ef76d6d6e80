// The dispatched variant of every kernel family, by name (kernels/variant.h).
#include "kernels/variant.h"

#include "kernels/act_pack.h"
#include "kernels/bitconv.h"
#include "kernels/bitpack.h"
#include "kernels/conv.h"
#include "kernels/conv_stem.h"
#include "kernels/conv_stem_int8.h"
#include "kernels/elementwise.h"
#include "kernels/gemm.h"

namespace bfcn {

std::string dispatched_variants_string() {
  const char* names[] = {sgemm_active().name,
                         best_variant(conv_row_variants()).name,
                         conv_stem_active().name,
                         conv_stem_int8_active().name,
                         best_variant(elementwise_variants()).name,
                         best_variant(bitpack_variants()).name,
                         best_variant(act_pack_variants()).name,
                         best_variant(act_count_variants()).name,
                         bgemm_active().name};
  std::string s;
  for (const char* n : names) s += (s.empty() ? "" : " ") + std::string(n);
  return s;
}

}  // namespace bfcn
