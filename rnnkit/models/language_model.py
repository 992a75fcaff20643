"""A recurrent language model: embedding -> recurrent encoder -> linear decoder over the vocabulary.

    e_t = E[x_t]                                  # (B, E)   token embedding
    h_t, state_t = RNN(dropout(e_t), state_{t-1}) # (B, H)   any encoder (models/recurrent.py): rnn, lstm,
                                                  #          gru, mingru, minlstm, with rnnkit.nn's variants
    logits_t = W_dec dropout(h_t) + b_dec         # (B, V)
    loss = mean_t,b  -log softmax(logits_t)[x_{t+1}]   (cross-entropy in nats)

With `tie_weights` the decoder reuses the embedding matrix, W_dec = E (Press & Wolf 2017, Inan et al. 2017),
which needs embedding_size == encoder.hidden_size. A language model reads left to right: the encoder cannot be
bidirectional.

With `adaptive_softmax_cutoffs` [c_1, ..., c_n] the decoder is an adaptive softmax (Grave et al. 2017,
"Efficient softmax approximation for GPUs"; torch.nn.AdaptiveLogSoftmaxWithLoss). The vocabulary is ordered by
falling frequency (rnnkit.data.text.Vocabulary), so the frequent words [0, c_1) form a shortlist in the head,
which also scores one entry per tail cluster [c_i, c_{i+1}); a tail projects h down to H / div^i first:

    z = W_head h + b                                                   # (c_1 + n,) shortlist, clusters
    log p(w | h) = log softmax(z)[w]                                               if w < c_1
    log p(w | h) = log softmax(z)[c_1 + i - 1] + log softmax(U_i V_i h)[w - c_i]   if c_i <= w < c_{i+1}

Training needs only the target's row of one cluster, so the 33k-way softmax of WikiText-2 costs about a
shortlist-sized one; the full (B, T, V) log-probabilities are built only when asked for. With `tie_weights`
the head's shortlist rows are the embedding's rows [0, c_1).

Truncated BPTT: the caller carries `state` from one window of the stream to the next and cuts the graph with
rnnkit.nn.state.detach_state (Williams & Peng 1990).

Model files and run configs written before the encoder section have the flat form (model.cell,
model.hidden_size, model.num_layers); `upgrade_model_config` turns them into today's nested one, with the same
state_dict keys.

    >>> import torch
    >>> encoder = RecurrentConfig(cell="lstm", hidden_size=8, num_layers=2)
    >>> model = LanguageModel(LanguageModelConfig(vocab_size=11, embedding_size=8, encoder=encoder))
    >>> tokens = torch.randint(0, 11, (2, 5))                      # (B, T)
    >>> logits, state, loss = model(tokens, targets=tokens)
    >>> logits.shape, state[0].shape
    (torch.Size([2, 5, 11]), torch.Size([2, 2, 8]))
    >>> next_logits, state = model.step(tokens[:, -1], state)     # (B, V), O(1) per token
    >>> min_gru = LanguageModel(LanguageModelConfig(vocab_size=11, encoder=RecurrentConfig(cell="mingru")))
    >>> min_gru.step(tokens[:, -1])[0].shape                        # every cell steps
    torch.Size([2, 11])
    >>> adaptive = LanguageModel(LanguageModelConfig(vocab_size=50, adaptive_softmax_cutoffs=(10, 30)))
    >>> log_probs, state, loss = adaptive(torch.randint(0, 50, (2, 5)), targets=torch.randint(0, 50, (2, 5)))
    >>> log_probs is None                                           # training: only the targets' rows
    True
    >>> step_log_probs, _ = adaptive.step(tokens[:, -1])           # (B, V) log-probabilities
    >>> torch.allclose(step_log_probs.exp().sum(-1), torch.ones(2))
    True
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.nn.state import tree_map

from .recurrent import RecurrentConfig, init_state, make_encoder

__all__ = [
    "LanguageModelConfig",
    "LanguageModel",
    "TiedShortlistHead",
    "make_decoder",
    "upgrade_model_config",
    "language_model_metrics",
]

# the keys of the flat model section (before `encoder`) that moved into it
_FLAT_ENCODER_KEYS = ("cell", "hidden_size", "num_layers")


@dataclass(frozen=True)
class LanguageModelConfig:
    """Sizes and regularisation of a `LanguageModel`.

    Args:
        vocab_size: number of tokens V; 0 in a preset means "take it from the vocabulary built from the data".
        embedding_size: E, width of the token embedding.
        encoder: the recurrent layer (cell, hidden_size H, num_layers L, between-layer dropout, variants);
            unidirectional.
        dropout: dropout probability on the embedding and before the decoder.
        tie_weights: share the embedding matrix with the decoder (embedding_size == encoder.hidden_size);
            with an adaptive softmax, the embedding rows of the shortlist [0, c_1) are the head's rows.
        adaptive_softmax_cutoffs: increasing token ids c_1 < ... < c_n < vocab_size splitting the vocabulary
            (ordered by frequency) into a shortlist and n tail clusters; () = the full softmax.
        adaptive_softmax_div_value: each tail cluster i projects to H / div_value^i (Grave et al.).
    """

    vocab_size: int = 0
    embedding_size: int = 128
    encoder: RecurrentConfig = field(default_factory=RecurrentConfig)
    dropout: float = 0.0
    tie_weights: bool = False
    adaptive_softmax_cutoffs: tuple[int, ...] = ()
    adaptive_softmax_div_value: float = 4.0

    def __post_init__(self):
        for name in ("vocab_size", "embedding_size"):
            value, low = getattr(self, name), 0 if name == "vocab_size" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"model.{name} must be an integer >= {low}, got {value!r}")
        if not isinstance(self.encoder, RecurrentConfig):
            raise ValueError(f"model.encoder must be a RecurrentConfig, got {self.encoder!r}")
        if self.encoder.bidirectional:
            raise ValueError(
                "model.encoder.bidirectional: a language model predicts the next token from the past only, "
                "expected false, got true"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"model.dropout must be in [0, 1), got {self.dropout!r}")
        if self.tie_weights and self.embedding_size != self.encoder.hidden_size:
            raise ValueError(
                "model.tie_weights needs embedding_size == encoder.hidden_size, "
                f"got embedding_size={self.embedding_size}, encoder.hidden_size={self.encoder.hidden_size}"
            )
        self._check_adaptive_softmax()

    def _check_adaptive_softmax(self):
        cutoffs = self.adaptive_softmax_cutoffs
        if not isinstance(cutoffs, (tuple, list)):
            raise ValueError(f"model.adaptive_softmax_cutoffs must be a list of integers, got {cutoffs!r}")
        object.__setattr__(self, "adaptive_softmax_cutoffs", tuple(cutoffs))  # JSON/YAML give lists
        if any(not isinstance(c, int) or isinstance(c, bool) for c in cutoffs):
            raise ValueError(f"model.adaptive_softmax_cutoffs must be integers, got {list(cutoffs)}")
        bounds = [0, *cutoffs] + ([self.vocab_size] if self.vocab_size else [])
        if any(a >= b for a, b in itertools.pairwise(bounds)):
            raise ValueError(
                "model.adaptive_softmax_cutoffs must increase strictly within (0, vocab_size="
                f"{self.vocab_size or 'from the data'}), got {list(cutoffs)}"
            )
        div = self.adaptive_softmax_div_value
        if not isinstance(div, (int, float)) or isinstance(div, bool) or div < 1.0:
            raise ValueError(f"model.adaptive_softmax_div_value must be a number >= 1, got {div!r}")
        hidden_size = self.encoder.hidden_size
        if cutoffs and int(hidden_size // div ** len(cutoffs)) < 1:
            raise ValueError(
                f"model.adaptive_softmax_div_value={div} shrinks the last of {len(cutoffs)} tail clusters to "
                f"encoder.hidden_size // div^{len(cutoffs)} = 0 units (encoder.hidden_size={hidden_size})"
            )


def upgrade_model_config(data: dict) -> dict:
    """A `model` section (dict) of any earlier rnnkit in today's nested form; today's form is returned as is.

    Before the encoder section the model was flat: {vocab_size, embedding_size, hidden_size, num_layers, cell,
    dropout, tie_weights, adaptive_softmax_cutoffs, adaptive_softmax_div_value}. cell, hidden_size and
    num_layers move to `encoder`; the old `dropout` served the embedding, the decoder input and the gaps
    between layers, so it becomes both `dropout` and `encoder.dropout`. The model built from the result has
    the old model's state_dict keys (`rnn.weight_ih_l0`, ...), so old model files load unchanged.

        >>> upgrade_model_config({"hidden_size": 64, "num_layers": 1, "cell": "gru", "dropout": 0.2})
        {'dropout': 0.2, 'encoder': {'cell': 'gru', 'hidden_size': 64, 'num_layers': 1, 'dropout': 0.2}}
    """
    if not any(key in data for key in _FLAT_ENCODER_KEYS):
        return data
    if "encoder" in data:
        moved = sorted(key for key in _FLAT_ENCODER_KEYS if key in data)
        raise ValueError(f"model config mixes the flat keys {moved} with model.encoder; keep model.encoder")
    data = dict(data)
    encoder = {key: data.pop(key) for key in _FLAT_ENCODER_KEYS if key in data}
    if "dropout" in data:
        encoder["dropout"] = data["dropout"]
    return {**data, "encoder": encoder}


def language_model_metrics(loss: float) -> dict[str, float]:
    """Mean cross-entropy in nats -> {loss (nats), bpc (bits per token: loss / ln 2), ppl (exp(loss))}."""
    return {"loss": loss, "bpc": loss / math.log(2.0), "ppl": math.exp(min(loss, 700.0))}


class TiedShortlistHead(nn.Module):
    """The adaptive softmax head with its shortlist rows taken from the embedding (tie_weights).

        head(h) = [E[:c_1]; W_cluster] h + b      # (N, c_1 + n_clusters)

    Args:
        embedding: the model's token embedding E (V, H); held here as the same module, not a copy.
        shortlist_size: c_1, the number of shortlist tokens.
        n_clusters: n, one head entry per tail cluster.
    """

    def __init__(self, embedding: nn.Embedding, shortlist_size: int, n_clusters: int):
        super().__init__()
        self.embedding, self.shortlist_size = embedding, shortlist_size
        hidden_size = embedding.embedding_dim
        self.cluster_weight = nn.Parameter(torch.empty(n_clusters, hidden_size))  # (n, H)
        self.bias = nn.Parameter(torch.empty(shortlist_size + n_clusters))  # (c_1 + n,)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """nn.Linear's default init for the head's own rows; the embedding keeps its values."""
        bound = 1.0 / math.sqrt(self.cluster_weight.size(1))
        nn.init.uniform_(self.cluster_weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        weight = torch.cat([self.embedding.weight[: self.shortlist_size], self.cluster_weight])  # (c_1+n, H)
        return F.linear(h, weight, self.bias)  # (N, c_1 + n)


def make_decoder(config: LanguageModelConfig, embedding: nn.Embedding) -> nn.Module:
    """The one place that picks the decoder: nn.Linear over the vocabulary (full softmax), or torch's
    AdaptiveLogSoftmaxWithLoss when cutoffs are given; either tied to `embedding` when asked."""
    if not config.adaptive_softmax_cutoffs:
        decoder = nn.Linear(config.encoder.output_size, config.vocab_size)
        if config.tie_weights:
            decoder.weight = embedding.weight  # W_dec = E, (V, H) with H == E
        return decoder
    decoder = nn.AdaptiveLogSoftmaxWithLoss(
        config.encoder.output_size,
        config.vocab_size,
        list(config.adaptive_softmax_cutoffs),
        div_value=float(config.adaptive_softmax_div_value),
        head_bias=True,  # the shortlist's unigram prior, as the full softmax's decoder bias
    )
    if config.tie_weights:
        decoder.head = TiedShortlistHead(embedding, decoder.shortlist_size, decoder.n_clusters)
    return decoder


class LanguageModel(nn.Module):
    """Next-token model over a vocabulary; see the module docstring for the equations."""

    def __init__(self, config: LanguageModelConfig):
        super().__init__()
        if config.vocab_size < 1:
            raise ValueError(f"model.vocab_size must be >= 1 to build a model, got {config.vocab_size}")
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_size)
        self.dropout = nn.Dropout(config.dropout)
        # `rnn`: the state_dict keys of every model file so far (rnn.weight_ih_l0, ...)
        self.rnn = make_encoder(config.encoder, config.embedding_size, batch_first=True)
        self.decoder = make_decoder(config, self.embedding)
        self.adaptive = bool(config.adaptive_softmax_cutoffs)

    def init_state(self, batch_size: int):
        """The state None stands for, for `batch_size` sequences: (h, c) of zeros for the LSTM; h zeros for
        rnn / gru and 0.5 for mingru / minlstm (their h_0 = g(0)); each (L, B, H)."""
        return init_state(self.config.encoder, batch_size, like=self.embedding.weight)

    def forward(
        self,
        tokens: torch.Tensor,
        state=None,
        targets: torch.Tensor | None = None,
        return_logits: bool | None = None,
    ):
        """Run over a window of tokens.

        Args:
            tokens: (B, T) long token ids.
            state: the state returned for the previous window, or None for zeros.
            targets: optional (B, T) long next-token ids.
            return_logits: build the (B, T, V) output; None = unless it costs extra, i.e. always for the full
                softmax, and for the adaptive softmax only when no targets are given.
        Returns:
            (logits (B, T, V), state), or (logits, state, loss) when targets are given; loss is the mean
            cross-entropy in nats. With an adaptive softmax the logits are log-probabilities
            (softmax(log p) = p) and are None when not built.
        """
        if tokens.dim() != 2:
            raise ValueError(f"tokens must have shape (B, T), got {tuple(tokens.shape)}")
        if targets is not None and targets.shape != tokens.shape:
            raise ValueError(
                f"targets must have the shape of tokens {tuple(tokens.shape)}, got {tuple(targets.shape)}"
            )
        x = self.dropout(self.embedding(tokens))  # (B, T, E)
        out, state = self.rnn(x, _in_dtype(state, x))  # (B, T, H)
        return self._outputs(self.dropout(out), state, targets, return_logits)

    def _outputs(self, out: torch.Tensor, state, targets, return_logits: bool | None):
        """The decoder over h (B, T, H): (logits, state) or (logits, state, loss), see `forward`."""
        if self.adaptive:
            return self._adaptive_outputs(out, state, targets, return_logits)
        logits = self.decoder(out)  # (B, T, V)
        if targets is None:
            return (logits if return_logits is not False else None), state
        loss = F.cross_entropy(
            logits.reshape(-1, logits.size(-1)), targets.reshape(-1)
        )  # mean over B*T, nats
        return (logits if return_logits is not False else None), state, loss

    def _adaptive_outputs(self, out: torch.Tensor, state, targets, return_logits: bool | None):
        """Adaptive softmax over h (B, T, H): the loss from the targets' clusters only, the (B, T, V)
        log-probabilities only when asked (or when there are no targets)."""
        batch_size, steps, hidden_size = out.shape
        h = out.reshape(-1, hidden_size)  # (B*T, H)
        device = h.device.type
        if torch.is_autocast_enabled(device):
            # torch's adaptive softmax fills an h-dtype buffer with its tails' autocast-dtype rows: give it
            # h in that dtype (a layer that ran in fp32 under autocast, with no bf16 kernel, returns fp32)
            h = h.to(torch.get_autocast_dtype(device))
        if return_logits is None:
            return_logits = targets is None
        log_probs = None
        if return_logits:
            log_probs = self.decoder.log_prob(h).view(batch_size, steps, -1)  # (B, T, V)
        if targets is None:
            return log_probs, state
        loss = self.decoder(h, targets.reshape(-1)).loss  # mean over B*T of -log p(target), nats
        return log_probs, state, loss

    def step(self, token: torch.Tensor, state=None):
        """One token per sequence, O(1): token (B,) long -> (logits (B, V), state); log-probabilities with
        an adaptive softmax."""
        if token.dim() != 1:
            raise ValueError(f"token must have shape (B,), got {tuple(token.shape)}")
        x_t = self.dropout(self.embedding(token))  # (B, E)
        y_t, state = self.rnn.step(x_t, _in_dtype(state, x_t))  # (B, H): every rnnkit.nn layer steps
        logits, state = self._outputs(self.dropout(y_t)[:, None], state, None, True)  # (B, 1, V)
        return logits[:, 0], state


def _in_dtype(state, x: torch.Tensor):
    """Under autocast the layer returns a bf16/fp16 state; it re-enters in the input's dtype."""
    return tree_map(lambda s: s.to(x.dtype), state)
