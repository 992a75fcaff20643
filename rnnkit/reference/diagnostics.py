"""How gradients flow back through time: the vanishing-gradient picture, measured on the reference layers.

With the loss on the last output only, dL/dh_t is the product of T-1-t step Jacobians,

    dL/dh_t = dL/dh_{T-1} * prod_{s=t+1}^{T-1} dh_s/dh_{s-1},

and for a tanh RNN each factor W_hh^T diag(1 - h_s^2) has norm below one at a typical initialisation, so
the norm decays geometrically in T-1-t (Bengio et al. 1994; Pascanu et al. 2013). An LSTM's cell path
multiplies by the forget gate instead (dc_{s-1} = f_s dc_s), and a GRU's carries h through z_s * h, so the
same gradient fades more slowly.

    python -m rnnkit.reference.diagnostics      # prints a table for RNN, GRU and LSTM
"""

from __future__ import annotations

import numpy as np

from .layers import GRU, LSTM, RNN

__all__ = ["KINDS", "gradient_flow", "hidden_grad_norms"]

KINDS = ("RNN", "RNN_RELU", "GRU", "LSTM")


def hidden_grad_norms(layer, suffix: str | None = None) -> np.ndarray:
    """||dL/dh_t|| (Frobenius norm over the batch and hidden units) for every t, after `layer.backward`.

    Args:
        layer: a reference layer on which `backward` has run.
        suffix: which layer-direction, e.g. "_l0" or "_l1_reverse"; None means the last layer's forward
            direction ("_l{num_layers - 1}").

    Returns:
        (T,) norms, indexed by time step t (not by processing order).
    """
    if suffix is None:
        suffix = f"_l{layer.num_layers - 1}"
    if not layer.hidden_grads:
        raise RuntimeError("hidden_grad_norms() needs a backward() first")
    if suffix not in layer.hidden_grads:
        raise ValueError(f"suffix must be one of {sorted(layer.hidden_grads)}, got {suffix!r}")
    dh = layer.hidden_grads[suffix]  # (T, B, H)
    return np.sqrt((dh * dh).sum(axis=(1, 2)))


def gradient_flow(
    kind: str,
    seq_len: int = 50,
    hidden_size: int = 32,
    input_size: int = 8,
    batch_size: int = 16,
    seed: int = 0,
    forget_bias: float = 0.0,
    weight_scale: float = 1.0,
) -> np.ndarray:
    """||dL/dh_t|| for t = 0..T-1 of a freshly initialised single-layer network, loss on the last output only.

    The network has torch's default initialisation U(-1/sqrt(H), 1/sqrt(H)); the inputs are N(0, 1); the loss
    is L = sum(h_{T-1} * R) with R ~ N(0, 1), so dL/dh_{T-1} = R and every earlier dL/dh_t is backpropagated.

    Args:
        kind: "RNN" (tanh), "RNN_RELU", "GRU" or "LSTM".
        seq_len, hidden_size, input_size, batch_size: the sizes T, H, I, B.
        seed: seeds the weights, the inputs and R.
        forget_bias: added to the LSTM forget gate's bias (Gers et al. 2000; Jozefowicz et al. 2015 suggest
            1), which pushes f towards 1 and lets the cell path carry the gradient further.
        weight_scale: multiplies the recurrent weights W_hh after initialisation; each step's Jacobian
            carries W_hh^T, so a scale above 1 can make the RNN's gradient grow instead of fade.

    Returns:
        (T,) gradient norms; entry T-1 is ||R||.

    Example:
        >>> norms = gradient_flow("RNN", seq_len=20)
        >>> bool(norms[0] < 1e-3 * norms[-1])
        True
    """
    if forget_bias and kind != "LSTM":
        raise ValueError(f"forget_bias applies to kind 'LSTM' only, got kind {kind!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if not np.isfinite(weight_scale):
        raise ValueError(f"weight_scale must be finite, got {weight_scale!r}")
    if kind == "GRU":
        layer = GRU(input_size, hidden_size, seed=seed)
    elif kind == "LSTM":
        layer = LSTM(input_size, hidden_size, seed=seed)
        layer.params["bias_ih_l0"][hidden_size : 2 * hidden_size] += forget_bias  # gate order i, f, g, o
    else:
        layer = RNN(input_size, hidden_size, nonlinearity="relu" if kind == "RNN_RELU" else "tanh", seed=seed)
    layer.params["weight_hh_l0"] *= weight_scale
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(seq_len, batch_size, input_size))  # (T, B, I)
    output, _ = layer.forward(x)
    d_output = np.zeros_like(output)  # (T, B, H)
    d_output[-1] = rng.normal(size=output.shape[1:])  # the loss sees the last output only
    layer.backward(d_output)
    return hidden_grad_norms(layer)


def main(seq_len: int = 50, hidden_size: int = 32) -> None:
    """Print ||dL/dh_t|| / ||dL/dh_{T-1}|| every few steps for each kind."""
    flows = {k: gradient_flow(k, seq_len, hidden_size) for k in ("RNN", "GRU", "LSTM")}
    flows["LSTM b_f=1"] = gradient_flow("LSTM", seq_len, hidden_size, forget_bias=1.0)
    kinds = list(flows)
    print(f"||dL/dh_t|| / ||dL/dh_T-1||, loss on the last of T={seq_len} outputs, H={hidden_size}")
    print("(LSTM b_f=1: the same LSTM with 1 added to its forget-gate bias)")
    print(f"{'T-1-t':>6}" + "".join(f"{k:>12}" for k in kinds))
    for back in [*range(0, seq_len, 5), seq_len - 1] if seq_len > 5 else range(seq_len):
        t = seq_len - 1 - back
        print(f"{back:>6}" + "".join(f"{flows[k][t] / flows[k][-1]:>12.3e}" for k in kinds))


if __name__ == "__main__":
    main()
