// Rng: an explicit, seedable random generator (xoshiro256**), never global state.
// The same seed gives the same stream on every platform and thread count: parallel code forks
// one child stream per work item with fork(i) rather than sharing a generator.
#pragma once

#include <cstdint>

namespace bfcn {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { seed_with(seed); }
  void seed_with(uint64_t seed);
  uint64_t next_u64();
  float uniform();                    // [0, 1)
  float uniform(float lo, float hi);  // [lo, hi)
  float normal(float mean = 0.0f, float stddev = 1.0f);
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)
  // An independent stream derived from this one's seed and `stream`; does not advance *this.
  Rng fork(uint64_t stream) const;

  // Full state, for checkpoints: 4 words + the cached normal.
  struct State {
    uint64_t s[4];
    uint64_t seed;
    bool has_spare;
    float spare;
  };
  State state() const;
  void set_state(const State& st);

 private:
  uint64_t s_[4]{};
  uint64_t seed_ = 0;
  bool has_spare_ = false;
  float spare_ = 0.0f;
};

}  // namespace bfcn
