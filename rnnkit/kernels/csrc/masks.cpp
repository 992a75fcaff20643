// Bernoulli masks from a counter-based hash (kernels/masks.py is the Python side and the pure-torch twin).
//
//   element i of the draw keyed by `seed`:  mask_i = 1  if  splitmix64(seed + (i + 1) * GOLDEN) >> 40 < threshold
//   threshold = round(p * 2^24), so P(mask_i = 1) = p to within 2^-25
//
// Every element is a pure function of (seed, i): the fill splits across threads with no shared generator
// state and vectorises (AVX-512DQ has the 64-bit multiply), where torch's CPU generator draws one number at
// a time on one thread (5-8 ns an element; zoneout draws (T, B, H) of them per layer-direction and call).

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstdint>

namespace {

constexpr uint64_t GOLDEN = 0x9E3779B97F4A7C15ull;   // Steele, Lea and Flood's splitmix64 (2014)
constexpr uint64_t MIX1 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t MIX2 = 0x94D049BB133111EBull;
constexpr int64_t BITS = 24;                          // random bits an element keeps (the top ones)
constexpr int64_t GRAIN = 1 << 15;                    // elements per thread

inline uint64_t splitmix64(uint64_t z) {
  z = (z ^ (z >> 30)) * MIX1;
  z = (z ^ (z >> 27)) * MIX2;
  return z ^ (z >> 31);
}

template <typename scalar_t>
void fill(scalar_t* out, int64_t n, uint64_t seed, uint64_t threshold) {
  at::parallel_for(0, n, GRAIN, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t bits = splitmix64(seed + static_cast<uint64_t>(i + 1) * GOLDEN) >> (64 - BITS);
      out[i] = static_cast<scalar_t>(bits < threshold ? 1.0f : 0.0f);
    }
  });
}

at::Tensor hash_bernoulli(const at::Tensor& seed, c10::IntArrayRef size, int64_t threshold,
                          c10::ScalarType dtype) {
  TORCH_CHECK(seed.numel() == 1 && seed.scalar_type() == at::kLong,
              "hash_bernoulli: expected seed to be one int64, got ", seed.numel(), " elements of ",
              seed.scalar_type());
  TORCH_CHECK(0 <= threshold && threshold <= (int64_t(1) << BITS),
              "hash_bernoulli: expected threshold in [0, 2^24], got ", threshold);
  auto out = at::empty(size, at::TensorOptions().dtype(dtype));
  const auto key = static_cast<uint64_t>(seed.item<int64_t>());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, dtype, "hash_bernoulli", [&] {
    fill(out.data_ptr<scalar_t>(), out.numel(), key, static_cast<uint64_t>(threshold));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("hash_bernoulli(Tensor seed, int[] size, int threshold, ScalarType dtype) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("hash_bernoulli", &hash_bernoulli);
}
