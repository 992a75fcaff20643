// The fused Elman RNN (tanh or relu) of one layer-direction over the whole sequence, forward and
// hand-written backward (BPTT).
//
// The C++ twin of kernels/scan.py running nn/cells.rnn_step, time-major, behind the boundary of
// kernels/__init__.py. Per step t (docs/variants.md):
//
//     u  = (h_{t-1} * m) W_hh^T                     (B, H)  one GEMM; m: recurrent dropout's mask
//     h~ = tanh(xp + LN_hh(u) + b_hh)               (or relu); LN_hh only with layer norm
//     h_t = d_t h_{t-1} + (1 - d_t) h~              zoneout: d_t a 0/1 mask (1 = keep), or p (eval), or 0
//     y_t = h_t; past a sequence's length (t >= lengths[b]) its state is frozen and y_t = 0
//
//   rnn_forward(xp, h0, W_hh, b_hh?, ln_gamma?, ln_beta?, recurrent_mask?, zoneout_mask?, zoneout_p, lengths?,
//               relu) -> (y, h_n, hs, u, h_tilde, stats)
//   rnn_backward(dy, dh_n, W_hh, b_hh?, ln_gamma?, ln_beta?, recurrent_mask?, zoneout_mask?, zoneout_p,
//                lengths?, relu, hs, u, h_tilde, stats) -> (dxp, dh0, dW_hh, dbias, dgamma)
//
//     xp (T, B, H)  h0 (B, H)  W_hh (H, H)  b_hh, ln_gamma, ln_beta (H,)  recurrent_mask (B, H)
//     zoneout_mask (T, B, H) (zoneout_p is read only without it)  lengths (B,) int64
//     y (T, B, H)  h_n (B, H); saved for the backward: hs (T + 1, B, H) the states h_0 ... h_T,
//     u (T, B, H), h_tilde (T, B, H) the activations, stats (T, B, 2) LN_hh's mean and 1 / sigma ((0,) without
//     LN); dbias (H,) is dL/d b_hh and dL/d ln_beta alike; dgamma (H,) ((0,) without LN)
//
// The helpers are csrc/common.h's, shared with csrc/gru.cpp. After the GEMM, everything of a
// step is ONE pass over each batch row; the backward runs the steps in reverse with one GEMM each for
// dL/dh_{t-1}, and dW_hh is one GEMM over all T * B rows after the loop. Padded rows are never computed on:
// their saved values and gradients are zeros, so NaN in padding reaches no result and no gradient.

#include "common.h"

namespace {

constexpr int64_t GATES = 1;   // G = GATES * H

// ------------------------------------------------------------------------------------------ the Elman RNN

// Raw pointers to the inputs of one call, and the pieces of the equations every pass shares.
template <typename scalar_t>
struct Rnn {
  using V = Vec<scalar_t>;
  int64_t T, B, H, G;
  const scalar_t *bias, *gamma, *beta, *mask, *zoneout;   // nullptr where absent
  scalar_t zoneout_p;
  const int64_t* lengths;
  bool relu;

  Rnn(const Inputs& in, bool relu)
      : T(in.T), B(in.B), H(in.H), G(in.G), bias(pointer<scalar_t>(in.bias)),
        gamma(pointer<scalar_t>(in.gamma)), beta(pointer<scalar_t>(in.beta)),
        mask(pointer<scalar_t>(in.mask)), zoneout(pointer<scalar_t>(in.zoneout)),
        zoneout_p(static_cast<scalar_t>(in.zoneout_p)), lengths(pointer<int64_t>(in.lengths)), relu(relu) {}

  bool valid(int64_t t, int64_t b) const { return lengths == nullptr || t < lengths[b]; }

  // d_t[j : j + k] of row (t, b): the zoneout mask, or p.
  V keep(int64_t row, int64_t j, int64_t k) const {
    return zoneout ? V::loadu(zoneout + row * H + j, k) : V(zoneout_p);
  }

  // hp[j : j + k] = LN_hh(u) + b_hh of one row u (H,), with LN's (mean, 1 / sigma).
  V hp(const scalar_t* u, scalar_t mean, scalar_t rstd, int64_t j, int64_t k) const {
    V v = V::loadu(u + j, k);
    if (gamma) v = (v - V(mean)) * V(rstd) * V::loadu(gamma + j, k) + V::loadu(beta + j, k);
    return bias ? v + V::loadu(bias + j, k) : v;
  }

  V activation(const V& a) const { return relu ? at::vec::maximum(a, V(0)) : tanh_of(a); }

  // dL/da from dL/dh~ through h~ = act(a): tanh' = 1 - h~^2, relu' = [h~ > 0].
  V activation_backward(const V& dh_tilde, const V& h_tilde) const {
    if (relu) return V::blendv(V(0), dh_tilde, h_tilde > V(0));
    return dh_tilde * (V(1) - h_tilde * h_tilde);
  }
};

// One step t of row b after its GEMM: u -> h~, h_t, y_t (and the next GEMM's input h_t * m).
template <typename scalar_t>
void forward_row(const Rnn<scalar_t>& c, int64_t t, int64_t b, const scalar_t* xp, const scalar_t* u,
                 scalar_t* hs, scalar_t* h_tilde, scalar_t* stats, scalar_t* y, scalar_t* h_in) {
  using V = Vec<scalar_t>;
  const int64_t H = c.H, row = t * c.B + b;
  const scalar_t* h = hs + row * H;                        // h_{t-1}
  scalar_t* h_t = hs + (row + c.B) * H;
  scalar_t* act = h_tilde + row * H;
  if (!c.valid(t, b)) {                                    // frozen: h_t = h_{t-1}, y_t = 0, h_in unchanged
    std::copy(h, h + H, h_t);
    std::fill(y + row * H, y + (row + 1) * H, scalar_t(0));
    std::fill(act, act + H, scalar_t(0));
    if (c.gamma) stats[2 * row] = stats[2 * row + 1] = 0;
    return;
  }
  const scalar_t* x = xp + row * H;
  const scalar_t* v = u + row * H;
  auto [mean, rstd] = c.gamma ? layer_norm_stats(v, H) : std::pair<scalar_t, scalar_t>(0, 1);
  if (c.gamma) stats[2 * row] = mean, stats[2 * row + 1] = rstd;
  for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
    const V fresh = c.activation(V::loadu(x + j, k) + c.hp(v, mean, rstd, j, k));
    const V h_old = V::loadu(h + j, k);
    const V h_new = fresh + c.keep(row, j, k) * (h_old - fresh);
    fresh.store(act + j, k);
    h_new.store(h_t + j, k);
    h_new.store(y + row * H + j, k);
    if (c.mask) (h_new * V::loadu(c.mask + b * H + j, k)).store(h_in + b * H + j, k);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> rnn_forward(
    const Tensor& xp_, const Tensor& h0, const Tensor& W_hh, const OptionalTensor& b_hh,
    const OptionalTensor& ln_gamma, const OptionalTensor& ln_beta, const OptionalTensor& recurrent_mask,
    const OptionalTensor& zoneout_mask, double zoneout_p, const OptionalTensor& lengths, bool relu) {
  TORCH_CHECK(xp_.dim() == 3, "xp: expected (T, B, H), got ", xp_.sizes());
  const Inputs in = check_inputs(GATES, xp_.size(0), h0, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask,
                                 zoneout_mask, zoneout_p, lengths);
  const int64_t T = in.T, B = in.B, H = in.H;
  const Tensor xp = checked(xp_, {T, B, H}, "xp", h0).contiguous();
  Tensor y = xp.new_empty({T, B, H}), hs = xp.new_empty({T + 1, B, H}), u = xp.new_empty({T, B, H});
  Tensor h_tilde = xp.new_empty({T, B, H});
  Tensor stats = in.gamma.defined() ? xp.new_empty({T, B, 2}) : xp.new_empty({0});
  hs[0].copy_(h0);
  const Tensor h_in = in.mask.defined() ? (h0 * in.mask).contiguous() : Tensor();   // (B, H): h * m
  const Tensor W_t = in.W.t().contiguous();                                        // (H, H)
  AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "rnn_forward", [&] {
    const Rnn<scalar_t> c(in, relu);
    const Gemm<scalar_t> gemm(W_t, B);
    scalar_t* hs_ = hs.mutable_data_ptr<scalar_t>();
    scalar_t* u_ = u.mutable_data_ptr<scalar_t>();
    scalar_t* h_in_ = mutable_pointer<scalar_t>(h_in);
    for (int64_t t = 0; t < T; ++t) {
      gemm(h_in_ ? h_in_ : hs_ + t * B * H, u_ + t * B * H);   // u = (h * m) W_hh^T
      for_rows(B, H, [&](int64_t b) {
        forward_row(c, t, b, xp.const_data_ptr<scalar_t>(), u_, hs_, h_tilde.mutable_data_ptr<scalar_t>(),
                    mutable_pointer<scalar_t>(stats), y.mutable_data_ptr<scalar_t>(), h_in_);
      });
    }
  });
  return {y, hs[T].clone(), hs, u, h_tilde, stats};
}

// Buffers of the backward pass: the gradients written per step, and the two halves of dL/dh_{t-1}.
template <typename scalar_t>
struct Gradients {
  const scalar_t* dy;       // (T, B, H)
  scalar_t* dxp;            // (T, B, H) dL/dxp == dL/dhp
  scalar_t* du;             // (T, B, H) dL/du (== dxp without LN)
  const PartialSums* gamma_sums;   // dL/dgamma: dhp * x-hat summed over all rows (LN only)
  scalar_t* dh_rec;         // (B, H) du_{t+1} W_hh, the path through the recurrent GEMM
  scalar_t* dh_dir;         // (B, H) every other path to h_t (zoneout's d h, frozen steps)
};

// The backward of step t for row b: dL/dh_t -> dxp_t, du_t, and dh_dir for step t - 1.
template <typename scalar_t>
void backward_row(const Rnn<scalar_t>& c, const Gradients<scalar_t>& d, int64_t t, int64_t b,
                  const scalar_t* u, const scalar_t* h_tilde, const scalar_t* stats) {
  using V = Vec<scalar_t>;
  const int64_t H = c.H, row = t * c.B + b;
  scalar_t* rec = d.dh_rec + b * H;
  scalar_t* dir = d.dh_dir + b * H;
  auto dh_t = [&](int64_t j, int64_t k) {                  // dL/dh_t, but for the output y_t
    const V through_W = V::loadu(rec + j, k);
    return (c.mask ? through_W * V::loadu(c.mask + b * H + j, k) : through_W) + V::loadu(dir + j, k);
  };
  if (!c.valid(t, b)) {                                    // frozen: the gradient passes to h_{t-1} as it is
    for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) { dh_t(j, k).store(dir + j, k); });
    for (scalar_t* buffer : {d.dxp, d.du}) std::fill(buffer + row * H, buffer + (row + 1) * H, scalar_t(0));
    return;
  }
  const scalar_t* v = u + row * H;
  const scalar_t mean = c.gamma ? stats[2 * row] : 0, rstd = c.gamma ? stats[2 * row + 1] : 1;
  scalar_t* dp = d.dxp + row * H;
  for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
    const V dh = dh_t(j, k) + V::loadu(d.dy + row * H + j, k);
    const V keep = c.keep(row, j, k);
    const V dh_tilde = dh - keep * dh;                     // (1 - d) dh
    c.activation_backward(dh_tilde, V::loadu(h_tilde + row * H + j, k)).store(dp + j, k);
    (keep * dh).store(dir + j, k);                         // through zoneout's d h
  });
  if (!c.gamma) return;                                    // du = dhp (d.du aliases d.dxp)
  // LN backward: du = (1 / sigma) (d^ - mean(d^) - x^ mean(d^ x^)), d^ = dhp gamma, x^ = (u - mean) / sigma
  auto x_hat = [&](int64_t j, int64_t k) { return (V::loadu(v + j, k) - V(mean)) * V(rstd); };
  auto d_hat = [&](int64_t j, int64_t k) { return V::loadu(dp + j, k) * V::loadu(c.gamma + j, k); };
  const scalar_t mean_d = sum_lanes<scalar_t>(H, d_hat) / H;
  const scalar_t mean_dx = sum_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
    return d_hat(j, k) * x_hat(j, k);
  }) / H;
  scalar_t* sum = d.gamma_sums->template mine<scalar_t>();   // this thread's partial dL/dgamma
  for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
    (V(rstd) * (d_hat(j, k) - V(mean_d) - x_hat(j, k) * V(mean_dx))).store(d.du + row * H + j, k);
    (V::loadu(sum + j, k) + V::loadu(dp + j, k) * x_hat(j, k)).store(sum + j, k);
  });
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> rnn_backward(
    const Tensor& dy_, const Tensor& dh_n, const Tensor& W_hh, const OptionalTensor& b_hh,
    const OptionalTensor& ln_gamma, const OptionalTensor& ln_beta, const OptionalTensor& recurrent_mask,
    const OptionalTensor& zoneout_mask, double zoneout_p, const OptionalTensor& lengths, bool relu,
    const Tensor& hs, const Tensor& u, const Tensor& h_tilde, const Tensor& stats) {
  TORCH_CHECK(dy_.dim() == 3, "dy: expected (T, B, H), got ", dy_.sizes());
  const Inputs in = check_inputs(GATES, dy_.size(0), dh_n, W_hh, b_hh, ln_gamma, ln_beta, recurrent_mask,
                                 zoneout_mask, zoneout_p, lengths);
  const int64_t T = in.T, B = in.B, H = in.H;
  const Tensor dy = checked(dy_, {T, B, H}, "dy", dh_n).contiguous();
  checked(hs, {T + 1, B, H}, "hs", dy);
  checked(u, {T, B, H}, "u", dy);
  checked(h_tilde, {T, B, H}, "h_tilde", dy);
  Tensor dxp = dy.new_empty({T, B, H});
  Tensor du = in.gamma.defined() ? dy.new_empty({T, B, H}) : dxp;
  const PartialSums gamma_sums(in.gamma.defined() ? H : 0, dy.options());
  Tensor dh_rec = dy.new_zeros({B, H}), dh_dir = dh_n.contiguous().clone();
  AT_DISPATCH_FLOATING_TYPES(dy.scalar_type(), "rnn_backward", [&] {
    const Rnn<scalar_t> c(in, relu);
    const Gradients<scalar_t> d{dy.const_data_ptr<scalar_t>(), dxp.mutable_data_ptr<scalar_t>(),
                                du.mutable_data_ptr<scalar_t>(), &gamma_sums,
                                dh_rec.mutable_data_ptr<scalar_t>(), dh_dir.mutable_data_ptr<scalar_t>()};
    const Tensor u_ = u.contiguous(), h_tilde_ = h_tilde.contiguous(), stats_ = stats.contiguous();
    const Gemm<scalar_t> gemm(in.W, B);
    for (int64_t t = T - 1; t >= 0; --t) {
      for_rows(B, H, [&](int64_t b) {
        backward_row(c, d, t, b, u_.const_data_ptr<scalar_t>(), h_tilde_.const_data_ptr<scalar_t>(),
                     pointer<scalar_t>(stats_));
      });
      gemm(d.du + t * B * H, d.dh_rec);    // du_t W_hh: to h_{t-1} * m
    }
  });
  const Tensor h = hs.narrow(0, 0, T).reshape({T * B, H});              // h_0 ... h_{T-1}
  const Tensor h_in = in.mask.defined() ? h * in.mask.repeat({T, 1}) : h;  // (T * B, H): what met W_hh
  Tensor dh0 = (in.mask.defined() ? dh_rec * in.mask : dh_rec) + dh_dir;
  Tensor dW = product(du.view({T * B, H}).t(), h_in).to(in.W.scalar_type());   // (H, H), one GEMM, all steps
  Tensor dgamma = in.gamma.defined() ? gamma_sums.total() : dy.new_empty({0});
  return {dxp, dh0, dW, dxp.sum({0, 1}), dgamma};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("rnn_forward(Tensor xp, Tensor h0, Tensor W_hh, Tensor? b_hh, Tensor? ln_gamma, Tensor? ln_beta, "
        "Tensor? recurrent_mask, Tensor? zoneout_mask, float zoneout_p, Tensor? lengths, bool relu) "
        "-> (Tensor y, Tensor h_n, Tensor hs, Tensor u, Tensor h_tilde, Tensor stats)");
  m.def("rnn_backward(Tensor dy, Tensor dh_n, Tensor W_hh, Tensor? b_hh, Tensor? ln_gamma, Tensor? ln_beta, "
        "Tensor? recurrent_mask, Tensor? zoneout_mask, float zoneout_p, Tensor? lengths, bool relu, "
        "Tensor hs, Tensor u, Tensor h_tilde, Tensor stats) "
        "-> (Tensor dxp, Tensor dh0, Tensor dW_hh, Tensor dbias, Tensor dgamma)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("rnn_forward", &rnn_forward);
  m.impl("rnn_backward", &rnn_backward);
}
