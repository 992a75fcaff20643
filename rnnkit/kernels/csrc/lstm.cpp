// The fused LSTM of one layer-direction over the whole sequence, forward and hand-written backward (BPTT).
//
// The C++ twin of kernels/scan.py running nn/cells.lstm_step, time-major, behind the boundary of
// kernels/__init__.py. Per step t (the equations of docs/variants.md; gate order i, f, g, o as torch):
//
//     u  = (h_{t-1} * m) W_hh^T                     (B, 4H)  one GEMM; m: recurrent dropout's mask
//     a  = xp_t + LN_hh(u) + b_hh                   (B, 4H)  LN_hh only with layer norm
//     i, f, o = sigma(a_i, a_f, a_o); g = tanh(a_g)
//     c~ = f c_{t-1} + i g                          (B, H)
//     r  = o tanh(LN_c(c~))                         (B, H)   LN_c only with layer norm
//     h~ = r W_hr^T                                 (B, P)   a GEMM with a projection, else h~ = r (P = H)
//     h_t = d_h h_{t-1} + (1 - d_h) h~; c_t = d_c c_{t-1} + (1 - d_c) c~      zoneout, d: mask or p
//     y_t = h_t; past a sequence's length (t >= lengths[b]) its state is frozen and y_t = 0
//
// The forward runs the whole loop in one team of threads, each owning some hidden units: its columns of
// the recurrent GEMM and their pointwise step in registers (see `forward`). The backward runs the same
// steps in reverse: per step one fused pass, one GEMM for dL/dh_{t-1} through W_hh (and one through W_hr),
// and every weight gradient as one GEMM over all T * B rows after the loop, from the (T, B, .) buffers the
// forward saved. Padded rows are never computed on: their saved values are zeros, their gradients exact
// zeros, so NaN in padding reaches no result and no gradient.
//
// float64, float32, and bfloat16 weights with everything else float32 (kernels/lstm.py casts a bfloat16
// layer's inputs): the forward widens bfloat16 weights to float32 once per call (its panels), the
// backward's per-step GEMMs run in bfloat16 (`Gemm`); the pointwise math is float32.

#include "common.h"

namespace {

// dL/dv of v -> x-hat * gamma + beta, from dL/d(output) `d` (n,), x-hat and rstd, written into out:
// rstd * (d gamma - mean(d gamma) - x-hat mean(d gamma x-hat)).
template <typename scalar_t>
inline void normalise_backward(scalar_t* out, const scalar_t* d, const scalar_t* xhat, const scalar_t* gamma,
                               scalar_t rstd, int64_t n) {
  using V = Vec<scalar_t>;
  const scalar_t mean_dg = sum_lanes<scalar_t>(n, [&](int64_t j, int64_t k) {
                             return V::loadu(d + j, k) * V::loadu(gamma + j, k);
                           }) / n;
  const scalar_t mean_dgx = sum_lanes<scalar_t>(n, [&](int64_t j, int64_t k) {
                              return V::loadu(d + j, k) * V::loadu(gamma + j, k) * V::loadu(xhat + j, k);
                            }) / n;
  for_lanes<scalar_t>(n, [&](int64_t j, int64_t k) {
    const V dg = V::loadu(d + j, k) * V::loadu(gamma + j, k);
    (V(rstd) * (dg - V(mean_dg) - V::loadu(xhat + j, k) * V(mean_dgx))).store(out + j, k);
  });
}

template <typename scalar_t>
inline const scalar_t* ptr(const OptionalTensor& t) {
  return t.has_value() && t->defined() ? t->const_data_ptr<scalar_t>() : nullptr;
}

inline bool given(const OptionalTensor& t) { return t.has_value() && t->defined(); }

inline Tensor contiguous(const OptionalTensor& t) { return given(t) ? t->contiguous() : Tensor(); }

// The zoneout weight d of row b at step t for a (T, B, n) mask, else the scalar p (0 = off).
template <typename scalar_t>
struct Zoneout {
  const scalar_t* mask;   // (T, B, n) or nullptr
  scalar_t p;
  int64_t B, n;
  bool on() const { return mask != nullptr || p != 0; }
  Vec<scalar_t> at(int64_t t, int64_t b, int64_t j, int64_t k) const {
    return mask ? Vec<scalar_t>::loadu(mask + (t * B + b) * n + j, k) : Vec<scalar_t>(p);
  }
};

// ------------------------------------------------------------------------------------------- forward

using ForwardResult = std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor,
                                 Tensor, Tensor, Tensor, Tensor>;

void check_shapes(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                  const OptionalTensor& w_hr) {
  TORCH_CHECK(xp.dim() == 3 && xp.size(2) % 4 == 0, "lstm_forward: xp must be (T, B, 4H), got ", xp.sizes());
  const int64_t B = xp.size(1), H = xp.size(2) / 4, P = h0.size(-1);
  TORCH_CHECK(h0.dim() == 2 && h0.size(0) == B, "lstm_forward: h0 must be (", B, ", P), got ", h0.sizes());
  TORCH_CHECK(c0.dim() == 2 && c0.size(0) == B && c0.size(1) == H, "lstm_forward: c0 must be (", B, ", ", H,
              "), got ", c0.sizes());
  TORCH_CHECK(w_hh.dim() == 2 && w_hh.size(0) == 4 * H && w_hh.size(1) == P, "lstm_forward: W_hh must be (",
              4 * H, ", ", P, "), got ", w_hh.sizes());
  const bool low = w_hh.scalar_type() == at::kBFloat16;   // bfloat16 weights: float32 for everything else
  TORCH_CHECK(w_hh.scalar_type() == xp.scalar_type() || (low && xp.scalar_type() == at::kFloat),
              "lstm_forward: W_hh must be ", xp.scalar_type(), " (or bfloat16 with float32 xp), got ",
              w_hh.scalar_type());
  TORCH_CHECK(!given(w_hr) || w_hr->scalar_type() == w_hh.scalar_type(), "lstm_forward: W_hr must be ",
              w_hh.scalar_type(), " as W_hh, got ", given(w_hr) ? w_hr->scalar_type() : w_hh.scalar_type());
  TORCH_CHECK(given(w_hr) ? (w_hr->size(0) == P && w_hr->size(1) == H) : P == H,
              "lstm_forward: W_hr must be (", P, ", ", H, ")",
              given(w_hr) ? ", got " : " when h0 is not (B, H)",
              given(w_hr) ? w_hr->sizes() : h0.sizes());
}

// One team of threads (common.h `Team`) runs the whole loop. Thread i owns a range of hidden units, in
// blocks of one vector, for all four gates (and, with a projection, a range of h's P units): each step it
// computes its columns of u = (h * m) W_hh^T straight from the weight panel (common.h `Panel`, laid out
// once per call by the thread that reads it), four gates of one vector of units per block product, and
// runs the pointwise step on them while they are in registers. With layer norm a step needs whole rows
// of u (LN_hh) and of c~ (LN_c): the threads store their columns of u, meet at a barrier, and each then
// runs the pointwise step of its own range of batch rows. Then one barrier, and the next step reads the
// whole new h; with a projection one more, for r before h~ = r W_hr^T.
template <typename scalar_t>
ForwardResult forward(const Tensor& xp_, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                      const OptionalTensor& b_hh_, const OptionalTensor& ln_hh_weight_,
                      const OptionalTensor& ln_hh_bias_, const OptionalTensor& ln_c_weight_,
                      const OptionalTensor& ln_c_bias_, const OptionalTensor& w_hr_,
                      const OptionalTensor& recurrent_mask_, const OptionalTensor& zoneout_h_,
                      const OptionalTensor& zoneout_c_, double zoneout_h_p, double zoneout_c_p,
                      const OptionalTensor& lengths_, bool save) {
  using V = Vec<scalar_t>;
  constexpr int64_t W = V::size();
  const Tensor xp = xp_.contiguous();
  const int64_t T = xp.size(0), B = xp.size(1), G = xp.size(2), H = G / 4, P = h0.size(1);
  const Tensor b_hh = contiguous(b_hh_), ln_hh_weight = contiguous(ln_hh_weight_);
  const Tensor ln_hh_bias = contiguous(ln_hh_bias_), ln_c_weight = contiguous(ln_c_weight_);
  const Tensor ln_c_bias = contiguous(ln_c_bias_), recurrent_mask = contiguous(recurrent_mask_);
  const Tensor zoneout_h = contiguous(zoneout_h_), zoneout_c = contiguous(zoneout_c_);
  const Tensor lengths = contiguous(lengths_);
  const bool projected = given(w_hr_), ln_hh = ln_hh_weight.defined(), ln_c = ln_c_weight.defined();
  const bool ln = ln_hh || ln_c;
  Panel<scalar_t, 4> panel_hh(w_hh);                                          // u's gates: K = P
  Panel<scalar_t, 1> panel_hr = projected ? Panel<scalar_t, 1>(*w_hr_) : Panel<scalar_t, 1>();   // K = H
  const int64_t blocks = panel_hh.blocks, out_blocks = projected ? panel_hr.blocks : blocks;
  const int threads = static_cast<int>(std::clamp<int64_t>(at::get_num_threads(), 1, blocks));

  // With `save` (a backward will run) every step's values stay in (T, B, .) buffers; without, one step's
  // (the states and the masked h: two, the old and the new) are reused at every step.
  const int64_t S = save ? T : 1;
  auto options = xp.options();
  auto buffer = [&](bool used, at::IntArrayRef shape) {
    return at::empty(used ? shape : at::IntArrayRef{0}, options);
  };
  Tensor y = at::empty({T, B, P}, options);
  Tensor hs = at::empty({save ? T + 1 : 2, B, P}, options);                   // h_0 ... h_T
  Tensor cs = at::empty({save ? T + 1 : 2, B, H}, options);                   // c_0 ... c_T
  hs[0].copy_(h0);
  cs[0].copy_(c0);
  Tensor gates = at::empty({S, B, G}, options);                               // i, f, g, o (activated)
  Tensor tanh_c = at::empty({S, B, H}, options);                              // tanh(LN_c(c~))
  Tensor h_in = buffer(recurrent_mask.defined(), {save ? T : 2, B, P});       // h_{t-1} * m
  Tensor r = buffer(projected, {S, B, H});                                    // o tanh(LN_c(c~))
  Tensor xhat_hh = buffer(ln_hh, {S, B, G}), rstd_hh = buffer(ln_hh, {S, B});
  Tensor xhat_c = buffer(ln_c, {S, B, H}), rstd_c = buffer(ln_c, {S, B});
  Tensor u_step = buffer(ln, {B, G});                                         // u of one step (LN)

  const scalar_t* xp_p = xp.const_data_ptr<scalar_t>();
  const scalar_t* b_p = ptr<scalar_t>(b_hh);
  const scalar_t* gamma_hh = ptr<scalar_t>(ln_hh_weight);
  const scalar_t* beta_hh = ptr<scalar_t>(ln_hh_bias);
  const scalar_t* gamma_c = ptr<scalar_t>(ln_c_weight);
  const scalar_t* beta_c = ptr<scalar_t>(ln_c_bias);
  const scalar_t* m_p = ptr<scalar_t>(recurrent_mask);
  const int64_t* len = ptr<int64_t>(lengths);
  const Zoneout<scalar_t> zh{ptr<scalar_t>(zoneout_h), scalar_t(zoneout_h_p), B, P};
  const Zoneout<scalar_t> zc{ptr<scalar_t>(zoneout_c), scalar_t(zoneout_c_p), B, H};
  scalar_t *y_p = y.data_ptr<scalar_t>(), *hs_p = hs.data_ptr<scalar_t>(), *cs_p = cs.data_ptr<scalar_t>();
  scalar_t *gates_p = gates.data_ptr<scalar_t>(), *tanh_p = tanh_c.data_ptr<scalar_t>();
  scalar_t *h_in_p = h_in.data_ptr<scalar_t>(), *r_p = r.data_ptr<scalar_t>();
  scalar_t *xhat_hh_p = xhat_hh.data_ptr<scalar_t>(), *rstd_hh_p = rstd_hh.data_ptr<scalar_t>();
  scalar_t *xhat_c_p = xhat_c.data_ptr<scalar_t>(), *rstd_c_p = rstd_c.data_ptr<scalar_t>();
  scalar_t* u = u_step.data_ptr<scalar_t>();                                  // (B, 4H)

#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
  {
    const Team team = Team::here();
    const auto [jb0, jb1] = team.range(blocks);                               // my blocks of hidden units
    const auto [pb0, pb1] = team.range(out_blocks);                           // ... of h's units
    const int64_t j0 = jb0 * W, units = std::min(H, jb1 * W) - j0;            // my units [j0, j0 + units)
    const int64_t q0 = pb0 * W, out_units = std::min(P, pb1 * W) - q0;        // my h units
    const auto [rb0, rb1] = team.range(B);                                    // my rows (layer norm)
    panel_hh.pack(jb0, jb1);
    if (projected) panel_hr.pack(pb0, pb1);
    if (m_p) {                                                                // h_0 * m, my units
      for (int64_t b = 0; b < B; ++b) {
        for_lanes<scalar_t>(out_units, [&](int64_t j, int64_t k) {
          const int64_t o = b * P + q0 + j;
          (V::loadu(hs_p + o, k) * V::loadu(m_p + o, k)).store(h_in_p + o, k);
        });
      }
    }
    Team::barrier();

    for (int64_t t = 0; t < T; ++t) {
      const int64_t row0 = t * B;                                             // (t, 0) in xp and y
      const int64_t saved0 = save ? row0 : 0;                                 // (t, 0) in the saved buffers
      const int64_t old = save ? t : t % 2, now = save ? t + 1 : (t + 1) % 2;  // states at t - 1 and t
      const scalar_t* h_prev = hs_p + old * B * P;                            // (B, P)
      const scalar_t* c_prev = cs_p + old * B * H;                            // (B, H)
      scalar_t* h_next = hs_p + now * B * P;
      scalar_t* c_next = cs_p + now * B * H;
      const scalar_t* h_used = m_p ? h_in_p + (save ? t : t % 2) * B * P : h_prev;   // h_{t-1} * m
      scalar_t* h_in_next = m_p && (!save || t + 1 < T) ? h_in_p + (save ? t + 1 : (t + 1) % 2) * B * P
                                                          : nullptr;
      auto padded = [&](int64_t b) { return len != nullptr && t >= len[b]; };

      // Units [j, j + k) of row b's h_t from h~ (one vector): zoneout, the length mask, y_t, h_t * m.
      auto finish_h = [&](int64_t b, int64_t j, int64_t k, const V& fresh) {
        const bool frozen = padded(b);
        V h = fresh;
        if (frozen || zh.on()) {
          const V h_old = V::loadu(h_prev + b * P + j, k);
          h = frozen ? h_old : fresh + zh.at(t, b, j, k) * (h_old - fresh);
        }
        h.store(h_next + b * P + j, k);
        (frozen ? V(0) : h).store(y_p + (row0 + b) * P + j, k);
        if (h_in_next) (h * V::loadu(m_p + b * P + j, k)).store(h_in_next + b * P + j, k);
      };
      // The rest of a step for units [j, j + k) of row b (one vector; padded rows never get here): `output`
      // from c~ and o: r = o tanh(LN_c(c~)) (LN_c's statistics given), zoneout on c, and without a
      // projection h_t (h~ = r); `cell` from the pre-activations LN_hh(u) (or u): the gates, c~ = f c + i g,
      // then `output` at once, unless LN_c needs all of the row's c~ first.
      auto output = [&](int64_t b, int64_t j, int64_t k, const V& c, const V& o, scalar_t mean, scalar_t rstd) {
        const int64_t row = saved0 + b;
        V v = c;
        if (ln_c) {
          v = (v - V(mean)) * V(rstd);
          v.store(xhat_c_p + row * H + j, k);
          v = v * V::loadu(gamma_c + j, k) + V::loadu(beta_c + j, k);
        }
        const V th = tanh_of(v);
        if (save) th.store(tanh_p + row * H + j, k);
        if (projected) (o * th).store(r_p + row * H + j, k);
        else finish_h(b, j, k, o * th);
        const V kept = zc.on() ? c + zc.at(t, b, j, k) * (V::loadu(c_prev + b * H + j, k) - c) : c;
        kept.store(c_next + b * H + j, k);
      };
      auto cell = [&](int64_t b, int64_t j, int64_t k, const V* pre) {
        const int64_t row = saved0 + b;
        V gate[4];
        for (int v = 0; v < 4; ++v) {
          const int64_t c = v * H + j;
          V a = pre[v] + V::loadu(xp_p + (row0 + b) * G + c, k);
          if (b_p) a = a + V::loadu(b_p + c, k);
          gate[v] = v == 2 ? tanh_of(a) : sigmoid(a);
          if (save || ln_c) gate[v].store(gates_p + row * G + c, k);           // o: read again after LN_c
        }
        const V c = gate[1] * V::loadu(c_prev + b * H + j, k) + gate[0] * gate[2];
        if (ln_c) c.store(c_next + b * H + j, k);                           // c~, for LN_c's statistics
        else output(b, j, k, c, gate[3], 0, 0);
      };

      // 1. My columns of u = (h * m) W_hh^T, four gates of one vector of units per block product, and
      //    without layer norm the rest of the step on them while they are in registers.
      for (int64_t jb = jb0; jb < jb1; ++jb) {
        const int64_t j = jb * W, k = std::min(W, H - j);
        for_block_rows(h_used, B, panel_hh, jb, [&](int64_t b, const V* acc) {
          if (padded(b)) return;
          if (!ln) return cell(b, j, k, acc);
          for (int v = 0; v < 4; ++v) acc[v].store(u + b * G + v * H + j, k);
        });
      }

      // 2. With layer norm, whose statistics need whole rows: once all of u is in, my rows, whole.
      if (ln) {
        Team::barrier();
        for (int64_t b = rb0; b < rb1; ++b) {
          if (padded(b)) continue;
          const int64_t row = saved0 + b;
          const scalar_t* u_row = u + b * G;
          scalar_t mean = 0, rstd = 1;
          if (ln_hh) std::tie(mean, rstd) = layer_norm_stats(u_row, G), rstd_hh_p[row] = rstd;
          for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
            V pre[4];
            for (int v = 0; v < 4; ++v) {
              const int64_t c = v * H + j;
              pre[v] = V::loadu(u_row + c, k);
              if (!ln_hh) continue;
              pre[v] = (pre[v] - V(mean)) * V(rstd);                          // x-hat, kept
              pre[v].store(xhat_hh_p + row * G + c, k);
              pre[v] = pre[v] * V::loadu(gamma_hh + c, k) + V::loadu(beta_hh + c, k);
            }
            cell(b, j, k, pre);
          });
          if (!ln_c) continue;
          std::tie(mean, rstd) = layer_norm_stats(c_next + b * H, H), rstd_c_p[row] = rstd;
          for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
            output(b, j, k, V::loadu(c_next + b * H + j, k), V::loadu(gates_p + row * G + 3 * H + j, k), mean,
                   rstd);
          });
        }
      }

      // 3. A padded row keeps its state (y_t = 0) and saves zeros.
      for (int64_t b = 0; b < B; ++b) {
        if (!padded(b)) continue;
        const int64_t row = saved0 + b;
        std::copy_n(c_prev + b * H + j0, units, c_next + b * H + j0);
        for (int v = 0; v < 4; ++v) std::fill_n(gates_p + row * G + v * H + j0, units, scalar_t(0));
        std::fill_n(tanh_p + row * H + j0, units, scalar_t(0));
        if (ln_hh) {
          for (int v = 0; v < 4; ++v) std::fill_n(xhat_hh_p + row * G + v * H + j0, units, scalar_t(0));
          if (team.id == 0) rstd_hh_p[row] = 0;
        }
        if (ln_c) {
          std::fill_n(xhat_c_p + row * H + j0, units, scalar_t(0));
          if (team.id == 0) rstd_c_p[row] = 0;
        }
        if (projected) std::fill_n(r_p + row * H + j0, units, scalar_t(0));
        else for_lanes<scalar_t>(units, [&](int64_t j, int64_t k) { finish_h(b, j0 + j, k, V(0)); });
      }

      // 4. With a projection: my units of h~ = r W_hr^T once all of r is in, then h_t.
      if (projected) {
        Team::barrier();
        for (int64_t pb = pb0; pb < pb1; ++pb) {
          const int64_t j = pb * W, k = std::min(W, P - j);
          for_block_rows(r_p + saved0 * H, B, panel_hr, pb,
                         [&](int64_t b, const V* acc) { finish_h(b, j, k, acc[0]); });
        }
      }
      Team::barrier();                                                        // h_t whole: the next step
    }
  }
  Tensor h_n = hs[save ? T : T % 2].clone(), c_n = cs[save ? T : T % 2].clone();
  if (!save) {
    Tensor none = at::empty({0}, options);
    return {y, h_n, c_n, none, none, none, none, none, none, none, none, none, none};
  }
  return {y, h_n, c_n, gates, cs, tanh_c, hs, h_in, r, xhat_hh, rstd_hh, xhat_c, rstd_c};
}


// ------------------------------------------------------------------------------------------ backward

using BackwardResult =
    std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>;

// The reverse of `forward`, step by step (rnnkit/reference: VariantCell.step_backward with
// LayerNormLSTMCell.update_backward and LSTM.gates_backward). The running gradients of the state are
// dL/dh_t = dh_gemm * m + dh_direct (+ dL/dy_t), dh_gemm = d_u W_hh from the step after, and dL/dc_t = dc.
template <typename scalar_t>
BackwardResult backward(const Tensor& d_y_, const Tensor& d_h_n, const Tensor& d_c_n, const Tensor& w_hh_,
                        const OptionalTensor& ln_hh_weight_, const OptionalTensor& ln_c_weight_,
                        const OptionalTensor& w_hr_, const OptionalTensor& recurrent_mask_,
                        const OptionalTensor& zoneout_h_, const OptionalTensor& zoneout_c_,
                        double zoneout_h_p, double zoneout_c_p, const OptionalTensor& lengths_,
                        const Tensor& gates,
                        const Tensor& cs, const Tensor& tanh_c, const Tensor& hs, const Tensor& h_in,
                        const Tensor& r, const Tensor& xhat_hh, const Tensor& rstd_hh, const Tensor& xhat_c,
                        const Tensor& rstd_c, bool grad_w_hh, bool grad_w_hr, bool grad_b_hh) {
  using V = Vec<scalar_t>;
  const Tensor d_y = d_y_.contiguous(), w_hh = w_hh_.contiguous();
  const int64_t T = gates.size(0), B = gates.size(1), G = gates.size(2), H = G / 4, P = hs.size(2);
  const Tensor ln_hh_weight = contiguous(ln_hh_weight_), ln_c_weight = contiguous(ln_c_weight_);
  const Tensor recurrent_mask = contiguous(recurrent_mask_), lengths = contiguous(lengths_);
  const Tensor zoneout_h = contiguous(zoneout_h_), zoneout_c = contiguous(zoneout_c_);
  const bool projected = given(w_hr_), ln_hh = ln_hh_weight.defined(), ln_c = ln_c_weight.defined();
  const Tensor w_hr = projected ? w_hr_->contiguous() : Tensor();              // (P, H)
  const Gemm<scalar_t> gemm_hh(w_hh, B), gemm_hr(w_hr, B);

  auto options = gates.options();
  Tensor d_xp = at::empty({T, B, G}, options);                                // dL/da
  Tensor d_u = ln_hh ? at::empty({T, B, G}, options) : d_xp;                  // dL/du, u = (h * m) W_hh^T
  Tensor d_h_tilde = at::empty({projected ? T : 1, B, P}, options);           // dL/dh~ (all steps with W_hr)
  Tensor d_r = at::empty({projected ? B : 0, H}, options);                    // dL/dr = dL/dh~ W_hr
  Tensor d_cn = at::empty({B, H}, options);                                   // dL/dLN_c(c~) of one step
  // The layer norms' weight gradients, sums over all T * B rows (no (T, B, .) products to allocate).
  // Columns: gamma_hh (G), gamma_c, beta_c (H).
  const PartialSums sums((ln_hh ? G : 0) + (ln_c ? 2 * H : 0), options);
  Tensor dh_gemm = at::zeros({B, P}, options), dh_direct = d_h_n.contiguous().clone();
  Tensor dc = d_c_n.contiguous().clone();

  const scalar_t *d_y_p = d_y.const_data_ptr<scalar_t>(), *gates_p = gates.const_data_ptr<scalar_t>();
  const scalar_t *cs_p = cs.const_data_ptr<scalar_t>(), *tanh_p = tanh_c.const_data_ptr<scalar_t>();
  const scalar_t *xhat_hh_p = ptr<scalar_t>(xhat_hh), *rstd_hh_p = ptr<scalar_t>(rstd_hh);
  const scalar_t *xhat_c_p = ptr<scalar_t>(xhat_c), *rstd_c_p = ptr<scalar_t>(rstd_c);
  const scalar_t *gamma_hh = ptr<scalar_t>(ln_hh_weight), *gamma_c = ptr<scalar_t>(ln_c_weight);
  const scalar_t* m_p = ptr<scalar_t>(recurrent_mask);
  const int64_t* len = ptr<int64_t>(lengths);
  const Zoneout<scalar_t> zh{ptr<scalar_t>(zoneout_h), scalar_t(zoneout_h_p), B, P};
  const Zoneout<scalar_t> zc{ptr<scalar_t>(zoneout_c), scalar_t(zoneout_c_p), B, H};
  scalar_t *d_xp_p = d_xp.data_ptr<scalar_t>(), *d_u_p = d_u.data_ptr<scalar_t>();
  scalar_t *d_ht_p = d_h_tilde.data_ptr<scalar_t>(), *d_r_p = projected ? d_r.data_ptr<scalar_t>() : nullptr;
  scalar_t *d_cn_p = d_cn.data_ptr<scalar_t>(), *dh_gemm_p = dh_gemm.data_ptr<scalar_t>();
  scalar_t *dh_direct_p = dh_direct.data_ptr<scalar_t>(), *dc_p = dc.data_ptr<scalar_t>();
  for (int64_t t = T - 1; t >= 0; --t) {
    const int64_t row0 = t * B;
    scalar_t* d_ht = d_ht_p + (projected ? row0 : 0) * P;                     // (B, P)

    // dL/dh_t, then through zoneout h_t = d h_{t-1} + (1 - d) h~: dh~ = (1 - d) dh, dh_{t-1} gets d dh.
    auto state_h = [&](int64_t b) {
      const bool valid = len == nullptr || t < len[b];
      const int64_t o = b * P;
      for_lanes<scalar_t>(P, [&](int64_t j, int64_t k) {
        V dh = V::loadu(dh_gemm_p + o + j, k);
        if (m_p) dh = dh * V::loadu(m_p + o + j, k);
        dh = dh + V::loadu(dh_direct_p + o + j, k);
        if (!valid) {                                                         // frozen: all of it to h_{t-1}
          V(0).store(d_ht + o + j, k);
          dh.store(dh_direct_p + o + j, k);
          return;
        }
        dh = dh + V::loadu(d_y_p + (row0 + b) * P + j, k);
        const V d = zh.on() ? zh.at(t, b, j, k) : V(0);
        (dh - d * dh).store(d_ht + o + j, k);
        (d * dh).store(dh_direct_p + o + j, k);
      });
    };
    // From dL/dr (r = o tanh(LN_c(c~))) and dL/dc_t to dL/da, dL/du and dL/dc_{t-1}.
    auto gates_row = [&](int64_t b, const scalar_t* d_r_row) {
      const int64_t row = row0 + b;
      scalar_t* d_a = d_xp_p + row * G;
      scalar_t* d_u_row = d_u_p + row * G;
      scalar_t* d_cn_row = d_cn_p + b * H;
      if (len != nullptr && t >= len[b]) {                                   // padding: no gradient
        std::fill_n(d_a, G, scalar_t(0));
        if (ln_hh) std::fill_n(d_u_row, G, scalar_t(0));
        return;
      }
      scalar_t* mine = sums.mine<scalar_t>();                                // this thread's partial sums
      scalar_t *sum_gamma_hh = mine, *sum_gamma_c = mine + (ln_hh ? G : 0), *sum_beta_c = sum_gamma_c + H;
      const scalar_t* gate = gates_p + row * G;
      const scalar_t* th = tanh_p + row * H;
      const scalar_t* c_prev = cs_p + row * H;
      scalar_t* dc_row = dc_p + b * H;
      for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {                      // through tanh(.) of h~
        const V tanh_j = V::loadu(th + j, k);
        const V d_cn_j = V::loadu(d_r_row + j, k) * V::loadu(gate + 3 * H + j, k) * (V(1) - tanh_j * tanh_j);
        d_cn_j.store(d_cn_row + j, k);
      });
      const scalar_t* d_c_tilde = d_cn_row;                                   // dL/dc~ through h~
      if (ln_c) {
        PartialSums::add<scalar_t>(sum_gamma_c, d_cn_row, xhat_c_p + row * H, H);
        PartialSums::add<scalar_t>(sum_beta_c, d_cn_row, nullptr, H);
        scalar_t* d_c_ln = d_a;                                              // scratch: d_a's i slice
        normalise_backward(d_c_ln, d_cn_row, xhat_c_p + row * H, gamma_c, rstd_c_p[row], H);
        d_c_tilde = d_c_ln;
      }
      for_lanes<scalar_t>(H, [&](int64_t j, int64_t k) {
        const V i = V::loadu(gate + j, k), f = V::loadu(gate + H + j, k);
        const V g = V::loadu(gate + 2 * H + j, k), o = V::loadu(gate + 3 * H + j, k);
        const V dc_t = V::loadu(dc_row + j, k);
        const V d = zc.on() ? zc.at(t, b, j, k) : V(0);
        const V dc_all = dc_t - d * dc_t + V::loadu(d_c_tilde + j, k);        // dL/dc~: zoneout + h~ paths
        const V d_o = V::loadu(d_r_row + j, k) * V::loadu(th + j, k);
        (dc_all * g * i * (V(1) - i)).store(d_a + j, k);
        (dc_all * V::loadu(c_prev + j, k) * f * (V(1) - f)).store(d_a + H + j, k);
        (dc_all * i * (V(1) - g * g)).store(d_a + 2 * H + j, k);
        (d_o * o * (V(1) - o)).store(d_a + 3 * H + j, k);
        (dc_all * f + d * dc_t).store(dc_row + j, k);                         // dL/dc_{t-1}
      });
      if (ln_hh) {
        PartialSums::add<scalar_t>(sum_gamma_hh, d_a, xhat_hh_p + row * G, G);
        normalise_backward(d_u_row, d_a, xhat_hh_p + row * G, gamma_hh, rstd_hh_p[row], G);
      }
    };

    if (projected) {
      for_rows(B, P, state_h);
      gemm_hr(d_ht, d_r_p);                                                   // dL/dr = dL/dh~ W_hr
      for_rows(B, G, [&](int64_t b) { gates_row(b, d_r_p + b * H); });
    } else {
      for_rows(B, G, [&](int64_t b) {
        state_h(b);
        gates_row(b, d_ht + b * P);
      });
    }
    gemm_hh(d_u_p + row0 * G, dh_gemm_p);                                     // d_u W_hh, into dL/dh_{t-1}
  }
  Tensor d_h0 = dh_direct + (m_p ? dh_gemm * recurrent_mask : dh_gemm);
  Tensor empty = at::empty({0}, options);
  Tensor d_w_hh = at::empty({0}, w_hh.options()), d_b_hh = empty;            // the weights' dtypes
  Tensor d_w_hr = at::empty({0}, (projected ? w_hr : w_hh).options());
  Tensor d_ln_hh_weight = empty, d_ln_hh_bias = empty, d_ln_c_weight = empty, d_ln_c_bias = empty;
  if (grad_w_hh) {                                                            // one GEMM over all T * B rows
    const Tensor h_used = m_p ? h_in : hs.narrow(0, 0, T);
    d_w_hh = product(d_u.view({T * B, G}).t(), h_used.reshape({T * B, P})).to(w_hh.scalar_type());
  }
  if (grad_w_hr) d_w_hr = product(d_h_tilde.view({T * B, P}).t(), r.view({T * B, H})).to(w_hr.scalar_type());
  if (grad_b_hh || ln_hh) d_b_hh = d_xp.sum({0, 1});
  const Tensor sum = sums.total();
  if (ln_hh) {
    d_ln_hh_weight = sum.narrow(0, 0, G).clone();   // outputs never alias
    d_ln_hh_bias = d_b_hh.clone();                                            // hp = LN_hh(u) + b_hh
  }
  if (ln_c) {
    d_ln_c_weight = sum.narrow(0, ln_hh ? G : 0, H).clone();
    d_ln_c_bias = sum.narrow(0, (ln_hh ? G : 0) + H, H).clone();
  }
  if (!grad_b_hh) d_b_hh = empty;
  return {d_xp, d_h0, dc, d_w_hh, d_b_hh, d_ln_hh_weight, d_ln_hh_bias, d_ln_c_weight, d_ln_c_bias, d_w_hr};
}

// ------------------------------------------------------------------------------------------ the ops

ForwardResult lstm_forward(const Tensor& xp, const Tensor& h0, const Tensor& c0, const Tensor& w_hh,
                           const OptionalTensor& b_hh, const OptionalTensor& ln_hh_weight,
                           const OptionalTensor& ln_hh_bias, const OptionalTensor& ln_c_weight,
                           const OptionalTensor& ln_c_bias, const OptionalTensor& w_hr,
                           const OptionalTensor& recurrent_mask, const OptionalTensor& zoneout_h,
                           const OptionalTensor& zoneout_c, double zoneout_h_p, double zoneout_c_p,
                           const OptionalTensor& lengths, bool save) {
  check_shapes(xp, h0, c0, w_hh, w_hr);
  TORCH_CHECK(!given(lengths) || lengths->scalar_type() == at::kLong,
              "lstm_forward: lengths must be int64, got ", lengths->scalar_type());
  return AT_DISPATCH_FLOATING_TYPES(xp.scalar_type(), "lstm_forward", [&] {
    return forward<scalar_t>(xp, h0, c0, w_hh, b_hh, ln_hh_weight, ln_hh_bias, ln_c_weight, ln_c_bias, w_hr,
                             recurrent_mask, zoneout_h, zoneout_c, zoneout_h_p, zoneout_c_p, lengths, save);
  });
}

BackwardResult lstm_backward(const Tensor& d_y, const Tensor& d_h_n, const Tensor& d_c_n, const Tensor& w_hh,
                             const OptionalTensor& ln_hh_weight, const OptionalTensor& ln_c_weight,
                             const OptionalTensor& w_hr, const OptionalTensor& recurrent_mask,
                             const OptionalTensor& zoneout_h, const OptionalTensor& zoneout_c,
                             double zoneout_h_p, double zoneout_c_p, const OptionalTensor& lengths,
                             const Tensor& gates, const Tensor& cs, const Tensor& tanh_c, const Tensor& hs,
                             const Tensor& h_in, const Tensor& r, const Tensor& xhat_hh,
                             const Tensor& rstd_hh, const Tensor& xhat_c, const Tensor& rstd_c,
                             bool grad_w_hh, bool grad_w_hr,
                             bool grad_b_hh) {
  return AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    return backward<scalar_t>(d_y, d_h_n, d_c_n, w_hh, ln_hh_weight, ln_c_weight, w_hr, recurrent_mask,
                              zoneout_h, zoneout_c, zoneout_h_p, zoneout_c_p, lengths, gates, cs, tanh_c, hs,
                              h_in, r, xhat_hh, rstd_hh, xhat_c, rstd_c, grad_w_hh, grad_w_hr, grad_b_hh);
  });
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def(
      "lstm_forward(Tensor xp, Tensor h0, Tensor c0, Tensor w_hh, Tensor? b_hh, Tensor? ln_hh_weight, "
      "Tensor? ln_hh_bias, Tensor? ln_c_weight, Tensor? ln_c_bias, Tensor? w_hr, Tensor? recurrent_mask, "
      "Tensor? zoneout_h, Tensor? zoneout_c, float zoneout_h_p, float zoneout_c_p, Tensor? lengths, "
      "bool save) -> "
      "(Tensor y, Tensor h_n, Tensor c_n, Tensor gates, Tensor cs, Tensor tanh_c, Tensor hs, Tensor h_in, "
      "Tensor r, Tensor xhat_hh, Tensor rstd_hh, Tensor xhat_c, Tensor rstd_c)");
  m.def(
      "lstm_backward(Tensor d_y, Tensor d_h_n, Tensor d_c_n, Tensor w_hh, Tensor? ln_hh_weight, "
      "Tensor? ln_c_weight, Tensor? w_hr, Tensor? recurrent_mask, Tensor? zoneout_h, Tensor? zoneout_c, "
      "float zoneout_h_p, float zoneout_c_p, Tensor? lengths, Tensor gates, Tensor cs, Tensor tanh_c, "
      "Tensor hs, Tensor h_in, Tensor r, Tensor xhat_hh, Tensor rstd_hh, Tensor xhat_c, Tensor rstd_c, "
      "bool grad_w_hh, bool grad_w_hr, bool grad_b_hh) -> (Tensor d_xp, Tensor d_h0, Tensor d_c0, "
      "Tensor d_w_hh, Tensor d_b_hh, Tensor d_ln_hh_weight, Tensor d_ln_hh_bias, Tensor d_ln_c_weight, "
      "Tensor d_ln_c_bias, Tensor d_w_hr)");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("lstm_forward", &lstm_forward);
  m.impl("lstm_backward", &lstm_backward);
}
