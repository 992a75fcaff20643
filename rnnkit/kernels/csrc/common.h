// Helpers shared by the LSTM, GRU and RNN kernels (csrc/lstm.cpp, gru.cpp, rnn.cpp): vector lanes, sigmoid,
// the per-step GEMM (`Gemm`: our loop for a few rows, MKL's packed GEMM or ATen's for more), rows across
// threads, a team of threads over a whole sequence with the weights in panels (`Team`, `Panel`),
// layer-norm statistics and the GRU / RNN input checks (`check_inputs`). Each cell is still its own
// small library (kernels/build.py); this header is compiled into each, inside its anonymous namespace.

#pragma once

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>   // vec_reduce_all (vec.h does not declare it in AVX512 builds)
#include <ATen/cpu/vec/vec.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#ifdef _OPENMP
#include <omp.h>   // the thread team of `Team` (torch's own libgomp, kernels/build.py)
#endif

// oneDNN's matmul as ATen calls it (exported by libtorch_cpu, not in its installed headers; weak: null where
// torch has no oneDNN). 10-20% faster than MKL's float32 GEMM on an AVX-512 AMD EPYC for products of 2^24
// multiply-adds or more (docs/benchmarks.md); below, a call's overhead (about 20 us) costs more than it
// saves.
namespace at::native {
void mkldnn_matmul(const at::Tensor& mat1, const at::Tensor& mat2, const at::Tensor& result, float beta,
                   float alpha) __attribute__((weak));
}

namespace {

using at::Tensor;
using OptionalTensor = std::optional<Tensor>;
template <typename scalar_t>
using Vec = at::vec::Vectorized<scalar_t>;

constexpr double LAYER_NORM_EPS = 1e-5;   // nn/variants.LAYER_NORM_EPS
constexpr int64_t SMALL_ROWS = 8;         // GEMMs with at most this many rows run in our own loop (faster)
constexpr int64_t ROW_GRAIN = 4096;       // elements per thread in the pointwise passes

// ------------------------------------------------------------------------------------------ helpers

// f(j, count) over [0, n) one vector at a time; the last chunk may be partial (loadu / store take count).
template <typename scalar_t, typename F>
inline void for_lanes(int64_t n, const F& f) {
  constexpr int64_t W = Vec<scalar_t>::size();
  for (int64_t j = 0; j < n; j += W) f(j, std::min(W, n - j));
}

// sum over [0, n) of the vectors f(j, count), the lanes past count left out.
template <typename scalar_t, typename F>
inline scalar_t sum_lanes(int64_t n, const F& f) {
  using V = Vec<scalar_t>;
  V acc(0);
  for_lanes<scalar_t>(n, [&](int64_t j, int64_t k) { acc = acc + V::set(V(0), f(j, k), k); });
  return at::vec::vec_reduce_all<scalar_t>([](const V& a, const V& b) { return a + b; }, acc);
}

// out (B, N) = in (B, K) M, M (K, N) contiguous: one GEMM. Up to SMALL_ROWS rows our own loop instead (an
// ATen call costs ~1 us and MKL is slow on a few rows): N in blocks of 4 vectors held in registers over K.
template <typename scalar_t>
void matmul(const scalar_t* in, const Tensor& M, scalar_t* out, int64_t B) {
  using V = Vec<scalar_t>;
  const int64_t K = M.size(0), N = M.size(1);
  if (B > SMALL_ROWS) {
    auto out_ = at::from_blob(out, {B, N}, M.options());
    at::mm_out(out_, at::from_blob(const_cast<scalar_t*>(in), {B, K}, M.options()), M);
    return;
  }
  constexpr int64_t W = V::size(), BLOCK = 4 * W;
  const scalar_t* m = M.const_data_ptr<scalar_t>();
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t n0 = 0; n0 < N; n0 += BLOCK) {
      int64_t count[4];
      for (int64_t i = 0; i < 4; ++i) count[i] = std::clamp<int64_t>(N - n0 - i * W, 0, W);
      V acc[4] = {V(0), V(0), V(0), V(0)};
      for (int64_t k = 0; k < K; ++k) {
        const V a(in[b * K + k]);
        const scalar_t* row = m + k * N + n0;
        for (int64_t i = 0; i < 4; ++i) acc[i] = at::vec::fmadd(a, V::loadu(row + i * W, count[i]), acc[i]);
      }
      for (int64_t i = 0; i < 4; ++i) acc[i].store(out + b * N + n0 + i * W, count[i]);
    }
  }
}

// MKL's packed GEMM where torch was built with MKL (weak symbols: null without it), so the recurrent weight
// is packed once per call instead of inside each of the T per-step GEMMs (docs/benchmarks.md).
extern "C" {
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha,
                      const float* src, int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
}
constexpr int ROW_MAJOR = 101, NO_TRANS = 111, PACKED = 151, B_MATRIX = 162;   // MKL's CBLAS enums

constexpr int64_t ONEDNN_MACS = int64_t(1) << 24;   // B * K * N from which oneDNN runs

// Whether a float32 product of `macs` multiply-adds goes to oneDNN.
inline bool onednn_for(int64_t macs) { return macs >= ONEDNN_MACS && at::native::mkldnn_matmul; }

// out = a @ b, float32 through oneDNN when torch has it and the product holds ONEDNN_MACS multiply-adds, else
// ATen's mm (MKL); a and b may be transposed views. The weight gradients after the backward loop, and `Gemm`.
inline void product_into(const Tensor& out, const Tensor& a, const Tensor& b) {
  if (a.scalar_type() == at::kFloat && onednn_for(a.size(0) * a.size(1) * b.size(1))) {
    at::native::mkldnn_matmul(a, b, out, 0.0f, 1.0f);
  } else {
    at::mm_out(const_cast<Tensor&>(out), a, b);
  }
}

inline Tensor product(const Tensor& a, const Tensor& b) {
  Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  product_into(out, a, b);
  return out;
}

// out (B, N) = in (B, K) M for one M (K, N) and one B at every step of a call: `matmul`, or for float32 at
// ONEDNN_MACS multiply-adds or more oneDNN's matmul, else above SMALL_ROWS rows MKL's packed GEMM (M packed
// here, once), each where torch has it. A bfloat16 M (the weights of a bfloat16 layer; in and out are
// float32) at more than SMALL_ROWS rows is a bfloat16 GEMM: `in` rounded to bfloat16, float32 accumulation
// (ATen's mm, oneDNN on CPU); at fewer, M widened to float32 once and `matmul` (a per-step ATen call would
// cost more than the product).
template <typename scalar_t>
struct Gemm {
  Tensor M;
  int64_t B;
  Tensor packed;                 // MKL's packed copy of M, or undefined
  mutable Tensor in_low, out_low;   // bfloat16 GEMMs: (B, K) and (B, N) buffers, reused at every step

  Gemm(const Tensor& M_, int64_t B_) : M(M_), B(B_) {
    if (M.defined() && M.scalar_type() == at::kBFloat16) {
      if (B <= SMALL_ROWS) M = M.to(at::kFloat);
      else in_low = M.new_empty({B, M.size(0)}), out_low = M.new_empty({B, M.size(1)});
    }
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (M.defined() && M.scalar_type() == at::kFloat && B > SMALL_ROWS && cblas_sgemm_pack_get_size &&
          cblas_sgemm_pack && cblas_sgemm_compute && !onednn()) {
        const int64_t K = M.size(0), N = M.size(1);
        const size_t floats = cblas_sgemm_pack_get_size(B_MATRIX, B, N, K) / sizeof(float) + 1;
        packed = at::empty({static_cast<int64_t>(floats)}, M.options());
        cblas_sgemm_pack(ROW_MAJOR, B_MATRIX, NO_TRANS, B, N, K, 1.0f, M.const_data_ptr<float>(), N,
                         packed.mutable_data_ptr<float>());
      }
    }
  }

  bool onednn() const {
    return M.scalar_type() == at::kFloat && onednn_for(B * M.size(0) * M.size(1));
  }

  void operator()(const scalar_t* in, scalar_t* out) const {
    if constexpr (std::is_same_v<scalar_t, float>) {
      if (M.scalar_type() == at::kBFloat16) {
        const auto options = M.options().dtype(at::kFloat);
        in_low.copy_(at::from_blob(const_cast<float*>(in), {B, M.size(0)}, options));
        at::mm_out(out_low, in_low, M);
        at::from_blob(out, {B, M.size(1)}, options).copy_(out_low);
        return;
      }
      if (packed.defined()) {
        const int64_t K = M.size(0), N = M.size(1);
        cblas_sgemm_compute(ROW_MAJOR, NO_TRANS, PACKED, B, N, K, in, K, packed.const_data_ptr<float>(), N,
                            0.0f, out, N);
        return;
      }
      if (onednn()) {
        const auto options = M.options();
        product_into(at::from_blob(out, {B, M.size(1)}, options),
                     at::from_blob(const_cast<float*>(in), {B, M.size(0)}, options), M);
        return;
      }
    }
    matmul(in, M, out, B);
  }
};

// ------------------------------------------------------------------------------ a team over a sequence

// The threads of one call, up for the whole sequence (one OpenMP parallel region around the time loop), so a
// step costs one barrier instead of a GEMM's and a pointwise pass's thread start-ups. Each thread owns a
// contiguous range of `blocks` (here: blocks of one vector of hidden units), the same range at every step,
// so its slice of the weights stays in its own core's cache. Without OpenMP: one thread, barriers no-ops.
struct Team {
  int id = 0, size = 1;

  static void barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
  }

  static Team here() {   // called inside the parallel region
    Team team;
#ifdef _OPENMP
    team.id = omp_get_thread_num(), team.size = omp_get_num_threads();
#endif
    return team;
  }

  // [begin, end) of `blocks` blocks owned by thread `i` (balanced: sizes differ by at most one).
  std::pair<int64_t, int64_t> range(int64_t blocks, int i) const {
    return {i * blocks / size, (i + 1) * blocks / size};
  }
  std::pair<int64_t, int64_t> range(int64_t blocks) const { return range(blocks, id); }
};

// A weight `w` (NV * N, K) (rows: NV groups of N outputs, e.g. the four gates of H units; its dtype may be
// bfloat16, widened here) laid out for `block_product`: the N outputs in blocks of one vector (W lanes),
// block jb holding, for each k, the NV vectors w[v * N + jb * W + lane][k] one after another, zeros past N.
// So one block's product reads its weights as one contiguous stream, and gives NV vectors of outputs: with
// NV = 4 all four gates of W units, what the LSTM's pointwise step needs and nothing more.
template <typename scalar_t, int NV>
struct Panel {
  static constexpr int64_t W = Vec<scalar_t>::size();
  Tensor weight, data;   // weight (NV * N, K) in scalar_t; data (blocks, K, NV, W)
  int64_t N = 0, K = 0, blocks = 0;
  scalar_t* start = nullptr;   // data's (a raw pointer: read in the threads' inner loops)

  Panel() = default;
  explicit Panel(const Tensor& w)
      : weight(w.to(c10::CppTypeToScalarType<scalar_t>::value).contiguous()),
        N(w.size(0) / NV), K(w.size(1)), blocks((N + W - 1) / W) {
    data = at::empty({blocks, K, NV, W}, weight.options());
    start = data.mutable_data_ptr<scalar_t>();
  }

  // Lays out blocks [begin, end); each thread its own (the first touch puts them in its cache).
  void pack(int64_t begin, int64_t end) {
    const scalar_t* w = weight.const_data_ptr<scalar_t>();
    for (int64_t jb = begin; jb < end; ++jb) {
      scalar_t* out = start + jb * K * NV * W;
      for (int64_t k = 0; k < K; ++k) {
        for (int64_t v = 0; v < NV; ++v) {
          for (int64_t lane = 0; lane < W; ++lane) {
            const int64_t n = jb * W + lane;
            out[(k * NV + v) * W + lane] = n < N ? w[(v * N + n) * K + k] : scalar_t(0);
          }
        }
      }
    }
  }

  const scalar_t* block(int64_t jb) const { return start + jb * K * NV * W; }
};

// Rows per `block_product`: R rows x NV vectors of accumulators stay in registers (AVX-512 has 32).
#ifdef CPU_CAPABILITY_AVX512
constexpr int PANEL_ROWS = 4;
#else
constexpr int PANEL_ROWS = 2;
#endif

// acc[r][v] = sum_k in[r * K + k] * panel[k][v] (one vector each) for R consecutive rows of `in` (., K):
// per k, NV vector loads of the panel and R broadcasts feed R * NV fused multiply-adds.
template <typename scalar_t, int R, int NV>
inline void block_product(const scalar_t* in, const scalar_t* panel, int64_t K, Vec<scalar_t> (&acc)[R][NV]) {
  using V = Vec<scalar_t>;
  constexpr int64_t W = V::size();
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V(0);
  for (int64_t k = 0; k < K; ++k) {
    V w[NV];
    for (int v = 0; v < NV; ++v) w[v] = V::loadu(panel + (k * NV + v) * W);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const V x(in[r * K + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = at::vec::fmadd(x, w[v], acc[r][v]);
    }
  }
}

// f(b, acc) for every row b of in (B, K) times block jb of `panel`, acc (NV,) the row's output vectors:
// PANEL_ROWS rows at a time, the rest one by one.
template <typename scalar_t, int NV, typename F>
inline void for_block_rows(const scalar_t* in, int64_t B, const Panel<scalar_t, NV>& panel, int64_t jb,
                           const F& f) {
  using V = Vec<scalar_t>;
  constexpr int R = PANEL_ROWS;
  const int64_t K = panel.K;
  int64_t b = 0;
  for (; b + R <= B; b += R) {
    V acc[R][NV];
    block_product<scalar_t, R, NV>(in + b * K, panel.block(jb), K, acc);
    for (int r = 0; r < R; ++r) f(b + r, static_cast<const V*>(acc[r]));
  }
  for (; b < B; ++b) {
    V acc[1][NV];
    block_product<scalar_t, 1, NV>(in + b * K, panel.block(jb), K, acc);
    f(b, static_cast<const V*>(acc[0]));
  }
}

// The activations of the pointwise passes. float32: both from ATen's exp_u20 (a degree-5 polynomial,
// 20 ULP), tanh as 1 - 2 / (1 + e^2x), five times faster than Sleef's tanh (24 ns a vector of 16 against
// 4.9 on an AVX-512 EPYC), within 1.8e-7 of tanh and 8.5e-8 of sigma everywhere (measured on N(0, 9)
// inputs against float64), NaN kept NaN (exp_u20 clamps it away). float64: Sleef's 1-ULP exp and tanh.
template <typename scalar_t>
inline Vec<scalar_t> nan_kept(const Vec<scalar_t>& x, const Vec<scalar_t>& y) {
  return Vec<scalar_t>::blendv(y, x, x.isnan());
}

template <typename scalar_t>
inline Vec<scalar_t> sigmoid(const Vec<scalar_t>& x) {
  using V = Vec<scalar_t>;
  if constexpr (std::is_same_v<scalar_t, float>) return nan_kept(x, (V(1) + x.neg().exp_u20()).reciprocal());
  else return (V(1) + x.neg().exp()).reciprocal();
}

template <typename scalar_t>
inline Vec<scalar_t> tanh_of(const Vec<scalar_t>& x) {
  using V = Vec<scalar_t>;
  if constexpr (std::is_same_v<scalar_t, float>) return nan_kept(x, V(1) - V(2) / (V(1) + (x + x).exp_u20()));
  else return x.tanh();
}

// f(b) for every batch row, across threads when the pass is large enough to pay for them.
template <typename F>
inline void for_rows(int64_t B, int64_t width, const F& f) {
  const int64_t grain = std::max<int64_t>(1, ROW_GRAIN / std::max<int64_t>(width, 1));
  at::parallel_for(0, B, grain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) f(b);
  });
}

// Sums over all T * B rows of a backward pass (the layer norms' weight gradients), without a (T, B, n)
// buffer of products: each thread adds its rows into its own row of partial sums, added up at the end.
struct PartialSums {
  Tensor rows;   // (threads, n)

  PartialSums(int64_t n, const at::TensorOptions& options)
      : rows(at::zeros({at::get_num_threads(), n}, options)) {}

  template <typename scalar_t>
  scalar_t* mine() const { return rows.mutable_data_ptr<scalar_t>() + at::get_thread_num() * rows.size(1); }

  // sum[0, count) += a * b (b null: += a), sum a row of `mine()`.
  template <typename scalar_t>
  static void add(scalar_t* sum, const scalar_t* a, const scalar_t* b, int64_t count) {
    using V = Vec<scalar_t>;
    for_lanes<scalar_t>(count, [&](int64_t j, int64_t k) {
      const V v = b ? V::loadu(a + j, k) * V::loadu(b + j, k) : V::loadu(a + j, k);
      (V::loadu(sum + j, k) + v).store(sum + j, k);
    });
  }

  Tensor total() const { return rows.sum(0); }   // (n,)
};

// (mean, 1 / sigma) of the G values of u, biased variance, as torch's layer_norm.
template <typename scalar_t>
inline std::pair<scalar_t, scalar_t> layer_norm_stats(const scalar_t* u, int64_t G) {
  using V = Vec<scalar_t>;
  const scalar_t mean = sum_lanes<scalar_t>(G, [&](int64_t j, int64_t k) { return V::loadu(u + j, k); }) / G;
  const scalar_t var = sum_lanes<scalar_t>(G, [&](int64_t j, int64_t k) {
    const V centred = V::loadu(u + j, k) - V(mean);
    return centred * centred;
  }) / G;
  return {mean, scalar_t(1) / std::sqrt(var + scalar_t(LAYER_NORM_EPS))};
}

const Tensor& checked(const Tensor& t, at::IntArrayRef shape, const char* name, const Tensor& like) {
  TORCH_CHECK(t.sizes() == shape, name, ": expected shape ", shape, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type() && t.device() == like.device(), name,
              ": expected ", like.scalar_type(), " on ", like.device(), ", got ", t.scalar_type(), " on ",
              t.device());
  return t;
}

Tensor optional(const OptionalTensor& t, at::IntArrayRef shape, const char* name, const Tensor& like) {
  return t.has_value() && t->defined() ? checked(*t, shape, name, like).contiguous() : Tensor();
}

template <typename scalar_t>
const scalar_t* pointer(const Tensor& t) {
  return t.defined() ? t.const_data_ptr<scalar_t>() : nullptr;
}

template <typename scalar_t>
scalar_t* mutable_pointer(const Tensor& t) {
  return t.defined() ? t.mutable_data_ptr<scalar_t>() : nullptr;
}

// The inputs of one call, checked and contiguous; undefined where absent.
struct Inputs {
  int64_t T, B, H, G;
  Tensor W, bias, gamma, beta, mask, zoneout, lengths;
  double zoneout_p;
};

// T steps of a cell with `gates` gates (G = gates * H) from h (B, H) (h0 or dh_n, the dtype and device every
// other input must have).
Inputs check_inputs(int64_t gates, int64_t T, const Tensor& h, const Tensor& W_hh,
                    const OptionalTensor& b_hh,
                    const OptionalTensor& ln_gamma, const OptionalTensor& ln_beta,
                    const OptionalTensor& recurrent_mask, const OptionalTensor& zoneout_mask,
                    double zoneout_p, const OptionalTensor& lengths) {
  TORCH_CHECK(h.dim() == 2, "h0: expected (B, H), got ", h.sizes());
  const int64_t B = h.size(0), H = h.size(1), G = gates * H;
  // W_hh in h's dtype, or bfloat16 with a float32 h (a bfloat16 layer: GEMMs in bfloat16, see Gemm)
  const bool low = W_hh.scalar_type() == at::kBFloat16 && h.scalar_type() == at::kFloat;
  Inputs in{T, B, H, G, checked(W_hh, {G, H}, "W_hh", low ? W_hh : h).contiguous(),
            optional(b_hh, {G}, "b_hh", h), optional(ln_gamma, {G}, "ln_gamma", h),
            optional(ln_beta, {G}, "ln_beta", h), optional(recurrent_mask, {B, H}, "recurrent_mask", h),
            optional(zoneout_mask, {T, B, H}, "zoneout_mask", h), Tensor(), zoneout_p};
  TORCH_CHECK(in.gamma.defined() == in.beta.defined(), "ln_gamma and ln_beta: give both or neither");
  if (lengths.has_value() && lengths->defined()) {
    TORCH_CHECK(lengths->sizes() == at::IntArrayRef({B}) && lengths->scalar_type() == at::kLong &&
                    lengths->device().is_cpu(),
                "lengths: expected (", B, ",) int64 on cpu, got ", lengths->sizes(), " ",
                lengths->scalar_type(), " on ", lengths->device());
    in.lengths = lengths->contiguous();
  }
  return in;
}

}  // namespace
