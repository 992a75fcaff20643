"""The decoder half of a sequence model: target tokens written one at a time, conditioned on a summary vector
and, with attention, on a memory of positions read afresh at every step.

    initial    s_0 = tanh(W_b c + b_b)                            c (B, M): the conditioning summary
    decoder    s_t = Cell([Embed(y_{t-1}); h~_{t-1}], s_{t-1})     input feeding (Luong et al. 2015, sec. 3.3)
    score      additive  a(s, e) = v^T tanh(W_q s + W_k e)          Bahdanau et al. 2015, eq. (6)
               general   a(s, e) = s^T W_k e                        Luong et al. 2015, eq. (8)
    weights    alpha_ts = softmax_s(a(s_t, e_s)), padding -inf      padded positions get exactly 0
    context    c_t = sum_s alpha_ts e_s                             (B, M); without attention c_t = c
    output     h~_t = tanh(W_c [c_t; s_t]),  p(y_t) = softmax(W_o h~_t)       Luong et al. 2015, eq. (5)

`ConditionedDecoder` owns these parameters and the three ways to run them: `step` (one token, O(1) in the
target length: greedy and beam search), `teacher_forcing` (a whole target, the same step code, so decoding
reproduces its logits exactly) and `greedy_from`. A model built on it only says how its input becomes the
decoder's state: `initial_state(c, S)`, plus, for attention, the memory e (B, S, M), its keys
(`attention.keys(e)`) and the mask of real positions. Seq2Seq encodes a source into (e, c); VectorToSequence
projects a vector into c and attends to nothing. The models subclass it so that the parameter names stay flat
(target_embedding, decoder, bridge, attention, combine, output), the names saved model files carry.
"""

from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.recurrent import TORCH_CELLS, RecurrentConfig, make_encoder

__all__ = ["Attention", "ConditionedDecoder", "check_sizes", "check_decoder_fields", "PAD_ID", "BOS_ID",
           "EOS_ID"]

PAD_ID, BOS_ID, EOS_ID = 0, 1, 2  # rnnkit.data.pairs' fixed special ids


def check_sizes(config: Any, lows: dict[str, int]) -> None:
    """Each named field of `config` an integer >= its low bound, else a ValueError with the value."""
    for name, low in lows.items():
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"model.{name} must be an integer >= {low}, got {value!r}")


def check_decoder_fields(config: Any) -> None:
    """Check the fields every decoder config has (`ConditionedDecoder`); probabilities become floats."""
    check_sizes(config, {"target_vocab_size": 0, "embedding_size": 1})
    if not isinstance(config.decoder, RecurrentConfig):
        raise ValueError(f"model.decoder must be a RecurrentConfig, got {config.decoder!r}")
    if config.decoder.cell not in TORCH_CELLS or config.decoder.bidirectional:
        raise ValueError(f"model.decoder must be a unidirectional {'/'.join(TORCH_CELLS)} layer, got "
                         f"cell {config.decoder.cell!r}, bidirectional {config.decoder.bidirectional}")
    for name in ("dropout", "label_smoothing", "scheduled_sampling"):
        p = getattr(config, name)
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
            raise ValueError(f"model.{name} must be in [0, 1), got {p!r}")
        object.__setattr__(config, name, float(p))
    if config.tie_embeddings and config.embedding_size != config.decoder.hidden_size:
        raise ValueError("model.tie_embeddings needs embedding_size == decoder.hidden_size, got "
                         f"embedding_size={config.embedding_size}, "
                         f"decoder.hidden_size={config.decoder.hidden_size}")


class Attention(nn.Module):
    """Scores of a query against the memory positions, masked softmax, context (module docstring).

    `keys(memory)` projects the memory once per input; `forward(query, memory, keys, mask)` is one decoder
    step. kind "none" holds no parameters: the decoder then reads the fixed summary instead.
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
        """(B, S, M) -> the projected keys (B, S, A) or (B, S, H_dec); None without attention."""
        return None if self.kind == "none" else self.key(memory)

    def forward(self, query: Tensor, memory: Tensor, keys: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """query (B, H_dec), memory (B, S, M), keys (B, S, .), mask (B, S) True at real positions
        -> (context (B, M), weights (B, S), exactly 0 at padding)."""
        if self.kind == "additive":
            scores = self.v(torch.tanh(keys + self.query(query)[:, None])).squeeze(-1)  # (B, S)
        else:
            scores = torch.bmm(keys, query[:, :, None]).squeeze(-1)  # (B, S): s^T W_k e_s
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)  # (B, S); exp(-inf) = 0
        context = torch.bmm(weights[:, None], memory).squeeze(1)  # (B, M)
        return context, weights


class ConditionedDecoder(nn.Module):
    """The token decoder of the module docstring, for a subclass that builds its state (`initial_state`).

    A subclass calls `_add_target_embedding()` and then `_add_decoder(M, ...)` in its __init__, its own
    modules before, between or after: two calls, so that each model creates (and so draws from the seed) its
    modules in its own fixed order, Seq2Seq's being source embedding, target embedding, encoder, decoder.

    Args:
        config: a frozen config with the decoder fields target_vocab_size (V, >= 5: the 4 specials of
            rnnkit.data.pairs and a token), embedding_size (E), decoder (RecurrentConfig: rnn, lstm or gru,
            L_dec layers of H_dec), input_feeding, dropout, label_smoothing, tie_embeddings and
            scheduled_sampling (Seq2SeqConfig's meanings; `check_decoder_fields` checks them).
    """

    def __init__(self, config: Any):
        super().__init__()
        if config.target_vocab_size < 5:
            raise ValueError("model.target_vocab_size must be >= 5 (4 specials and a token), got "
                             f"{config.target_vocab_size}")
        self.config = config

    def _add_target_embedding(self) -> None:
        """target_embedding: (V, E), <pad> embedded as 0."""
        config = self.config
        V, E = config.target_vocab_size, config.embedding_size
        self.target_embedding = nn.Embedding(V, E, padding_idx=PAD_ID)

    def _add_decoder(self, memory_size: int, attention: str = "none", attention_size: int = 0) -> None:
        """decoder, bridge, attention, combine, dropout and output, for a summary and memory of width M.

        Args:
            memory_size: M, the width of the summary c and of the memory positions e_s.
            attention: "additive", "general" or "none" (c_t = c at every step).
            attention_size: A, the width of the additive score's hidden layer (0: H_dec).
        """
        config = self.config
        E, dec, M, H = config.embedding_size, config.decoder, memory_size, config.decoder.hidden_size
        self.decoder = make_encoder(dec, E + (H if config.input_feeding else 0))
        self.bridge = nn.Linear(M, dec.num_layers * H * (2 if dec.cell == "lstm" else 1))  # W_b
        self.attention = Attention(attention, H, M, attention_size or H)
        self.combine = nn.Linear(M + H, H, bias=False)  # W_c
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(H, config.target_vocab_size)  # W_o
        if config.tie_embeddings:
            self.output.weight = self.target_embedding.weight

    # ---- the state ----
    def initial_state(self, summary: Tensor, positions: int = 0) -> dict[str, Any]:
        """summary c (B, M) -> the decoder's state before <bos>: s_0 bridged from c, h~_0 = 0, and zero
        attention weights over `positions` S (a model with attention adds memory, keys and mask)."""
        dec = self.config.decoder
        B = summary.shape[0]
        bridged = torch.tanh(self.bridge(summary))  # (B, L_dec * H_dec [* 2])
        h0 = bridged.view(B, -1, dec.num_layers, dec.hidden_size).permute(1, 2, 0, 3)  # (1 | 2, L_dec, B, H)
        hidden = (h0[0].contiguous(), h0[1].contiguous()) if dec.cell == "lstm" else h0[0].contiguous()
        return {
            "summary": summary,  # (B, M): the no-attention context
            "hidden": hidden,  # (L_dec, B, H_dec) or (h, c)
            "feed": summary.new_zeros(B, dec.hidden_size),  # (B, H_dec): h~_0 = 0
            "attention": summary.new_zeros(B, positions),  # (B, S): the weights of the last step
        }

    @staticmethod
    def batch_dims(state: dict[str, Any]) -> dict[str, Any]:
        """The batch dimension of every tensor of a decoder state (rnnkit.decode.beam_search's batch_dim)."""
        hidden = (1, 1) if isinstance(state["hidden"], tuple) else 1
        return {name: hidden if name == "hidden" else 0 for name in state}

    # ---- one decoder step ----
    def _step(self, embedded: Tensor, state: dict[str, Any], masks: dict | None, t: int | None):
        """embedded (B, E) of y_{t-1} -> (h~_t (B, H_dec), new state)."""
        x = embedded  # (B, E), with input feeding [Embed(y_{t-1}); h~_{t-1}] (B, E + H_dec)
        if self.config.input_feeding:
            x = torch.cat([embedded, state["feed"]], dim=-1)
        s_t, hidden = self.decoder.step(x, state["hidden"], masks, t=t)  # (B, H_dec)
        if self.attention.kind == "none":
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
    def teacher_forcing(self, state: dict[str, Any], tgt_in: Tensor, tgt_out: Tensor | None = None,
                        label_smoothing: float | None = None):
        """The decoder over a whole target from `state`: tgt_in (B, T) = <bos> y, tgt_out (B, T) = y <eos>.

        Returns:
            logits (B, T, V_tgt), attention weights (B, T, S) and the mean cross-entropy over the non-pad
            targets (None without tgt_out), with `label_smoothing` (default: the config's in training, 0 in
            eval mode).
        """
        B = state["feed"].shape[0]
        if tgt_in.dim() != 2 or tgt_in.shape[0] != B:
            raise ValueError(f"expected tgt_in (B, T) with B = {B} rows, got {tuple(tgt_in.shape)}")
        if tgt_out is not None and tgt_out.shape != tgt_in.shape:
            raise ValueError(f"expected tgt_out of tgt_in's shape {tuple(tgt_in.shape)}, got "
                             f"{tuple(tgt_out.shape)}")
        T = tgt_in.shape[1]
        masks = self.decoder.sample_masks(T, B) if self.training else None  # once per sequence
        sampling = self.training and self.config.scheduled_sampling > 0
        embedded = self.dropout(self.target_embedding(tgt_in))  # (B, T, E)
        outputs, weights = [], []
        for t in range(T):
            x_t = embedded[:, t]
            if sampling and t > 0:  # feed the model's own previous guess with probability p
                guess = self.dropout(self.target_embedding(outputs[-1].detach().argmax(-1)))  # (B, E)
                use = torch.rand(B, 1, device=tgt_in.device) < self.config.scheduled_sampling
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
    def greedy_from(self, state: dict[str, Any], max_new_tokens: int | Tensor) -> list[list[int]]:
        """The argmax continuation of every row of `state` (ids without <bos>, up to and with <eos> when
        reached); `max_new_tokens` is one limit or one per row (B,)."""
        B = state["feed"].shape[0]
        limits = torch.as_tensor(max_new_tokens).expand(B).tolist()
        tokens = torch.full((B,), BOS_ID, dtype=torch.long, device=state["feed"].device)
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
