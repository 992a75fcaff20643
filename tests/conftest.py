"""Shared oracle for the reference engine: the same layer in torch.nn (float64), run on the same inputs.

`compare_with_torch(ref, x, ...)` is the one helper every equality test uses: it copies the weights of a
`rnnkit.reference` layer into its torch.nn twin, runs both (variable lengths through pack_padded_sequence with
enforce_sorted=False), backpropagates the same random loss

    L = sum(output * R) + sum(h_n * S) (+ sum(c_n * S_c) for LSTM)

and returns the relative error of the output, the final state(s) and every gradient (parameters, input, h0,
c0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

TORCH_CLASS = {"RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}


def relative_error(ours, theirs) -> float:
    """max |ours - theirs| / max |theirs| (absolute when theirs is all zeros)."""
    ours = np.asarray(ours, dtype=np.float64)
    theirs = (
        theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs, dtype=np.float64)
    )
    assert ours.shape == theirs.shape, f"shape {ours.shape} != torch's {theirs.shape}"
    scale = np.abs(theirs).max() if theirs.size else 0.0
    return float(np.abs(ours - theirs).max() / (scale if scale > 0 else 1.0)) if theirs.size else 0.0


def torch_twin(ref) -> torch.nn.Module:
    """The torch.nn layer with the configuration and (a float64 copy of) the weights of the layer `ref`."""
    kwargs = dict(
        num_layers=ref.num_layers,
        bias=ref.bias,
        batch_first=ref.batch_first,
        bidirectional=ref.bidirectional,
        dtype=torch.float64,
    )
    if ref.mode.startswith("RNN"):
        kwargs["nonlinearity"] = ref.nonlinearity
    module = TORCH_CLASS[ref.mode](ref.input_size, ref.hidden_size, **kwargs)
    module.load_state_dict({k: torch.tensor(v) for k, v in ref.state_dict().items()})
    return module


def run_torch(module, x, hx=None, lengths=None):
    """torch forward on a padded batch; with lengths, through pack_padded_sequence(enforce_sorted=False)."""
    if lengths is None:
        return module(x, hx)
    T = x.shape[1] if module.batch_first else x.shape[0]
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, torch.as_tensor(lengths), batch_first=module.batch_first, enforce_sorted=False
    )
    packed_out, final = module(packed, hx)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(
        packed_out, batch_first=module.batch_first, total_length=T
    )
    return out, final


def compare_with_torch(ref, x, hx=None, lengths=None, grad_output=True, grad_state=True, seed=0):
    """Run `ref` and its torch twin on the same input; return {quantity: relative error}.

    Args:
        ref: a rnnkit.reference layer (float64).
        x: input array, shaped as ref expects; hx: initial state(s) or None (both sides then use zeros).
        lengths: per-sequence lengths or None.
        grad_output, grad_state: whether the random loss includes the output term / the final-state terms.
        seed: seeds R, S, S_c.
    """
    rng = np.random.default_rng(seed)
    is_lstm = ref.cell.num_states == 2
    out, final = ref.forward(x, hx, lengths)
    finals = final if is_lstm else (final,)
    R = rng.normal(size=out.shape) if grad_output else np.zeros(out.shape)
    S = [rng.normal(size=f.shape) if grad_state else None for f in finals]
    grads = ref.backward(R, *S)

    module = torch_twin(ref)
    xt = torch.tensor(x, requires_grad=True)
    hxt = None
    if hx is not None:
        hxt = (
            tuple(torch.tensor(h, requires_grad=True) for h in hx)
            if is_lstm
            else torch.tensor(hx, requires_grad=True)
        )
    out_t, final_t = run_torch(module, xt, hxt, lengths)
    finals_t = final_t if is_lstm else (final_t,)
    loss = (out_t * torch.tensor(R)).sum()
    for f_t, s in zip(finals_t, S, strict=True):
        if s is not None:
            loss = loss + (f_t * torch.tensor(s)).sum()
    loss.backward()

    errors = {"output": relative_error(out, out_t)}
    for name, f, f_t in zip(("h_n", "c_n"), finals, finals_t, strict=False):
        errors[name] = relative_error(f, f_t)
    for name, p in module.named_parameters():
        errors[name] = relative_error(grads[name], p.grad)
    errors["input"] = relative_error(grads["input"], xt.grad)
    if hx is not None:
        for name, h in zip(("h0", "c0"), hxt if is_lstm else (hxt,), strict=False):
            errors[name] = relative_error(grads[name], h.grad)
    assert set(grads) == {n for n, _ in module.named_parameters()} | {"input", "h0"} | (
        {"c0"} if is_lstm else set()
    )
    return errors


@pytest.fixture
def torch_oracle():
    """The helper `compare_with_torch`, as a fixture for any test module."""
    return compare_with_torch


@pytest.fixture
def torch_float64():
    """Run a test with torch's default dtype float64, restored afterwards (other tests keep theirs)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)
