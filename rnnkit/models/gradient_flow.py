"""Gradient norm per time step of a trained model: vanishing gradients made visible.

Feed a window of T tokens one step at a time through a model's `step`, keep each hidden state h_t, and
backpropagate the loss at the *last* step only. Then

    ||dL_T / dh_t||,  t = 1..T

shows how much of the final error signal reaches step t. For a tanh RNN it decays roughly geometrically with
T - t (Bengio et al. 1994; Pascanu et al. 2013); the gated LSTM and GRU keep it alive far longer
(Hochreiter & Schmidhuber 1997).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

__all__ = ["gradient_norms_through_time", "plot_gradient_norms"]


def gradient_norms_through_time(
    model: torch.nn.Module, tokens: torch.Tensor, target: torch.Tensor
) -> torch.Tensor:
    """||dL_T / dh_t|| for t = 0..T-2, averaged over the batch, with L_T the loss of the last step only.

    The state h_t of every step but the last is handed to the next step, so its gradient is exactly the part
    of the error signal that flowed back through time (the last step's state feeds nothing; its output does).

    Args:
        model: any model with `step(token (B,), state) -> (logits (B, V), state)`; the state is h (L, B, H) or
            a tuple whose first element is h (LSTM: (h, c)); the top layer's h is used.
        tokens: (B, T) long inputs.
        target: (B,) long, the token that should follow tokens[:, -1].
    Returns:
        (T - 1,) float64 tensor of gradient norms; entry t is T - 1 - t steps back from the loss.
    """
    if tokens.dim() != 2 or target.shape != tokens.shape[:1]:
        raise ValueError(
            f"expected tokens (B, T) and target (B,), got {tuple(tokens.shape)} and {tuple(target.shape)}"
        )
    was_training = model.training
    model.eval()  # no dropout: the gradient path should be the model's own
    state, hiddens = None, []
    with torch.enable_grad():
        for t in range(tokens.shape[1]):
            logits, state = model.step(tokens[:, t], state)  # (B, V)
            h = state[0] if isinstance(state, (tuple, list)) else state  # (L, B, H)
            h.retain_grad()
            hiddens.append(h)
        loss = F.cross_entropy(logits, target)
        model.zero_grad(set_to_none=True)
        loss.backward()
    model.train(was_training)
    norms = [h.grad[-1].double().norm(dim=-1).mean() for h in hiddens[:-1]]  # top layer, (B, H) -> scalar
    return torch.stack(norms)


def plot_gradient_norms(norms: dict[str, torch.Tensor], out_png: str | Path, title: str = "") -> Path:
    """Log-scale ||dL_T/dh_t|| against steps back from the loss, one line per model (e.g. rnn, gru, lstm)."""
    from rnnkit.train.plots import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in norms.items():
        values = torch.as_tensor(values, dtype=torch.float64)
        steps_back = list(range(len(values), 0, -1))
        floor = [max(float(v), 1e-30) for v in values]  # log axis: an exact 0 would vanish from the plot
        ax.semilogy(steps_back, floor, label=name)
    ax.set_xlabel("steps back from the loss, T - t")
    ax.set_ylabel("||dL_T / dh_t||")
    ax.set_title(title or "gradient norm through time")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return out_png
