"""A sequence classifier: a whole sequence in, one label out (many-to-one).

    tokens (B, T) -> Embedding -> x (B, T, E)        or   features (B, T, F) -> Linear -> x (B, T, E)
    x, lengths -> encoder (any cell / variant / stack / directions, rnnkit.models.recurrent) -> o (B, T, D H)
    o -> pooling over the valid steps t < T_b -> p (B, D H) -> dropout -> logits = W p + b (B, K)

Pooling (every kind reads only the valid steps, so padding never changes a prediction):

    last       [forward o at t = T_b - 1 ; backward o at t = 0]: each direction's final state
               (the classic y = softmax(V h_T + c))
    mean       sum_{t < T_b} o_t / T_b
    max        max_{t < T_b} o_t, per unit
    attention  additive (Bahdanau et al. 2015): e_t = v^T tanh(W o_t), a = softmax over t < T_b of e,
               p = sum_t a_t o_t; `attention_weights` keeps a (B, T) for explanations

    >>> import torch
    >>> from rnnkit.models.recurrent import RecurrentConfig
    >>> config = ClassifierConfig(vocab_size=50, num_classes=3, embedding_size=8, pooling="attention",
    ...                           encoder=RecurrentConfig(cell="gru", hidden_size=6, bidirectional=True))
    >>> model = SequenceClassifier(config).eval()
    >>> logits = model(torch.randint(1, 50, (4, 9)), torch.tensor([9, 5, 3, 1]))
    >>> logits.shape, model.attention_weights[3, 1:].abs().sum().item()
    (torch.Size([4, 3]), 0.0)

Transfer (ULMFiT, Howard & Ruder 2018): `copy_pretrained` starts the embedding and the encoder from a language
model's (exact copies; every size must match), and `layer_groups` lists the parameters from the top (head)
down to the embedding, the order in which gradual unfreezing trains them.

    >>> [len(group) for group in model.layer_groups()]  # attention + head, GRU layers 1 and 0, embedding
    [5, 8, 8, 1]
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit.models.recurrent import RecurrentConfig, make_encoder

__all__ = ["POOLINGS", "ClassifierConfig", "SequenceClassifier", "pool", "copy_pretrained",
           "copy_pretrained_bidirectional"]

POOLINGS = ("last", "mean", "max", "attention")


@dataclass(frozen=True)
class ClassifierConfig:
    """The classifier (`model` section of a classifier preset).

    Args:
        vocab_size: V for token inputs (0 = from the data's tokenizer); exactly one of vocab_size and
            num_features is set once the data is known.
        num_features: F for numeric (T, F) inputs (0 = from the data).
        num_classes: K (0 = from the data's labels).
        embedding_size: E, the width of the token embedding or of the linear projection of the features.
        encoder: the recurrent layer (cell, hidden_size, num_layers, bidirectional, variants).
        pooling: "last", "mean", "max" or "attention" (see the module docstring).
        attention_size: width of W in additive attention.
        dropout: on the pooled vector, before the head.
        embedding_dropout: on the embedded / projected inputs.
        init_from: a language model (model file or run directory of the language_model task, word level)
            whose embedding and encoder the classifier starts from, and whose vocabulary it reads (ULMFiT;
            rnnkit.tasks.classifier does the copy). Its id 0 is a word, so the embedding then has no
            <pad> row (padding is never read either way).
        init_from_backward: with init_from and a bidirectional encoder, a backward language model (trained on
            the same texts with each text's words reversed) that the reverse direction starts from, while
            the forward direction starts from init_from (`copy_pretrained_bidirectional`); ULMFiT trains a
            forward and a backward model too, but as two classifiers.
    """

    vocab_size: int = 0
    num_features: int = 0
    num_classes: int = 0
    embedding_size: int = 128
    encoder: RecurrentConfig = field(default_factory=RecurrentConfig)
    pooling: str = "last"
    attention_size: int = 64
    dropout: float = 0.3
    embedding_dropout: float = 0.0
    init_from: str = ""
    init_from_backward: str = ""

    def __post_init__(self):
        if self.init_from_backward and not (self.init_from and self.encoder.bidirectional):
            raise ValueError("model.init_from_backward starts the reverse direction of a bidirectional "
                             "encoder from a backward language model: it needs model.init_from (the forward "
                             "one) and model.encoder.bidirectional true, got init_from "
                             f"{self.init_from!r} and "
                             f"bidirectional {self.encoder.bidirectional}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"model.pooling must be one of {POOLINGS}, got {self.pooling!r}")
        for name in ("vocab_size", "num_features", "num_classes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"model.{name} must be an integer >= 0 (0 = from the data), got {value!r}")
        for name in ("embedding_size", "attention_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"model.{name} must be an integer >= 1, got {value!r}")
        if self.vocab_size and self.num_features:
            raise ValueError(
                f"model.vocab_size ({self.vocab_size}) and model.num_features ({self.num_features}) are both "
                "set: the input is token ids or numeric features, not both"
            )
        for name in ("dropout", "embedding_dropout"):
            p = getattr(self, name)
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
                raise ValueError(f"model.{name} must be a probability in [0, 1), got {p!r}")
            object.__setattr__(self, name, float(p))


def pool(outputs: Tensor, lengths: Tensor, how: str, directions: int = 1) -> Tensor:
    """Pool encoder outputs (B, T, D H) over each sequence's valid steps -> (B, D H) (module docstring).

    (Attention has weights of its own and lives in `SequenceClassifier`.)
    """
    B, T, width = outputs.shape
    valid = torch.arange(T, device=outputs.device)[None, :] < lengths[:, None]  # (B, T)
    if how == "last":
        rows = torch.arange(B, device=outputs.device)
        last = outputs[rows, lengths - 1]  # (B, D H): the forward direction's final state is here
        if directions == 1:
            return last
        H = width // directions
        return torch.cat([last[:, :H], outputs[:, 0, H:]], dim=-1)  # backward's final state is at t = 0
    if how == "mean":
        summed = outputs.masked_fill(~valid[..., None], 0.0).sum(dim=1)  # (B, D H)
        return summed / lengths[:, None].to(outputs.dtype)
    if how == "max":
        return outputs.masked_fill(~valid[..., None], float("-inf")).amax(dim=1)  # (B, D H)
    raise ValueError(f"pooling must be one of {POOLINGS[:3]} here, got {how!r}")


class SequenceClassifier(nn.Module):
    """Embedding or projection -> recurrent encoder -> pooling -> dropout -> linear head.

    Args:
        config: a ClassifierConfig with num_classes and one of vocab_size / num_features filled in.

    `forward(inputs, lengths, targets=None)`: inputs (B, T) int64 token ids or (B, T, F) float features,
    lengths (B,) (each in [1, T]) -> logits (B, K), or (logits, mean cross-entropy) given targets (B,).
    """

    def __init__(self, config: ClassifierConfig):
        super().__init__()
        if config.num_classes < 1 or not (config.vocab_size or config.num_features):
            raise ValueError(
                "a classifier needs model.num_classes and model.vocab_size or model.num_features filled in "
                f"(got num_classes={config.num_classes}, vocab_size={config.vocab_size}, "
                f"num_features={config.num_features})"
            )
        self.config = config
        E = config.embedding_size
        if config.vocab_size:
            padding = None if config.init_from else 0  # our own tokenizers' id 0 is <pad>, a pretrained's not
            self.embedding = nn.Embedding(config.vocab_size, E, padding_idx=padding)
        else:
            self.embedding = nn.Linear(config.num_features, E)
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        self.encoder = make_encoder(config.encoder, E)
        width = config.encoder.output_size  # D H
        if config.pooling == "attention":
            self.attention = nn.Sequential(nn.Linear(width, config.attention_size), nn.Tanh(),
                                           nn.Linear(config.attention_size, 1, bias=False))
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(width, config.num_classes)
        self.attention_weights: Tensor | None = None

    def encode(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        """The encoder's outputs o (B, T, D H), zero at padded steps."""
        if self.config.vocab_size and inputs.is_floating_point():
            raise ValueError(f"this classifier reads token ids (B, T), got {inputs.dtype} of shape "
                             f"{tuple(inputs.shape)}")
        if self.config.num_features and (inputs.dim() != 3 or inputs.shape[-1] != self.config.num_features):
            raise ValueError(f"this classifier reads features (B, T, {self.config.num_features}), got shape "
                             f"{tuple(inputs.shape)}")
        x = self.embedding_dropout(self.embedding(inputs))  # (B, T, E)
        outputs, _ = self.encoder(x, lengths=lengths)  # (B, T, D H)
        return outputs

    def pooled(self, outputs: Tensor, lengths: Tensor) -> Tensor:
        """The pooled vector p (B, D H) of encoder outputs (B, T, D H)."""
        lengths = lengths.to(outputs.device)
        if self.config.pooling != "attention":
            return pool(outputs, lengths, self.config.pooling, self.config.encoder.directions)
        valid = torch.arange(outputs.shape[1], device=outputs.device)[None, :] < lengths[:, None]  # (B, T)
        scores = self.attention(outputs).squeeze(-1).masked_fill(~valid, float("-inf"))  # (B, T)
        weights = torch.softmax(scores, dim=1)  # (B, T), 0 at padded steps
        self.attention_weights = weights.detach()
        return torch.einsum("bt,btw->bw", weights, outputs)  # (B, D H)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters from the top down: [head and attention, encoder layer L-1, ..., layer 0, embedding]
        (both directions of a layer together), the order in which gradual unfreezing trains them."""
        L = self.config.encoder.num_layers
        layers = [[] for _ in range(L)]
        for name, parameter in self.encoder.named_parameters():
            layer = re.search(r"_l(\d+)(?:_reverse)?$", name)  # torch's weight_ih_l{k}{_reverse} names
            layers[int(layer.group(1)) if layer else 0].append(parameter)
        below = {id(p) for p in [*self.encoder.parameters(), *self.embedding.parameters()]}
        top = [p for p in self.parameters() if id(p) not in below]
        return [top, *layers[::-1], list(self.embedding.parameters())]

    def forward(self, inputs: Tensor, lengths: Tensor, targets: Tensor | None = None):
        lengths = torch.as_tensor(lengths, dtype=torch.long)
        outputs = self.encode(inputs, lengths)  # (B, T, D H)
        logits = self.head(self.dropout(self.pooled(outputs, lengths)))  # (B, K)
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits, targets)


def _check_same_keys(ours: dict, theirs: dict, part: str, where: str) -> None:
    """A ValueError naming the first weight that only one side has (the cells or variants differ)."""
    for key in [*ours, *(k for k in theirs if k not in ours)]:
        if key not in ours or key not in theirs:
            side = "language model" if key in theirs else "classifier"
            raise ValueError(f"{where}: only the {side} has {part}.{key} (the encoders' cells or variants "
                             "differ)")


def copy_pretrained(model: SequenceClassifier, embedding: nn.Module, encoder: nn.Module, where: str) -> None:
    """Set the model's embedding and encoder to exact copies of a pretrained model's (a language model's
    `embedding` and `rnn`); a missing, unexpected or differently sized weight is a ValueError naming it.

        >>> from rnnkit.models.recurrent import RecurrentConfig, make_encoder
        >>> gru = RecurrentConfig(cell="gru", hidden_size=6, num_layers=1)
        >>> config = ClassifierConfig(vocab_size=20, num_classes=2, embedding_size=8, encoder=gru)
        >>> model = SequenceClassifier(config)
        >>> smaller = make_encoder(RecurrentConfig(cell="gru", hidden_size=5, num_layers=1), 8)
        >>> copy_pretrained(model, nn.Embedding(20, 8), smaller, "lm")
        Traceback (most recent call last):
        ValueError: lm: the language model's encoder.weight_ih_l0 is (15, 8), this classifier's (18, 8)
    """
    for part, source in (("embedding", embedding), ("encoder", encoder)):
        theirs, ours = source.state_dict(), getattr(model, part).state_dict()
        _check_same_keys(ours, theirs, part, where)
        for key in ours:
            if theirs[key].shape != ours[key].shape:
                raise ValueError(f"{where}: the language model's {part}.{key} is {tuple(theirs[key].shape)}, "
                                 f"this classifier's {tuple(ours[key].shape)}")
        with torch.no_grad():
            for key, tensor in getattr(model, part).state_dict().items():
                tensor.copy_(theirs[key])


def copy_pretrained_bidirectional(model: SequenceClassifier, forward: tuple[nn.Module, nn.Module],
                                  backward: tuple[nn.Module, nn.Module], backward_rows: Tensor,
                                  where: str) -> None:
    """Start a bidirectional classifier from two language models, (embedding, encoder) each: a forward one
    and a backward one (trained on reversed texts), so that at the start its forward direction computes
    exactly the forward model's states and its reverse direction the backward model's:

        embedding   x_t = [E_f[w_t] ; E_b[r(w_t)]]        (E_f + E_b wide; r: backward_rows, the backward
                                                            model's row of each of the classifier's ids)
        layer 0     W_ih = [W_ih^f, 0],  W_ih_reverse = [0, W_ih^b]   (each direction reads its own half)
        layer k > 0 W_ih = [W_ih^f, 0],  W_ih_reverse = [0, W_ih^b]   (input [o^f ; o^b], torch's order)

    and every other weight (recurrent, biases, layer norms) copied, the forward model's into `name`, the
    backward's into `name_reverse`. A weight missing on either side, or of another size, is a ValueError.

        >>> from rnnkit.models.recurrent import RecurrentConfig, make_encoder
        >>> lstm = RecurrentConfig(cell="lstm", hidden_size=6, num_layers=1)
        >>> bi = RecurrentConfig(cell="lstm", hidden_size=6, num_layers=1, bidirectional=True)
        >>> model = SequenceClassifier(ClassifierConfig(vocab_size=9, num_classes=2, embedding_size=8,
        ...                                             encoder=bi, init_from="f", init_from_backward="b"))
        >>> f, b = (nn.Embedding(9, 4), make_encoder(lstm, 4)), (nn.Embedding(9, 4), make_encoder(lstm, 4))
        >>> copy_pretrained_bidirectional(model, f, b, torch.arange(9), "lm")
        >>> model.encoder.weight_ih_l0_reverse[:, :4].abs().max().item()
        0.0
    """
    (embedding_f, encoder_f), (embedding_b, encoder_b) = forward, backward
    E_f, E_b = embedding_f.embedding_dim, embedding_b.embedding_dim
    ours = model.encoder.state_dict()
    sources = {**encoder_f.state_dict(), **{f"{k}_reverse": v for k, v in encoder_b.state_dict().items()}}
    if model.embedding.embedding_dim != E_f + E_b:
        raise ValueError(f"{where}: the two language models' embeddings are {E_f} + {E_b} wide, this "
                         f"classifier's model.embedding_size is {model.embedding.embedding_dim}: set it to "
                         f"{E_f + E_b}")
    _check_same_keys(ours, sources, "encoder", where)
    for key, tensor in ours.items():
        mine, theirs = tensor.shape, sources[key].shape
        if key.startswith("weight_ih_l"):  # (G, in_f + in_b): the pair's two input widths side by side
            pair = key.removesuffix("_reverse")
            theirs = (theirs[0], sources[pair].shape[1] + sources[f"{pair}_reverse"].shape[1])
        if tuple(mine) != tuple(theirs):
            raise ValueError(f"{where}: the language models give encoder.{key} the shape {tuple(theirs)}, "
                             f"this classifier's is {tuple(mine)}")
    with torch.no_grad():
        rows = [embedding_f.weight, embedding_b.weight[backward_rows]]  # (V, E_f), (V, E_b)
        model.embedding.weight.copy_(torch.cat(rows, dim=1))
        for key, tensor in ours.items():
            source = sources[key]
            if not key.startswith("weight_ih_l"):
                tensor.copy_(source)
                continue
            width = source.shape[1]   # forward reads its input's first block, reverse the last
            tensor.zero_()
            columns = slice(tensor.shape[1] - width, None) if key.endswith("_reverse") else slice(0, width)
            tensor[:, columns] = source
