"""Labelled texts for classification: readers, tokenizers (word / subword) and length-bucketed batches.

Readers return `(texts, labels)`, labels as strings:

    aclImdb folder   PATH/{pos,neg}/*.txt (or PATH/train/..., PATH/test/... given `split`): label = folder
    .jsonl           one JSON object a line; `text_column`, `label_column` name the fields
    .csv / .tsv      a header row; the same column names

Integer labels (IMDB's JSONL 0 / 1) become the strings "0", "1"; `label_vocabulary` orders them numerically.
`name_labels` maps label values to names (`data.label_names: {0: neg, 1: pos}`), so that predictions read
"neg" / "pos". An empty text, a missing column or an unreadable line is a ValueError naming the file and the
line.

Tokenizers map a text to ids with <pad> = 0 and <unk> = 1, and are JSON (saved inside the model file):

    word   lower-case, HTML line breaks `<br />` removed, words and punctuation split apart; tokens seen fewer
           than `min_freq` times, or beyond the `max_size` most frequent, become <unk>
    bpe / wordpiece   HuggingFace `tokenizers` trained on the training texts (same normalisation), no network
    pretrained_word   the word tokens, ids from a language model's word vocabulary (ULMFiT transfer: the
           classifier's token ids are the language model's); `language_model_text` writes texts in the form
           such a language model should be trained on (one text a line, the word tokens apart)

`bucket_batches` cuts a seeded permutation (ResumableShuffleSampler: a function of seed + epoch only, so the
engine's skip-by-index resume is exact) into batches of similar lengths: chunks of `batch_size * chunk`
examples are sorted by length and cut into batches, and the batches are shuffled with the same seed.

    >>> tok = WordTokenizer.build(["A good film.<br /><br />Good!", "bad film"], min_freq=1)
    >>> tok.tokens("A good film.<br /><br />Good!")
    ['a', 'good', 'film', '.', 'good', '!']
    >>> tok.encode("good, unseen film")  # film 2, good 3 (equal counts: alphabetical), "," and "unseen" <unk>
    [3, 1, 1, 2]
"""

from __future__ import annotations

import collections
import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch

from rnnkit.data.sampler import ResumableShuffleSampler
from rnnkit.data.sequences import LabelVocabulary

__all__ = ["PAD", "UNK", "read_labelled_texts", "text_format", "label_vocabulary", "name_labels",
           "WordTokenizer", "PretrainedWordTokenizer", "SubwordTokenizer", "make_tokenizer",
           "tokenizer_from_json", "language_model_text", "encode_texts", "bucket_batches", "sorted_batches"]

PAD, UNK = "<pad>", "<unk>"
_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
FORMATS = ("auto", "imdb", "jsonl", "csv", "tsv")


def text_format(path: str | Path, fmt: str = "auto") -> str:
    """The reader for `path`: the given format, or one from the path (a folder is the aclImdb layout)."""
    if fmt not in FORMATS:
        raise ValueError(f"data.format must be one of {FORMATS} for text, got {fmt!r}")
    if fmt != "auto":
        return fmt
    path = Path(path)
    if path.is_dir():
        return "imdb"
    suffix = path.suffix.lower()
    known = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv"}
    if suffix not in known:
        raise ValueError(f"{path}: cannot tell the format from {suffix!r}: expected a folder (aclImdb "
                         "layout), .jsonl, .csv or .tsv (or set data.format)")
    return known[suffix]


def read_labelled_texts(path: str | Path, fmt: str = "auto", text_column: str = "text",
                        label_column: str = "label", split: str = "train",
                        require_labels: bool = True) -> tuple[list[str], list[str | None]]:
    """(texts, labels) from a file or aclImdb folder (see the module docstring).

    Args:
        split: for an aclImdb root holding train/ and test/, which one to read.
        require_labels: False lets records without the label column through (label None), for predict.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such data file or folder: {path}")
    fmt = text_format(path, fmt)
    if fmt == "imdb":
        return _read_imdb_folder(path, split)
    records = _read_jsonl(path) if fmt == "jsonl" else _read_table(path, "\t" if fmt == "tsv" else ",")
    texts, labels = [], []
    for line, record in records:
        where = f"{path}, line {line}"
        if text_column not in record:
            raise ValueError(f"{where}: no column {text_column!r} (data.text_column); it has "
                             f"{sorted(record)}")
        text = record[text_column]
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{where}: expected a non-empty text in column {text_column!r}, got {text!r}")
        label = record.get(label_column)
        if require_labels and (label is None or label == ""):
            raise ValueError(f"{where}: no label in column {label_column!r} (data.label_column); "
                             f"it has {sorted(record)}")
        texts.append(text)
        labels.append(None if label is None or label == "" else str(label))
    if not texts:
        raise ValueError(f"{path} holds no records")
    return texts, labels


def _read_jsonl(path: Path):
    with open(path, encoding="utf-8") as f:
        for line, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {line}: not a JSON object: {e}") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {line}: expected a JSON object, got {type(record).__name__}")
            yield line, record


def _read_table(path: Path, delimiter: str):
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        if reader.fieldnames is None:
            raise ValueError(f"{path} is empty: expected a header row with the column names")
        for record in reader:
            yield reader.line_num, {k: v for k, v in record.items() if k is not None}


def _read_imdb_folder(path: Path, split: str) -> tuple[list[str], list[str]]:
    if (path / split).is_dir():
        path = path / split
    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and any(p.glob("*.txt")))
    if not classes:
        raise ValueError(f"{path}: expected the aclImdb layout, class folders (pos/, neg/) of .txt files "
                         f"(or {split}/pos, {split}/neg), found none")
    texts, labels = [], []
    for label in classes:
        for file in sorted((path / label).glob("*.txt")):
            text = file.read_text(encoding="utf-8")
            if not text.strip():
                raise ValueError(f"{file}: empty review")
            texts.append(text)
            labels.append(label)
    return texts, labels


def label_vocabulary(labels: Sequence[str], names: dict[str, str] | None = None) -> LabelVocabulary:
    """The labels' vocabulary: in the order of `names`' values when labels were named (`name_labels`), else
    numeric order when every label is an integer ("2" before "10"), else sorted."""
    distinct = set(labels)
    if names:
        return LabelVocabulary(tuple(dict.fromkeys(n for n in names.values() if n in distinct)))
    if all(re.fullmatch(r"-?\d+", x) for x in distinct):
        return LabelVocabulary(tuple(sorted(distinct, key=int)))
    return LabelVocabulary.build(distinct)


def name_labels(labels: Sequence[str | None], names: dict[str, str], where) -> list[str | None]:
    """Label values -> their names (`data.label_names`, e.g. {"0": "neg", "1": "pos"}); a label that already
    is one of the names passes (an aclImdb folder's neg / pos), None (no label) stays None, and any other
    value is a ValueError naming it, `where` and the mapping. No names: the labels as they are.

        >>> name_labels(["1", "0", "pos", None], {"0": "neg", "1": "pos"}, "test.jsonl")
        ['pos', 'neg', 'pos', None]
    """
    if not names:
        return list(labels)
    known = set(names.values())
    out = []
    for label in labels:
        if label is not None and label not in known:
            if label not in names:
                raise ValueError(f"{where}: label {label!r} is not in data.label_names {names} (expected one "
                                 f"of its values {sorted(names)} or names {sorted(known)})")
            label = names[label]
        out.append(label)
    return out


def normalise(text: str, lowercase: bool = True) -> str:
    """HTML line breaks to spaces, and lower-case."""
    text = _BREAK.sub(" ", text)
    return text.lower() if lowercase else text


class WordTokenizer:
    """Words and punctuation -> ids; <pad> = 0, <unk> = 1, then the words by falling frequency."""

    kind = "word"

    def __init__(self, vocabulary: Sequence[str], lowercase: bool = True):
        if list(vocabulary[:2]) != [PAD, UNK]:
            raise ValueError(f"a word vocabulary starts with {PAD!r}, {UNK!r}, got {list(vocabulary[:2])}")
        self.vocabulary, self.lowercase = list(vocabulary), lowercase
        self.index = {w: i for i, w in enumerate(self.vocabulary)}

    @classmethod
    def build(cls, texts: Sequence[str], min_freq: int = 2, max_size: int = 30000,
              lowercase: bool = True) -> WordTokenizer:
        if min_freq < 1 or max_size < 3:
            raise ValueError(f"expected min_freq >= 1 and max_size >= 3, got {min_freq} and {max_size}")
        counts = collections.Counter(w for t in texts for w in _WORD.findall(normalise(t, lowercase)))
        ranked = sorted((w for w, n in counts.items() if n >= min_freq), key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *ranked[: max_size - 2]], lowercase)

    def __len__(self) -> int:
        return len(self.vocabulary)

    def tokens(self, text: str) -> list[str]:
        return _WORD.findall(normalise(text, self.lowercase))

    def encode(self, text: str) -> list[int]:
        return [self.index.get(w, 1) for w in self.tokens(text)]

    def to_json(self) -> dict:
        return {"kind": self.kind, "vocabulary": self.vocabulary, "lowercase": self.lowercase}


class PretrainedWordTokenizer:
    """The word tokenizer's tokens with ids from a language model's word vocabulary (ULMFiT transfer).

    Token i of `vocabulary` has id i, as in the language model, so its embedding rows fit the classifier's
    ids; id 0 is a word here, not <pad> (padding is never read: lengths=). A word the vocabulary lacks becomes
    its `unk` token, or is left out when it has none (`tokens` then leaves it out too).

        >>> tok = PretrainedWordTokenizer(["the", "<eos>", "film", "good", "<unk>"], unk="<unk>")
        >>> tok.encode("The film,<br />good!"), tok.tokens("The film")
        ([0, 2, 4, 3, 4], ['the', 'film'])
    """

    kind = "pretrained_word"

    def __init__(self, vocabulary: Sequence[str], unk: str | None = None, lowercase: bool = True):
        self.vocabulary, self.unk, self.lowercase = list(vocabulary), unk, lowercase
        self.index = {w: i for i, w in enumerate(self.vocabulary)}
        if len(self.index) != len(self.vocabulary) or (unk is not None and unk not in self.index):
            raise ValueError(f"a pretrained word vocabulary needs distinct tokens, its unk token {unk!r} "
                             "among them")

    def __len__(self) -> int:
        return len(self.vocabulary)

    def tokens(self, text: str) -> list[str]:
        words = _WORD.findall(normalise(text, self.lowercase))
        return words if self.unk is not None else [w for w in words if w in self.index]

    def encode(self, text: str) -> list[int]:
        unk = self.index.get(self.unk) if self.unk is not None else None
        return [self.index.get(w, unk) for w in self.tokens(text)]

    def coverage(self, texts: Sequence[str]) -> float:
        """The fraction of the texts' word tokens the vocabulary holds (the rest are <unk> or left out)."""
        words = [w for t in texts for w in _WORD.findall(normalise(t, self.lowercase))]
        return sum(w in self.index for w in words) / max(1, len(words))

    def to_json(self) -> dict:
        return {"kind": self.kind, "vocabulary": self.vocabulary, "unk": self.unk,
                "lowercase": self.lowercase}


def language_model_text(texts: Sequence[str], lowercase: bool = True, reverse: bool = False) -> str:
    """Texts as a language model's word-level training text: one text a line, its word tokens (as the word
    tokenizer splits them) apart, so the model's words are the classifier's (`PretrainedWordTokenizer`).
    `reverse` writes each text's words last to first: the training text of a backward language model, the
    one a bidirectional classifier's reverse direction starts from (`model.init_from_backward`).

        >>> language_model_text(["A good film.<br />Good!", "Bad"])
        'a good film . good !\\nbad\\n'
        >>> language_model_text(["A good film."], reverse=True)
        '. film good a\\n'
    """
    lines = (_WORD.findall(normalise(t, lowercase)) for t in texts)
    return "".join(" ".join(reversed(words) if reverse else words) + "\n" for words in lines)


class SubwordTokenizer:
    """A HuggingFace `tokenizers` BPE or WordPiece model trained on the training texts; <pad> 0, <unk> 1."""

    def __init__(self, tokenizer, kind: str):
        self.tokenizer, self.kind = tokenizer, kind

    @classmethod
    def build(cls, texts: Sequence[str], kind: str = "bpe", vocab_size: int = 8000, min_freq: int = 2,
              lowercase: bool = True) -> SubwordTokenizer:
        from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers

        steps = [normalizers.Replace(Regex(_BREAK.pattern), " ")] + ([normalizers.Lowercase()] if lowercase
                                                                        else [])
        model = models.BPE(unk_token=UNK) if kind == "bpe" else models.WordPiece(unk_token=UNK)
        trainer_class = trainers.BpeTrainer if kind == "bpe" else trainers.WordPieceTrainer
        tokenizer = Tokenizer(model)
        tokenizer.normalizer = normalizers.Sequence(steps)
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()  # words and punctuation apart
        trainer = trainer_class(vocab_size=vocab_size, min_frequency=min_freq, special_tokens=[PAD, UNK],
                                show_progress=False)
        tokenizer.train_from_iterator(texts, trainer)
        return cls(tokenizer, kind)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def tokens(self, text: str) -> list[str]:
        return self.tokenizer.encode(text).tokens

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def to_json(self) -> dict:
        return {"kind": self.kind, "tokenizer": self.tokenizer.to_str()}


def make_tokenizer(texts: Sequence[str], kind: str, min_freq: int, max_size: int, lowercase: bool):
    """A word, bpe or wordpiece tokenizer trained on `texts` (max_size: vocabulary size)."""
    if kind == "word":
        return WordTokenizer.build(texts, min_freq, max_size, lowercase)
    if kind in ("bpe", "wordpiece"):
        return SubwordTokenizer.build(texts, kind, max_size, min_freq, lowercase)
    raise ValueError(f"data.tokenizer must be 'word', 'bpe' or 'wordpiece', got {kind!r}")


def tokenizer_from_json(data: dict):
    """Inverse of `to_json` of either tokenizer."""
    kind = data.get("kind") if isinstance(data, dict) else None
    if kind == "word":
        return WordTokenizer(data["vocabulary"], data.get("lowercase", True))
    if kind == PretrainedWordTokenizer.kind:
        return PretrainedWordTokenizer(data["vocabulary"], data.get("unk"), data.get("lowercase", True))
    if kind in ("bpe", "wordpiece"):
        from tokenizers import Tokenizer

        return SubwordTokenizer(Tokenizer.from_str(data["tokenizer"]), kind)
    raise ValueError(f"tokenizer JSON: expected kind 'word', 'pretrained_word', 'bpe' or 'wordpiece', got "
                     f"{kind!r}")


def encode_texts(tokenizer, texts: Sequence[str], max_length: int, truncate: str = "head") -> list[list[int]]:
    """Token ids of each text, cut to `max_length` (0 = no limit) keeping the head or the tail."""
    ids = tokenizer.encode_batch(texts) if hasattr(tokenizer, "encode_batch") else [tokenizer.encode(t)
                                                                                     for t in texts]
    out = []
    for i, seq in enumerate(ids):
        if not seq:
            raise ValueError(f"text {i} has no tokens after tokenisation: {texts[i][:60]!r}")
        if max_length and len(seq) > max_length:
            seq = seq[:max_length] if truncate == "head" else seq[-max_length:]
        out.append(seq)
    return out


def bucket_batches(lengths: Sequence[int], batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                   epoch: int = 0, chunk: int = 50) -> list[list[int]]:
    """Batches (lists of example indices) of similar lengths for epoch `epoch`, this rank's share.

    The order is a function of (seed, epoch) only: this rank's shard of the seeded permutation
    (ResumableShuffleSampler), chunks of batch_size * chunk examples sorted by length, cut into batches,
    and the batches shuffled with seed + epoch. Every rank gets the same number of batches.
    """
    shard = ResumableShuffleSampler(len(lengths), seed, rank, world_size, epoch).permutation()
    span = batch_size * chunk
    batches = []
    for start in range(0, len(shard), span):
        block = sorted(shard[start : start + span], key=lambda i: lengths[i])
        batches += [block[j : j + batch_size] for j in range(0, len(block), batch_size)]
    order = torch.randperm(len(batches), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [batches[j] for j in order]


def sorted_batches(lengths: Sequence[int], batch_size: int, rank: int = 0, world_size: int = 1
                   ) -> list[list[int]]:
    """Evaluation batches: this rank's examples (i = rank mod world_size) by length, cut into batches."""
    mine = sorted(range(rank, len(lengths), world_size), key=lambda i: lengths[i])
    return [mine[j : j + batch_size] for j in range(0, len(mine), batch_size)]
