// Python's random module, bit for bit (CPython 3.11 Modules/_randommodule.c + Lib/random.py):
// MT19937 seeded as random.Random(int) seeds it, random(), getrandbits, _randbelow, choices and
// sample. lm-eval draws its bootstrap standard errors (api/metrics.py bootstrap_stderr:
// Random(i).choices per chunk of 1000) and its default few-shot examples (api/samplers.py:
// Random(1234).sample) from it, so reproducing its numbers needs the same stream. Torch-free.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace jointnas::eval::py {

class Random {
 public:
  explicit Random(uint64_t seed) { seed_int(seed); }
  void seed_int(uint64_t seed);  // random.seed(n) for an int n >= 0
  uint32_t genrand_uint32();
  double random();                    // [0, 1), 53 bits
  uint64_t getrandbits(int k);        // k in [0, 64]
  uint64_t randbelow(uint64_t n);     // _randbelow_with_getrandbits, n >= 1
  // choices(range(n), k=k): indices floor(random() * n).
  std::vector<size_t> choices(size_t n, size_t k);
  // sample(range(n), k): indices in the order Python returns the items.
  std::vector<size_t> sample(size_t n, size_t k);

 private:
  void init_genrand(uint32_t s);
  std::array<uint32_t, 624> mt_{};
  int mti_ = 625;
};

}  // namespace jointnas::eval::py
