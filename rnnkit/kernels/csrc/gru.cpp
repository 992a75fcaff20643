// The fused GRU of one layer-direction over the whole sequence, forward and hand-written backward (BPTT).
//
// The C++ twin of kernels/scan.py running nn/cells.gru_step, time-major, behind the boundary of
// kernels/__init__.py. Per step t (docs/variants.md; gate order r, z, n as torch, b_hn inside r * (.)):
//
//     u  = (h_{t-1} * m) W_hh^T                     (B, 3H)  one GEMM; m: recurrent dropout's mask
//     hp = LN_hh(u) + b_hh                          (B, 3H)  LN_hh only with layer norm, over all 3H
//     r = sigma(xp_r + hp_r); z = sigma(xp_z + hp_z); n = tanh(xp_n + r hp_n)
//     h~ = (1 - z) n + z h_{t-1}
//     h_t = d_t h_{t-1} + (1 - d_t) h~              zoneout: d_t a 0/1 mask (1 = keep), or p (eval), or 0
//     y_t = h_t; past a sequence's length (t >= lengths[b]) its state is frozen and y_t = 0
//
//   gru_forward(xp, h0, W_hh, b_hh?, ln_gamma?, ln_beta?, recurrent_mask?, zoneout_mask?, zoneout_p, lengths?)
//       -> (y, h_n, hs, u, gates, stats)
//   gru_backward(dy, dh_n, W_hh, b_hh?, ln_gamma?, ln_beta?, recurrent_mask?, zoneout_mask?, zoneout_p,
//                lengths?, hs, u, gates, stats) -> (dxp, dh0, dW_hh, dbias, dgamma)
//
//     xp (T, B, 3H)  h0 (B, H)  W_hh (3H, H)  b_hh, ln_gamma, ln_beta (3H,)  recurrent_mask (B, H)
//     zoneout_mask (T, B, H) (zoneout_p is read only without it)  lengths (B,) int64
//     y (T, B, H)  h_n (B, H); saved for the backward: hs (T + 1, B, H) the states h_0 ... h_T,
//     u (T, B, 3H), gates (T, B, 3H) r, z, n, stats (T, B, 2) LN_hh's mean and 1 / sigma ((0,) without LN)
//     dbias (3H,) is dL/d b_hh and dL/d ln_beta alike; dgamma (3H,) ((0,) without LN)
//
// After the GEMM, everything of a step is ONE pass over each batch row. The backward runs the steps in
// reverse: per step one fused pass and one GEMM for dL/dh_{t-1} through W_hh; dW_hh is one GEMM over all
// T * B rows after the loop. Padded rows are never computed on: their saved values and gradients are zeros,
// so NaN in padding reaches no result and no gradient.

#include "common.h"

namespace {

constexpr int64_t GATES = 3;   // G = GATES * H

// ------------------------------------------------------------------------------------------ the GRU

// Raw pointers to the inputs and buffers of one call, and the pieces of the equations every pass shares.
template <typename scalar_t>
struct Gru {
  using V = Vec<scalar_t>;
  int64_t T, B, H, G;
  const scalar_t *bias, *gamma, *beta, *mask, *zoneout;   // nullptr where absent
  scalar_t zoneout_p;
  const int64_t* lengths;

  explicit Gru(const Inputs& in)
      : T(in.T), B(in.B), H(in.H), G(in.G), bias(pointer<scalar_t>(in.bias)),
        gamma(pointer<scalar_t>(in.gamma)), beta(pointer<scalar_t>(in.beta)),
        mask(pointer<scalar_t>(in.mask)), zoneout(pointer<scalar_t>(in.zoneout)),
        zoneout_p(static_cast<scalar_t>(in.zoneout_p)), lengths(pointer<int64_t>(in.lengths)) {}

  bool valid(int64_t t, int64_t b) const { return lengths == nullptr || t < lengths[b]; }

  // d_t[j : j + k] of row (t, b): the zoneout mask, or p.
  V keep(int64_t row, int64_t j, int64_t k) const {
    return zoneout ? V::loadu(zoneout + row * H + j, k) : V(zoneout_p);
  }

  // hp[j : j + k] = LN_hh(u) + b_hh of one row u (G,), with LN's (mean, 1 / sigma).
  V hp(const scalar_t* u, scalar_t mean, scalar_t rstd, int64_t j, int64_t k) const {
    V v = V::loadu(u + j, k);
    if (gamma) v = (v - V(mean)) * V(rstd) * V::loadu(gamma + j, k) + V::loadu(beta + j, k);
    return bias ? v + V::loadu(bias + j, k) : v;
  }
};

// One step t of row b after its GEMM: u -> gates, h_t, y_t (and the next GEMM's input h_t * m).
template <typename scalar_t>
void forward_row(const Gru<scalar_t>& c, int64_t t, int64_t b, const scalar_t* xp, const scalar_t* u,
                 scalar_t* hs, scalar_t* gates, scalar_t* stats, scalar_t* y, scalar_t* h_in) {
  using V = Vec<scalar_t>;
  const int64_t H = c.H, G = c.G, row = t * c.B + b;
  const scalar_t* h = hs + row * H;                        // h_{t-1}
  scalar_t* h_t = hs + (row + c.B) * H;
  scalar_t* g = gates + row * G;                           // r, z, n
  if (!c.valid(t, b)) {                                    // frozen: h_t = h_{t-1}, y_t = 0, h_in unchanged
    std::copy(h, h + H, h_t);
    std::fill(y + row * H, y + (row + 1) * H, scalar_t(0));
    std::fill(g, g + G, scalar_t(0));
    if (c.gamma) stats[2 * row] = stats[2 * row + 1] = 0;
    return;
  }
  const scalar_t* x = xp + row * G;
  const scalar_t* v = u + row * G;
  auto [mean, rstd] = c.gamma ? layer_norm_stats(v, G) : std::pair<scalar_t, scalar_t>(0, 1);
  if (c.gamma) stats[2 * row] = mean, stats[2 * row + 1] = rstd;
  for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
    const V r = sigmoid(V::loadu(x + j, k) + c.hp(v, mean, rstd, j, k));
    const V z = sigmoid(V::loadu(x + H + j, k) + c.hp(v, mean, rstd, H + j, k));
    const V n = tanh_of(V::loadu(x + 2 * H + j, k) + r * c.hp(v, mean, rstd, 2 * H + j, k));
    const V h_old = V::loadu(h + j, k);
    const V h_tilde = n + z * (h_old - n);                 // (1 - z) n + z h
    const V h_new = h_tilde + c.keep(row, j, k) * (h_old - h_tilde);
    r.store(g + j, k);
    z.store(g + H + j, k);
    n.store(g + 2 * H + j, k);
    h_new.store(h_t + j, k);
    h_new.store(y + row * H + j, k);
    if (c.mask) (h_new * V::loadu(c.mask + b * H + j, k)).store(h_in + b * H + j, k);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> gru_forward(
    const Tensor& xp_, const Tensor& h0, const Tensor& W_hh, const OptionalTensor& b_hh,
    const OptionalTensor& ln_gamma, const OptionalTensor& ln_beta, const OptionalTensor& recurrent_mask,
    const OptionalTensor& zoneout_mask, double zoneout_p, const OptionalTensor& lengths) {
  TORCH_CHECK(xp_.dim() == 3, "xp: expected (T, B, 3H), got ", xp_.sizes());
  const Inputs in = check_inputs(GATES, xp_.size(0), h0, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask,
                                 zoneout_mask, zoneout_p, lengths);
  const int64_t T = in.T, B = in.B, H = in.H, G = in.G;
  const Tensor xp = checked(xp_, {T, B, G}, "xp", h0).contiguous();
  Tensor y = xp.new_empty({T, B, H}), hs = xp.new_empty({T + 1, B, H}), u = xp.new_empty({T, B, G});
  Tensor gates = xp.new_empty({T, B, G});
  Tensor stats = in.gamma.defined() ? xp.new_empty({T, B, 2}) : xp.new_empty({0});
  hs[0].copy_(h0);
  const Tensor h_in = in.mask.defined() ? (h0 * in.mask).contiguous() : Tensor();   // (B, H): h * m
  const Tensor W_t = in.W.t().contiguous();                                        // (H, G)
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "gru_forward", [&] {
    const Gru<scalar_t> c(in);
    const Gemm<scalar_t> gemm(W_t, B);
    scalar_t* hs_ = hs.mutable_data_ptr<scalar_t>();
    scalar_t* u_ = u.mutable_data_ptr<scalar_t>();
    scalar_t* h_in_ = mutable_pointer<scalar_t>(h_in);
    for (int64_t t = 0; t < T; ++t) {
      gemm(h_in_ ? h_in_ : hs_ + t * B * H, u_ + t * B * G);   // u = (h * m) W_hh^T
      for_rows(B, G, [&](int64_t b) {
        forward_row(c, t, b, xp.const_data_ptr<scalar_t>(), u_, hs_, gates.mutable_data_ptr<scalar_t>(),
                    mutable_pointer<scalar_t>(stats), y.mutable_data_ptr<scalar_t>(), h_in_);
      });
    }
  });
  return {y, hs[T].clone(), hs, u, gates, stats};
}

// Buffers of the backward pass: the gradients written per step, and the two halves of dL/dh_{t-1}.
template <typename scalar_t>
struct Gradients {
  const scalar_t* dy;       // (T, B, H)
  scalar_t* dxp;            // (T, B, G)
  scalar_t* dhp;            // (T, B, G) dL/dhp
  scalar_t* du;             // (T, B, G) dL/du (== dhp without LN)
  const PartialSums* gamma_sums;   // dL/dgamma: dhp * x-hat summed over all rows (LN only)
  scalar_t* dh_rec;         // (B, H) du_{t+1} W_hh, the path through the recurrent GEMM
  scalar_t* dh_dir;         // (B, H) every other path to h_t (z h, zoneout's d h, frozen steps)
};

// The backward of step t for row b: dL/dh_t -> dxp_t, dhp_t, du_t, and dh_dir for step t - 1.
template <typename scalar_t>
void backward_row(const Gru<scalar_t>& c, const Gradients<scalar_t>& d, int64_t t, int64_t b,
                  const scalar_t* hs, const scalar_t* u, const scalar_t* gates, const scalar_t* stats) {
  using V = Vec<scalar_t>;
  const int64_t H = c.H, G = c.G, row = t * c.B + b;
  scalar_t* rec = d.dh_rec + b * H;
  scalar_t* dir = d.dh_dir + b * H;
  auto dh_t = [&](int64_t j, int64_t k) {                  // dL/dh_t, but for the output y_t
    const V through_W = V::loadu(rec + j, k);
    return (c.mask ? through_W * V::loadu(c.mask + b * H + j, k) : through_W) + V::loadu(dir + j, k);
  };
  if (!c.valid(t, b)) {                                    // frozen: the gradient passes to h_{t-1} as it is
    for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) { dh_t(j, k).store(dir + j, k); });
    for (scalar_t* buffer : {d.dxp, d.dhp, d.du}) {   // du may alias dhp: filled twice, harmless
      std::fill(buffer + row * G, buffer + (row + 1) * G, scalar_t(0));
    }
    return;
  }
  const scalar_t* h = hs + row * H;
  const scalar_t* g = gates + row * G;
  const scalar_t* v = u + row * G;
  const scalar_t mean = c.gamma ? stats[2 * row] : 0, rstd = c.gamma ? stats[2 * row + 1] : 1;
  scalar_t* dx = d.dxp + row * G;
  scalar_t* dp = d.dhp + row * G;
  for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
    const V dh = dh_t(j, k) + V::loadu(d.dy + row * H + j, k);
    const V keep = c.keep(row, j, k);
    const V dh_tilde = dh - keep * dh;                     // (1 - d) dh
    const V r = V::loadu(g + j, k), z = V::loadu(g + H + j, k), n = V::loadu(g + 2 * H + j, k);
    const V one(1);
    const V dn = dh_tilde * (one - z) * (one - n * n);     // through tanh
    const V dz = dh_tilde * (V::loadu(h + j, k) - n) * z * (one - z);
    const V dr = dn * c.hp(v, mean, rstd, 2 * H + j, k) * r * (one - r);
    dr.store(dx + j, k);
    dz.store(dx + H + j, k);
    dn.store(dx + 2 * H + j, k);
    dr.store(dp + j, k);
    dz.store(dp + H + j, k);
    (dn * r).store(dp + 2 * H + j, k);                     // r multiplies W_hn h + b_hn
    (dh_tilde * z + keep * dh).store(dir + j, k);          // through z h and zoneout's d h
  });
  if (!c.gamma) return;                                    // du = dhp (d.du aliases d.dhp)
  // LN backward: du = (1 / sigma) (d^ - mean(d^) - x^ mean(d^ x^)), d^ = dhp gamma, x^ = (u - mean) / sigma
  auto x_hat = [&](int64_t j, int64_t k) { return (V::loadu(v + j, k) - V(mean)) * V(rstd); };
  auto d_hat = [&](int64_t j, int64_t k) { return V::loadu(dp + j, k) * V::loadu(c.gamma + j, k); };
  const scalar_t mean_d = sum_lanes<scalar_t>(G, d_hat) / G;
  const scalar_t mean_dx = sum_lanes<scalar_t>(G, [&](int64_t j, int64_t k) {
    return d_hat(j, k) * x_hat(j, k);
  }) / G;
  scalar_t* sum = d.gamma_sums->template mine<scalar_t>();   // this thread's partial dL/dgamma
  for_lanes<scalar_t>(G, [&](int64_t j, int64_t k) {
    (V(rstd) * (d_hat(j, k) - V(mean_d) - x_hat(j, k) * V(mean_dx))).store(d.du + row * G + j, k);
    (V::loadu(sum + j, k) + V::loadu(dp + j, k) * x_hat(j, k)).store(sum + j, k);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> gru_backward(
    const Tensor& dy_, const Tensor& dh_n, const Tensor& W_hh, const OptionalTensor& b_hh,
    const OptionalTensor& ln_gamma, const OptionalTensor& ln_beta, const OptionalTensor& recurrent_mask,
    const OptionalTensor& zoneout_mask, double zoneout_p, const OptionalTensor& lengths, const Tensor& hs,
    const Tensor& u, const Tensor& gates, const Tensor& stats) {
  TORCH_CHECK(dy_.dim() == 3, "dy: expected (T, B, H), got ", dy_.sizes());
  const Inputs in = check_inputs(GATES, dy_.size(0), dh_n, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask,
                                 zoneout_mask, zoneout_p, lengths);
  const int64_t T = in.T, B = in.B, H = in.H, G = in.G;
  const Tensor dy = checked(dy_, {T, B, H}, "dy", dh_n).contiguous();
  checked(hs, {T + 1, B, H}, "hs", dy);
  checked(u, {T, B, G}, "u", dy);
  checked(gates, {T, B, G}, "gates", dy);
  Tensor dxp = dy.new_empty({T, B, G}), dhp = dy.new_empty({T, B, G});
  Tensor du = in.gamma.defined() ? dy.new_empty({T, B, G}) : dhp;
  const PartialSums gamma_sums(in.gamma.defined() ? G : 0, dy.options());
  Tensor dh_rec = dy.new_zeros({B, H}), dh_dir = dh_n.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "gru_backward", [&] {
    const Gru<scalar_t> c(in);
    const Gradients<scalar_t> d{dy.const_data_ptr<scalar_t>(), dxp.mutable_data_ptr<scalar_t>(),
                                dhp.mutable_data_ptr<scalar_t>(), du.mutable_data_ptr<scalar_t>(),
                                &gamma_sums, dh_rec.mutable_data_ptr<scalar_t>(),
                                dh_dir.mutable_data_ptr<scalar_t>()};
    const Tensor hs_ = hs.contiguous(), u_ = u.contiguous(), gates_ = gates.contiguous();
    const Tensor stats_ = stats.contiguous();
    const Gemm<scalar_t> gemm(in.W, B);
    for (int64_t t = T - 1; t >= 0; --t) {
      for_rows(B, G, [&](int64_t b) {
        backward_row(c, d, t, b, hs_.const_data_ptr<scalar_t>(), u_.const_data_ptr<scalar_t>(),
                     gates_.const_data_ptr<scalar_t>(), pointer<scalar_t>(stats_));
      });
      gemm(d.du + t * B * G, d.dh_rec);    // du_t W_hh: to h_{t-1} * m
    }
  });
  const Tensor h = hs.narrow(0, 0, T).reshape({T * B, H});              // h_0 ... h_{T-1}
  const Tensor h_in = in.mask.defined() ? h * in.mask.repeat({T, 1}) : h;  // (T * B, H): what met W_hh
  Tensor dh0 = (in.mask.defined() ? dh_rec * in.mask : dh_rec) + dh_dir;
  Tensor dW = product(du.view({T * B, G}).t(), h_in).to(in.W.scalar_type());   // (G, H), one GEMM, all steps
  Tensor dgamma = in.gamma.defined() ? gamma_sums.total() : dy.new_empty({0});
  return {dxp, dh0, dW, dhp.sum({0, 1}), dgamma};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("gru_forward(Tensor xp, Tensor h0, Tensor W_hh, Tensor? b_hh, Tensor? ln_gamma, Tensor? ln_beta, "
        "Tensor? recurrent_mask, Tensor? zoneout_mask, float zoneout_p, Tensor? lengths) "
        "-> (Tensor y, Tensor h_n, Tensor hs, Tensor u, Tensor gates, Tensor stats)");
  m.def("gru_backward(Tensor dy, Tensor dh_n, Tensor W_hh, Tensor? b_hh, Tensor? ln_gamma, Tensor? ln_beta, "
        "Tensor? recurrent_mask, Tensor? zoneout_mask, float zoneout_p, Tensor? lengths, Tensor hs, "
        "Tensor u, Tensor gates, Tensor stats) "
        "-> (Tensor dxp, Tensor dh0, Tensor dW_hh, Tensor dbias, Tensor dgamma)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("gru_forward", &gru_forward);
  m.impl("gru_backward", &gru_backward);
}
