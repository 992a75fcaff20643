"""Sequence to sequence with attention: an encoder reads the source, a decoder writes the target one token at
a time.

    encoder    e_s = Encoder(Embed(x))_s                  any make_encoder layer, bidirectional by default,
               (B, S) -> (B, S, D * H_enc)                lengths honoured (h_n at each row's last token)
    bridge     s_0 = tanh(W_b [h_fwd; h_bwd] + b_b)       the top layer's final states -> every decoder layer
    decoder    s_t = Cell([Embed(y_{t-1}); h~_{t-1}], s_{t-1})     input feeding (Luong et al. 2015, sec. 3.3)
    score      additive  a(s, e) = v^T tanh(W_q s + W_k e)          Bahdanau et al. 2015, eq. (6)
               general   a(s, e) = s^T W_k e                        Luong et al. 2015, eq. (8)
    weights    alpha_ts = softmax_s(a(s_t, e_s)), padding -inf      padded positions get exactly 0
    context    c_t = sum_s alpha_ts e_s                             (B, D * H_enc)
    output     h~_t = tanh(W_c [c_t; s_t]),  p(y_t) = softmax(W_o h~_t)       Luong et al. 2015, eq. (5)

The architecture is Luong's (attention after the recurrent step, the attentional vector h~ fed back as input),
with either score function, as OpenNMT's `global_attention: mlp | general`. `attention="none"` is the
encoder-decoder without attention of the same sizes (Cho et al. 2014): c_t is then the fixed summary
[h_fwd; h_bwd] of the source at every step, so the decoder sees the source only through one vector.

Decoding runs through `step(tokens (B,), state) -> (logits (B, V), state)`, O(1) in the target length: the
state carries the encoder outputs, their projection for the score, the source mask, the decoder's recurrent
state, h~_{t-1} and the last attention weights (for attention maps). `forward` (teacher forcing) runs the same
step code over the whole target, so greedy and beam search reproduce its logits exactly. A stochastic decoder
variant (recurrent dropout, zoneout) draws its masks once per target sequence (`sample_masks(T, B)`), so
variational dropout stays variational when the decoder runs one step at a time.

    >>> import torch
    >>> model = Seq2Seq(Seq2SeqConfig(source_vocab_size=10, target_vocab_size=12, embedding_size=8,
    ...     encoder=RecurrentConfig(cell="gru", hidden_size=8, num_layers=1, bidirectional=True),
    ...     decoder=RecurrentConfig(cell="gru", hidden_size=16, num_layers=1)))
    >>> src, lengths = torch.tensor([[4, 5, 6], [7, 8, 0]]), torch.tensor([3, 2])
    >>> tgt_in, tgt_out = torch.tensor([[1, 4, 5], [1, 6, 0]]), torch.tensor([[4, 5, 2], [6, 2, 0]])
    >>> logits, attention, loss = model(src, lengths, tgt_in, tgt_out)
    >>> logits.shape, attention.shape, attention[1, :, 2].tolist()          # (B, T, V), (B, T, S)
    (torch.Size([2, 3, 12]), torch.Size([2, 3, 3]), [0.0, 0.0, 0.0])
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.recurrent import TORCH_CELLS, RecurrentConfig, make_encoder

__all__ = ["ATTENTIONS", "Seq2SeqConfig", "Seq2Seq", "Attention", "PAD_ID", "BOS_ID", "EOS_ID"]

ATTENTIONS = ("additive", "general", "none")
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # rnnkit.data.pairs' fixed special ids


def _encoder_default() -> RecurrentConfig:
    return RecurrentConfig(cell="gru", hidden_size=128, num_layers=1, bidirectional=True)


def _decoder_default() -> RecurrentConfig:
    return RecurrentConfig(cell="gru", hidden_size=256, num_layers=1)


@dataclass(frozen=True)
class Seq2SeqConfig:
    """Sizes and regularisation of a `Seq2Seq` model (`model:` of a translate preset).

    Args:
        source_vocab_size, target_vocab_size: V_src, V_tgt; 0 in a preset: taken from the data's vocabularies.
        embedding_size: E, width of both embeddings.
        encoder: the source's recurrent layer (any cell; bidirectional by default).
        decoder: the target's recurrent layer: rnn, lstm or gru, unidirectional (L_dec layers of H_dec).
        attention: "additive" (Bahdanau), "general" (Luong) or "none" (the same model without attention).
        attention_size: A, width of the additive score's hidden layer (0: H_dec); unused by the others.
        input_feeding: feed h~_{t-1} to the decoder with the embedding of y_{t-1}.
        dropout: on the embeddings and on h~_t before the output layer.
        label_smoothing: epsilon of the training loss (Szegedy et al. 2016); the validation loss is plain.
        tie_embeddings: the output layer shares the target embedding (needs embedding_size == H_dec).
        scheduled_sampling: probability of feeding the model's own argmax instead of y_{t-1} in training
            (Bengio et al. 2015); 0 is pure teacher forcing.
    """

    source_vocab_size: int = 0
    target_vocab_size: int = 0
    embedding_size: int = 128
    encoder: RecurrentConfig = field(default_factory=_encoder_default)
    decoder: RecurrentConfig = field(default_factory=_decoder_default)
    attention: str = "additive"
    attention_size: int = 0
    input_feeding: bool = True
    dropout: float = 0.1
    label_smoothing: float = 0.1
    tie_embeddings: bool = False
    scheduled_sampling: float = 0.0

    def __post_init__(self):
        for name, low in (("source_vocab_size", 0), ("target_vocab_size", 0), ("embedding_size", 1),
                          ("attention_size", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"model.{name} must be an integer >= {low}, got {value!r}")
        for name in ("encoder", "decoder"):
            if not isinstance(getattr(self, name), RecurrentConfig):
                raise ValueError(f"model.{name} must be a RecurrentConfig, got {getattr(self, name)!r}")
        if self.decoder.cell not in TORCH_CELLS or self.decoder.bidirectional:
            raise ValueError(f"model.decoder must be a unidirectional {'/'.join(TORCH_CELLS)} layer, got "
                             f"cell {self.decoder.cell!r}, bidirectional {self.decoder.bidirectional}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"model.attention must be one of {ATTENTIONS}, got {self.attention!r}")
        for name in ("dropout", "label_smoothing", "scheduled_sampling"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
                raise ValueError(f"model.{name} must be in [0, 1), got {p!r}")
            object.__setattr__(self, name, float(p))
        if self.tie_embeddings and self.embedding_size != self.decoder.hidden_size:
            raise ValueError("model.tie_embeddings needs embedding_size == decoder.hidden_size, got "
                             f"embedding_size={self.embedding_size}, "
                             f"decoder.hidden_size={self.decoder.hidden_size}")


class Attention(nn.Module):
    """Scores of a query against the source positions, masked softmax, context (module docstring).

    `keys(memory)` projects the encoder outputs once per source; `forward(query, memory, keys, mask)` is one
    decoder step.
    """

    def __init__(self, kind: str, query_size: int, memory_size: int, attention_size: int):
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.key = nn.Linear(memory_size, attention_size, bias=False)  # W_k
            self.query = nn.Linear(query_size, attention_size)  # W_q
            self.v = nn.Linear(attention_size, 1, bias=False)  # v
        elif kind == "general":
            self.key = nn.Linear(memory_size, query_size, bias=False)  # W_k: e -> W_k e, then s^T (W_k e)

    def keys(self, memory: Tensor) -> Tensor | None:
        """(B, S, D * H_enc) -> the projected keys (B, S, A) or (B, S, H_dec); None without attention."""
        return None if self.kind == "none" else self.key(memory)

    def forward(self, query: Tensor, memory: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """query (B, H_dec), memory (B, S, M), keys (B, S, .), mask (B, S) True at real tokens
        -> (context (B, M), weights (B, S), exactly 0 at padding)."""
        if self.kind == "additive":
            scores = self.v(torch.tanh(keys + self.query(query)[:, None])).squeeze(-1)  # (B, S)
        else:
            scores = torch.bmm(keys, query[:, :, None]).squeeze(-1)  # (B, S): s^T W_k e_s
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # (B, S); exp(-inf) = 0
        context = torch.bmm(weights[:, None], memory).squeeze(1)  # (B, M)
        return context, weights


class Seq2Seq(nn.Module):
    """Encoder-decoder with attention (module docstring). `forward` trains, `start` + `step` decode."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        if config.source_vocab_size < 5 or config.target_vocab_size < 5:
            raise ValueError("model.source_vocab_size and target_vocab_size must be >= 5 (4 specials and a "
                             f"token), got {config.source_vocab_size} and {config.target_vocab_size}")
        self.config = config
        E, enc, dec = config.embedding_size, config.encoder, config.decoder
        M, H = enc.output_size, dec.hidden_size  # memory width D * H_enc, decoder width H_dec
        self.source_embedding = nn.Embedding(config.source_vocab_size, E, padding_idx=PAD_ID)
        self.target_embedding = nn.Embedding(config.target_vocab_size, E, padding_idx=PAD_ID)
        self.encoder = make_encoder(enc, E)
        self.decoder = make_encoder(dec, E + (H if config.input_feeding else 0))
        self.bridge = nn.Linear(M, dec.num_layers * H * (2 if dec.cell == "lstm" else 1))
        self.attention = Attention(config.attention, H, M, config.attention_size or H)
        self.combine = nn.Linear(M + H, H, bias=False)  # W_c
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(H, config.target_vocab_size)  # W_o
        if config.tie_embeddings:
            self.output.weight = self.target_embedding.weight

    # ---- encoding ----
    def start(self, src: Tensor, src_lengths: Tensor) -> dict[str, Any]:
        """Encode a padded source batch: src (B, S) long, src_lengths (B,) -> the decoder's initial state."""
        if src.dim() != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(f"expected src (B, S) and src_lengths (B,), got {tuple(src.shape)} and "
                             f"{tuple(src_lengths.shape)}")
        if len(src_lengths) and int(src_lengths.min()) < 1:
            raise ValueError(f"every source needs at least one token, got a length {int(src_lengths.min())}")
        enc, dec = self.config.encoder, self.config.decoder
        B, S = src.shape
        lengths = src_lengths.cpu()
        memory, h_n = self.encoder(self.dropout(self.source_embedding(src)), lengths=lengths)  # (B, S, M)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM: h of (h, c); (L * D, B, H_enc)
        summary = h_n.view(enc.num_layers, enc.directions, B, enc.hidden_size)[-1]  # (D, B, H_enc) top layer
        summary = summary.permute(1, 0, 2).reshape(B, enc.output_size)  # (B, M): [h_fwd; h_bwd]
        bridged = torch.tanh(self.bridge(summary))  # (B, L_dec * H_dec [* 2])
        h0 = bridged.view(B, -1, dec.num_layers, dec.hidden_size).permute(1, 2, 0, 3)  # (1 | 2, L_dec, B, H)
        hidden = (h0[0].contiguous(), h0[1].contiguous()) if dec.cell == "lstm" else h0[0].contiguous()
        mask = torch.arange(S, device=src.device)[None, :] < src_lengths.to(src.device)[:, None]  # (B, S)
        return {
            "memory": memory,  # (B, S, M)
            "keys": self.attention.keys(memory),  # (B, S, .) or None
            "mask": mask,  # (B, S) bool
            "summary": summary,  # (B, M): the no-attention context
            "hidden": hidden,  # (L_dec, B, H_dec) or (h, c)
            "feed": memory.new_zeros(B, dec.hidden_size),  # (B, H_dec): h~_0 = 0
            "attention": memory.new_zeros(B, S),  # (B, S): the weights of the last step
        }

    @staticmethod
    def batch_dims(state: dict[str, Any]) -> dict[str, Any]:
        """The batch dimension of every tensor of a decoder state (rnnkit.decode.beam_search's batch_dim)."""
        hidden = (1, 1) if isinstance(state["hidden"], tuple) else 1
        return {"memory": 0, "keys": 0, "mask": 0, "summary": 0, "hidden": hidden, "feed": 0, "attention": 0}

    # ---- one decoder step ----
    def _step(self, embedded: Tensor, state: dict[str, Any], masks: dict | None, t: int | None):
        """embedded (B, E) of y_{t-1} -> (h~_t (B, H_dec), new state)."""
        x = embedded  # (B, E), with input feeding [Embed(y_{t-1}); h~_{t-1}] (B, E + H_dec)
        if self.config.input_feeding:
            x = torch.cat([embedded, state["feed"]], dim=-1)
        s_t, hidden = self.decoder.step(x, state["hidden"], masks, t=t)  # (B, H_dec)
        if self.config.attention == "none":
            context, weights = state["summary"], state["attention"]  # (B, M): the fixed summary
        else:
            context, weights = self.attention(s_t, state["memory"], state["keys"], state["mask"])
        attentional = torch.tanh(self.combine(torch.cat([context, s_t], dim=-1)))  # (B, H_dec): h~_t
        return attentional, {**state, "hidden": hidden, "feed": attentional, "attention": weights}

    def step(self, tokens: Tensor, state: dict[str, Any]) -> tuple[Tensor, dict[str, Any]]:
        """tokens (B,) long y_{t-1} (BOS_ID first), state from `start` -> (logits (B, V_tgt), state)."""
        attentional, state = self._step(self.dropout(self.target_embedding(tokens)), state, None, None)
        return self.output(self.dropout(attentional)), state

    # ---- training ----
    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor | None = None,
                label_smoothing: float | None = None):
        """Teacher forcing: src (B, S), src_lengths (B,), tgt_in (B, T) = <bos> y, tgt_out (B, T) = y <eos>.

        Returns:
            logits (B, T, V_tgt), attention weights (B, T, S) and the mean cross-entropy over the non-pad
            targets (None without tgt_out), with `label_smoothing` (default: the config's in training, 0 in
            eval mode).
        """
        state = self.start(src, src_lengths)
        B, T = tgt_in.shape
        masks = self.decoder.sample_masks(T, B) if self.training else None  # once per sequence
        sampling = self.training and self.config.scheduled_sampling > 0
        embedded = self.dropout(self.target_embedding(tgt_in))  # (B, T, E)
        outputs, weights = [], []
        for t in range(T):
            x_t = embedded[:, t]
            if sampling and t > 0:  # feed the model's own previous guess with probability p
                guess = self.dropout(self.target_embedding(outputs[-1].detach().argmax(-1)))  # (B, E)
                use = torch.rand(B, 1, device=src.device) < self.config.scheduled_sampling
                x_t = torch.where(use, guess, x_t)
            attentional, state = self._step(x_t, state, masks or None, t)
            outputs.append(self.output(self.dropout(attentional)))  # (B, V)
            weights.append(state["attention"])
        logits, attention = torch.stack(outputs, 1), torch.stack(weights, 1)  # (B, T, V), (B, T, S)
        if tgt_out is None:
            return logits, attention, None
        if label_smoothing is None:
            label_smoothing = self.config.label_smoothing if self.training else 0.0
        loss = F.cross_entropy(logits.reshape(B * T, -1), tgt_out.reshape(-1), ignore_index=PAD_ID,
                               label_smoothing=label_smoothing)
        return logits, attention, loss

    # ---- batched greedy decoding ----
    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_new_tokens: int | Tensor) -> list[list[int]]:
        """The argmax translation of every source row (ids without <bos>, up to and with <eos> when reached);
        `max_new_tokens` is one limit or one per row (B,)."""
        state = self.start(src, src_lengths)
        B = src.shape[0]
        limits = torch.as_tensor(max_new_tokens).expand(B).tolist()
        tokens = torch.full((B,), BOS_ID, dtype=torch.long, device=src.device)
        out: list[list[int]] = [[] for _ in range(B)]
        done = [limit <= 0 for limit in limits]
        for n in range(max(limits, default=0)):
            if all(done):
                break
            logits, state = self.step(tokens, state)
            tokens = logits.argmax(-1)  # (B,)
            for b, token in enumerate(tokens.tolist()):
                if not done[b]:
                    out[b].append(token)
                    done[b] = token == EOS_ID or n + 1 >= limits[b]
        return out
