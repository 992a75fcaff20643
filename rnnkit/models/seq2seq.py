"""Sequence to sequence with attention: an encoder reads the source, a decoder writes the target one token at
a time; and one-to-many: the same decoder conditioned on a vector.

    encoder    e_s = Encoder(Embed(x))_s                  any make_encoder layer, bidirectional by default,
               (B, S) -> (B, S, D * H_enc)                lengths honoured (h_n at each row's last token)
    summary    c = [h_fwd; h_bwd]                         the top layer's final states (B, D * H_enc)
    bridge     s_0 = tanh(W_b c + b_b)                    -> every decoder layer
    decoder    s_t = Cell([Embed(y_{t-1}); h~_{t-1}], s_{t-1})     input feeding (Luong et al. 2015, sec. 3.3)
    score      additive  a(s, e) = v^T tanh(W_q s + W_k e)          Bahdanau et al. 2015, eq. (6)
               general   a(s, e) = s^T W_k e                        Luong et al. 2015, eq. (8)
    weights    alpha_ts = softmax_s(a(s_t, e_s)), padding -inf      padded positions get exactly 0
    context    c_t = sum_s alpha_ts e_s                             (B, D * H_enc)
    output     h~_t = tanh(W_c [c_t; s_t]),  p(y_t) = softmax(W_o h~_t)       Luong et al. 2015, eq. (5)

The architecture is Luong's (attention after the recurrent step, the attentional vector h~ fed back as input),
with either score function, as OpenNMT's `global_attention: mlp | general`. `attention="none"` is the
encoder-decoder without attention of the same sizes (Cho et al. 2014): c_t is then the fixed summary c of the
source at every step, so the decoder sees the source only through one vector. `VectorToSequence` is exactly
that path with the encoder replaced by a projection of a given vector, c = W_v v + b_v (a fixed vector in, a
sequence out). Everything from s_0 on is rnnkit.models.decoder.ConditionedDecoder, shared by both models.

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

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from rnnkit.models.decoder import (
    BOS_ID,
    EOS_ID,
    PAD_ID,
    Attention,
    ConditionedDecoder,
    check_decoder_fields,
    check_sizes,
)
from rnnkit.models.recurrent import RecurrentConfig, make_encoder

__all__ = ["ATTENTIONS", "Seq2SeqConfig", "Seq2Seq", "VectorToSequenceConfig", "VectorToSequence",
           "Attention", "PAD_ID", "BOS_ID", "EOS_ID"]

ATTENTIONS = ("additive", "general", "none")


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
        check_sizes(self, {"source_vocab_size": 0, "attention_size": 0})
        if not isinstance(self.encoder, RecurrentConfig):
            raise ValueError(f"model.encoder must be a RecurrentConfig, got {self.encoder!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"model.attention must be one of {ATTENTIONS}, got {self.attention!r}")
        check_decoder_fields(self)


class Seq2Seq(ConditionedDecoder):
    """Encoder-decoder with attention (module docstring). `forward` trains, `start` + `step` decode."""

    def __init__(self, config: Seq2SeqConfig):
        if config.source_vocab_size < 5 or config.target_vocab_size < 5:
            raise ValueError("model.source_vocab_size and target_vocab_size must be >= 5 (4 specials and a "
                             f"token), got {config.source_vocab_size} and {config.target_vocab_size}")
        super().__init__(config)
        E = config.embedding_size
        self.source_embedding = nn.Embedding(config.source_vocab_size, E, padding_idx=PAD_ID)
        self._add_target_embedding()
        self.encoder = make_encoder(config.encoder, E)
        M = config.encoder.output_size  # D * H_enc
        self._add_decoder(M, config.attention, config.attention_size)

    # ---- encoding ----
    def start(self, src: Tensor, src_lengths: Tensor) -> dict[str, Any]:
        """Encode a padded source batch: src (B, S) long, src_lengths (B,) -> the decoder's initial state."""
        if src.dim() != 2 or src_lengths.shape != src.shape[:1]:
            raise ValueError(f"expected src (B, S) and src_lengths (B,), got {tuple(src.shape)} and "
                             f"{tuple(src_lengths.shape)}")
        if len(src_lengths) and int(src_lengths.min()) < 1:
            raise ValueError(f"every source needs at least one token, got a length {int(src_lengths.min())}")
        enc = self.config.encoder
        B, S = src.shape
        lengths = src_lengths.cpu()
        memory, h_n = self.encoder(self.dropout(self.source_embedding(src)), lengths=lengths)  # (B, S, M)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM: h of (h, c); (L * D, B, H_enc)
        summary = h_n.view(enc.num_layers, enc.directions, B, enc.hidden_size)[-1]  # (D, B, H_enc) top layer
        summary = summary.permute(1, 0, 2).reshape(B, enc.output_size)  # (B, M): [h_fwd; h_bwd]
        mask = torch.arange(S, device=src.device)[None, :] < src_lengths.to(src.device)[:, None]  # (B, S)
        return {
            "memory": memory,  # (B, S, M)
            "keys": self.attention.keys(memory),  # (B, S, .) or None
            "mask": mask,  # (B, S) bool
            **self.initial_state(summary, S),  # summary, hidden, feed, attention
        }

    # ---- training ----
    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor, tgt_out: Tensor | None = None,
                label_smoothing: float | None = None):
        """Teacher forcing: src (B, S), src_lengths (B,), tgt_in (B, T) = <bos> y, tgt_out (B, T) = y <eos>.

        Returns:
            logits (B, T, V_tgt), attention weights (B, T, S) and the mean cross-entropy over the non-pad
            targets (None without tgt_out), with `label_smoothing` (default: the config's in training, 0 in
            eval mode).
        """
        return self.teacher_forcing(self.start(src, src_lengths), tgt_in, tgt_out, label_smoothing)

    # ---- batched greedy decoding ----
    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_new_tokens: int | Tensor) -> list[list[int]]:
        """The argmax translation of every source row (ids without <bos>, up to and with <eos> when reached);
        `max_new_tokens` is one limit or one per row (B,)."""
        return self.greedy_from(self.start(src, src_lengths), max_new_tokens)


# ---- one-to-many ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VectorToSequenceConfig:
    """Sizes and regularisation of a `VectorToSequence` model; the decoder fields mean what they mean in
    `Seq2SeqConfig`.

    Args:
        input_size: I, the width of the conditioning vector v.
        target_vocab_size: V_tgt, with the 4 specials of rnnkit.data.pairs (<pad> <bos> <eos> <unk>) first.
        embedding_size: E, width of the target embedding.
        context_size: M, width of the summary c = W_v v + b_v (0: H_dec).
        decoder, input_feeding, dropout, label_smoothing, tie_embeddings, scheduled_sampling: as in
            Seq2SeqConfig.
    """

    input_size: int
    target_vocab_size: int
    embedding_size: int = 128
    context_size: int = 0
    decoder: RecurrentConfig = field(default_factory=_decoder_default)
    input_feeding: bool = True
    dropout: float = 0.1
    label_smoothing: float = 0.1
    tie_embeddings: bool = False
    scheduled_sampling: float = 0.0

    def __post_init__(self):
        check_sizes(self, {"input_size": 1, "context_size": 0})
        check_decoder_fields(self)


class VectorToSequence(ConditionedDecoder):
    """One-to-many: a vector v (B, I) in, a token sequence out, by Seq2Seq's decoder conditioned on v.

        summary    c = W_v v + b_v                        (B, M)
        bridge     s_0 = tanh(W_b c + b_b)                -> every decoder layer
        context    c_t = c at every step                  Seq2Seq's attention="none" path: no memory

    The rest (decoder, input feeding, output, `step` for greedy / beam search, teacher forcing) is
    ConditionedDecoder's. `start(v)` checks v at the boundary: its shape (B, I) and finite values.

    >>> model = VectorToSequence(VectorToSequenceConfig(input_size=4, target_vocab_size=8))
    >>> [len(ids) <= 5 for ids in model.greedy(torch.rand(2, 4), max_new_tokens=5)]   # ids of each row
    [True, True]
    >>> logits, loss = model(torch.rand(2, 4), torch.tensor([[1, 5], [1, 6]]), torch.tensor([[5, 2], [6, 2]]))
    >>> logits.shape                                                                    # (B, T, V)
    torch.Size([2, 2, 8])
    """

    def __init__(self, config: VectorToSequenceConfig):
        super().__init__(config)
        M = config.context_size or config.decoder.hidden_size
        self._add_target_embedding()
        self._add_decoder(M)  # attention "none": c_t = c
        self.vector = nn.Linear(config.input_size, M)  # W_v

    def start(self, v: Tensor) -> dict[str, Any]:
        """v (B, I) float -> the decoder's initial state (no memory: `batch_dims` covers it as Seq2Seq's)."""
        I = self.config.input_size  # noqa: E741
        if v.dim() != 2 or v.shape[1] != I:
            raise ValueError(f"expected v of shape (B, {I}) (input_size {I}), got {tuple(v.shape)}")
        if not v.is_floating_point():
            raise ValueError(f"expected a floating-point v, got {v.dtype}")
        bad = ~torch.isfinite(v)
        if bad.any():
            b, i = (int(j) for j in bad.nonzero()[0])
            raise ValueError(f"v holds {int(bad.sum())} NaN or infinite values (the first at row {b}, "
                             f"column {i}: {float(v[b, i])}); expected finite numbers")
        return self.initial_state(self.vector(v))  # c (B, M), attention over 0 positions

    def forward(self, v: Tensor, tgt_in: Tensor, tgt_out: Tensor | None = None,
                label_smoothing: float | None = None) -> tuple[Tensor, Tensor | None]:
        """Teacher forcing: v (B, I), tgt_in (B, T) = <bos> y, tgt_out (B, T) = y <eos> (padded with PAD_ID).

        Returns:
            logits (B, T, V_tgt) and the mean cross-entropy over the non-pad targets (None without tgt_out).
        """
        logits, _, loss = self.teacher_forcing(self.start(v), tgt_in, tgt_out, label_smoothing)
        return logits, loss

    @torch.no_grad()
    def greedy(self, v: Tensor, max_new_tokens: int | Tensor) -> list[list[int]]:
        """The argmax sequence of every row of v (ids without <bos>, up to and with <eos> when reached)."""
        return self.greedy_from(self.start(v), max_new_tokens)
