"""A recurrent language model: embedding -> stacked RNN/LSTM/GRU -> linear decoder over the vocabulary.

    e_t = E[x_t]                                  # (B, E)   token embedding
    h_t, state_t = RNN(dropout(e_t), state_{t-1}) # (B, H)   any cell: tanh RNN, LSTM, GRU
    logits_t = W_dec dropout(h_t) + b_dec         # (B, V)
    loss = mean_t,b  -log softmax(logits_t)[x_{t+1}]   (cross-entropy in nats)

With `tie_weights` the decoder reuses the embedding matrix, W_dec = E (Press & Wolf 2017, Inan et al. 2017),
which needs embedding_size == hidden_size. Truncated BPTT: the caller carries `state` from one window of
the stream to the next and cuts the graph with `detach_state` (Williams & Peng 1990).

    >>> import torch
    >>> model = LanguageModel(LanguageModelConfig(vocab_size=11, embedding_size=8, hidden_size=8))
    >>> tokens = torch.randint(0, 11, (2, 5))                      # (B, T)
    >>> logits, state, loss = model(tokens, targets=tokens)
    >>> logits.shape, state[0].shape
    (torch.Size([2, 5, 11]), torch.Size([2, 2, 8]))
    >>> next_logits, state = model.step(tokens[:, -1], state)     # (B, V), O(1) per token
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit import nn as layers

__all__ = ["LanguageModelConfig", "LanguageModel", "make_recurrent", "detach_state", "language_model_metrics"]

CELLS = ("rnn", "lstm", "gru")


@dataclass(frozen=True)
class LanguageModelConfig:
    """Sizes and regularisation of a `LanguageModel`.

    Args:
        vocab_size: number of tokens V; 0 in a preset means "take it from the vocabulary built from the data".
        embedding_size: E, width of the token embedding.
        hidden_size: H, width of each recurrent layer.
        num_layers: L, stacked recurrent layers.
        cell: "rnn" (tanh), "lstm" or "gru".
        dropout: dropout probability on the embedding, between layers and before the decoder.
        tie_weights: share the embedding matrix with the decoder (needs embedding_size == hidden_size).
    """

    vocab_size: int = 0
    embedding_size: int = 128
    hidden_size: int = 256
    num_layers: int = 2
    cell: str = "lstm"
    dropout: float = 0.0
    tie_weights: bool = False

    def __post_init__(self):
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers"):
            value, low = getattr(self, name), 0 if name == "vocab_size" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"model.{name} must be an integer >= {low}, got {value!r}")
        if self.cell not in CELLS:
            raise ValueError(f"model.cell must be one of {CELLS}, got {self.cell!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if self.tie_weights and self.embedding_size != self.hidden_size:
            raise ValueError(
                "model.tie_weights needs embedding_size == hidden_size, "
                f"got embedding_size={self.embedding_size}, hidden_size={self.hidden_size}"
            )


def make_recurrent(
    cell: str, input_size: int, hidden_size: int, num_layers: int, dropout: float
) -> nn.Module:
    """The one place that picks the recurrent layer: rnnkit.nn's drop-in torch.nn layers (batch_first)."""
    layer_class = {"rnn": layers.RNN, "lstm": layers.LSTM, "gru": layers.GRU}[cell]
    return layer_class(
        input_size,
        hidden_size,
        num_layers=num_layers,
        dropout=dropout if num_layers > 1 else 0.0,
        batch_first=True,
    )


def detach_state(state):
    """Cut the autograd graph behind a recurrent state (tensor, tuple/list, None): truncated BPTT."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return state.detach()
    return type(state)(detach_state(s) for s in state)


def language_model_metrics(loss: float) -> dict[str, float]:
    """Mean cross-entropy in nats -> {loss (nats), bpc (bits per token: loss / ln 2), ppl (exp(loss))}."""
    return {"loss": loss, "bpc": loss / math.log(2.0), "ppl": math.exp(min(loss, 700.0))}


class LanguageModel(nn.Module):
    """Next-token model over a vocabulary; see the module docstring for the equations."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError(f"model.vocab_size must be >= 1 to build a model, got {config.vocab_size}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = make_recurrent(
            config.cell, config.embedding_size, config.hidden_size, config.num_layers, config.dropout
        )
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight  # W_dec = E, (V, H) with H == E

    def init_state(self, batch_size: int):
        """Zero state for `batch_size` sequences: (h, c) for LSTM, h otherwise; each (L, B, H)."""
        weight = self.decoder.weight
        h = weight.new_zeros(self.config.num_layers, batch_size, self.config.hidden_size)  # (L, B, H)
        return (h, torch.zeros_like(h)) if self.config.cell == "lstm" else h

    def forward(self, tokens: torch.Tensor, state=None, targets: torch.Tensor | None = None):
        """Run over a window of tokens.

        Args:
            tokens: (B, T) long token ids.
            state: the state returned for the previous window, or None for zeros.
            targets: optional (B, T) long next-token ids.
        Returns:
            (logits (B, T, V), state), or (logits, state, loss) when targets are given; loss is the mean
            cross-entropy in nats.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        if state is not None:  # under autocast the layer returns a bf16/fp16 state; it re-enters in x's dtype
            state = state.to(x.dtype) if torch.is_tensor(state) else tuple(s.to(x.dtype) for s in state)
        out, state = self.rnn(x, state)  # (B, T, H)
        logits = self.decoder(self.dropout(out))  # (B, T, V)
        if targets is None:
            return logits, state
        if targets.shape != tokens.shape:
            raise ValueError(
                f"targets must have the shape of tokens {tuple(tokens.shape)}, got {tuple(targets.shape)}"
            )
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
        )  # mean over B*T, nats
        return logits, state, loss

    def step(self, token: torch.Tensor, state=None):
        """One token per sequence, O(1): token (B,) long -> (logits (B, V), state)."""
        if token.dim() != 1:
            raise ValueError(f"token must have shape (B,), got {tuple(token.shape)}")
        logits, state = self.forward(token[:, None], state)  # (B, 1, V)
        return logits[:, 0], state
