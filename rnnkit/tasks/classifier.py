"""The sequence-classification task: a text or a numeric series in, one label out, trained by the engine.

Data (`data.path`, the training data; `rnnkit.data.labelled`, `rnnkit.data.ts_format`):
- text: an aclImdb folder (`PATH/{pos,neg}/*.txt`, or its root with train/ and test/), .jsonl, .csv or .tsv
  with `data.text_column` and `data.label_column`; tokenised at word level or by a BPE / WordPiece model
  trained on the training part (`data.tokenizer`), cut to `data.max_length` tokens.
- numeric: a UEA/UCR .ts file or an .npz (x, y, lengths); channels standardised with the training part's
  mean and standard deviation (`data.scale`).
Validation is `data.valid_path`, or a seeded, per-class `data.valid_fraction` of the training file. The
tokenizer, the labels and the scaler are fitted on the training part only and stored, as JSON, in the
model file and the run directory (vocabulary never leaks from validation or test data).

Batches hold sequences of similar lengths (bucketing), padded, with lengths= so that padding is never read;
their order comes from (trainer.seed, epoch) only, so a resumed run continues at the exact example.

Metrics: cross-entropy, accuracy and macro-F1 (torchmetrics) on validation, monitored: accuracy (max);
`rnnkit evaluate` adds per-class precision and recall and the confusion matrix (and a PNG), and with
`--baseline` the built-in non-neural baselines (rnnkit.baselines) fitted on the same training part.

Transfer (ULMFiT, Howard & Ruder 2018): `model.init_from` names a word-level language model trained by
`rnnkit train` (task language_model) on the same kind of text, best written by
`rnnkit.data.labelled.language_model_text` (one text a line, the word tokens apart). The classifier reads
its vocabulary (the token ids agree) and starts from exact copies of its embedding and encoder, whose sizes
must match (`model.embedding_size`, `model.encoder.*`). A bidirectional classifier starts its reverse
direction from a backward language model, `model.init_from_backward`, trained on the same texts with each
text's words reversed (`language_model_text(..., reverse=True)`); its embedding is the two side by side
(`copy_pretrained_bidirectional`). `finetune.unfreeze_steps` trains the top first (gradual unfreezing): only
the head until the first step, then the encoder's top layer too, and so on down, everything from the last
step on.

The data side (the `data` section, the stored `Encoding`, splits and batches) is tasks/classifier_data.py;
the report, its confusion PNG and the per-token explanation are tasks/classifier_report.py.

    >>> from rnnkit.tasks.classifier import ClassifierRunConfig
    >>> ClassifierRunConfig().model.pooling
    'last'
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
)

from rnnkit.data.labelled import (
    PretrainedWordTokenizer,
    bucket_batches,
    sorted_batches,
)
from rnnkit.data.sequences import LabelledSequences, pad_collate
from rnnkit.models.classifier import (
    ClassifierConfig,
    SequenceClassifier,
    copy_pretrained,
    copy_pretrained_bidirectional,
)
from rnnkit.tasks.classifier_data import (
    ClassifierDataConfig,
    Encoding,
    NumberedBatches,
    balanced_weights,
    crop_collate,
    dataset,
    format_for,
    label_ids,
    read_raw,
    stratified_split,
)
from rnnkit.tasks.classifier_report import classification_report, confusion_png, explain_html, token_effects
from rnnkit.train.checkpoint import CheckpointError, load_model_file
from rnnkit.train.config import OptimConfig, TrainerConfig, from_dict, to_dict
from rnnkit.train.metrics import MeanLoss, OnOutputs, StepOutput
from rnnkit.train.module import Task
from rnnkit.train.run import BuiltTask

__all__ = ["TASK", "ClassifierDataConfig", "FinetuneConfig", "ClassifierRunConfig", "Encoding", "Predictions",
           "TrainedClassifier", "build", "load_classifier", "token_effects", "unfreeze", "SPEC"]

TASK = "classifier"


@dataclass(frozen=True)
class FinetuneConfig:
    """The `finetune` section: how a classifier started from a language model (model.init_from) trains.

    Args:
        unfreeze_steps: gradual unfreezing (ULMFiT): steps s_1 < s_2 < ... at which the next layer group from
            the top starts to train (`SequenceClassifier.layer_groups`: head, encoder layer L-1, ..., layer
            0, embedding): before s_1 only the head trains, from s_1 the encoder's top layer too, and from the
            last s_k every group. () = everything trains from the start. The step comes with each training
            batch (epoch * batches per epoch + j), so a resumed run unfreezes at the same steps. Frozen
            weights get no gradient, so Adam leaves them exactly as they are. One process (DDP expects every
            weight to get a gradient).
    """

    unfreeze_steps: tuple[int, ...] = ()

    def __post_init__(self):
        steps = tuple(self.unfreeze_steps)
        if any(isinstance(s, bool) or not isinstance(s, int) for s in steps) or any(
                a >= b for a, b in zip((0, *steps), steps, strict=False)):
            raise ValueError(f"finetune.unfreeze_steps must be increasing integers >= 1, got {list(steps)}")
        object.__setattr__(self, "unfreeze_steps", steps)


@dataclass(frozen=True)
class ClassifierRunConfig:
    """The whole configuration of `rnnkit train` for a classifier (what configs/imdb_*.yaml hold)."""

    task: str = TASK
    model: ClassifierConfig = field(default_factory=ClassifierConfig)
    data: ClassifierDataConfig = field(default_factory=ClassifierDataConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        if self.task != TASK:
            raise ValueError(f"task must be {TASK!r} for a ClassifierRunConfig, got {self.task!r}")
        if self.model.init_from and self.data.path and self.data.numeric:
            raise ValueError(f"model.init_from starts from a language model, which reads text; data.path "
                             f"{self.data.path} holds numeric series")
        if self.model.init_from and self.data.tokenizer != "word":
            raise ValueError(f"model.init_from reads the language model's word vocabulary: data.tokenizer "
                             f"must be 'word', got {self.data.tokenizer!r}")


def upgrade_config(data: dict) -> dict:
    """Config files of earlier rnnkit versions in today's form (the classifier's first form is today's)."""
    return data


def training_parts(config: ClassifierRunConfig):
    """(train raw, train labels, valid raw, valid labels) as training sees them (same split every time)."""
    data = config.data
    if not data.path:
        raise ValueError("no training data: set data.path (rnnkit train --data PATH)")
    raw, labels = read_raw(data.path, data)
    if data.valid_path:
        valid_raw, valid_labels = read_raw(data.valid_path, data, split="test")
        return raw, labels, valid_raw, valid_labels
    if data.valid_fraction == 0:
        raise ValueError("no validation data: set data.valid_path or data.valid_fraction > 0 (the best model "
                         "is chosen on validation accuracy)")
    train, valid = stratified_split(labels, data.valid_fraction, config.trainer.seed)
    return ([raw[i] for i in train], [labels[i] for i in train], [raw[i] for i in valid],
            [labels[i] for i in valid])


# ---- the engine's task ----------------------------------------------------------------------------------


def classification_metrics(num_classes: int) -> dict:
    """The validation metrics: cross-entropy, accuracy, macro-F1."""
    return {
        "loss": MeanLoss(),
        "accuracy": OnOutputs(MulticlassAccuracy(num_classes=num_classes, average="micro"), "accuracy"),
        "macro_f1": OnOutputs(MulticlassF1Score(num_classes=num_classes, average="macro"), "macro_f1"),
    }


def unfreeze(model: SequenceClassifier, unfreeze_steps: tuple[int, ...], step: int) -> None:
    """Gradual unfreezing at optimiser step `step` (FinetuneConfig): the top 1 + k layer groups train after k
    of the unfreeze steps have passed, all of them after the last; the others keep requires_grad False."""
    groups = model.layer_groups()  # top (head) first
    passed = sum(step >= s for s in unfreeze_steps)
    trainable = len(groups) if passed == len(unfreeze_steps) else 1 + passed
    for i, group in enumerate(groups):
        for parameter in group:
            parameter.requires_grad_(i < trainable)


def make_loss(class_weights: torch.Tensor | None, unfreeze_steps: tuple[int, ...] = ()):
    def classifier_loss(model: SequenceClassifier, batch, carry) -> StepOutput:
        inputs, lengths, targets = batch[:3]  # (B, T[, F]), (B,), (B,); training batches add their step
        if unfreeze_steps and len(batch) == 4:
            unfreeze(model, unfreeze_steps, batch[3])
        logits = model(inputs, lengths)  # (B, K)
        weight = None if class_weights is None else class_weights.to(logits.device)
        loss = F.cross_entropy(logits, targets, weight=weight)
        return StepOutput(loss, None, len(targets), logits, targets)

    return classifier_loss


def load_pretrained(path: str, config: ClassifierRunConfig, embedding_size: int | None):
    """(language model, vocabulary) of a model.init_from* path, checked against the classifier config: a
    word-level language model with the classifier's cell, hidden size and layers, and embedding size unless
    None (a one-line ValueError naming the first size that differs)."""
    from rnnkit.tasks import resolve_model_path
    from rnnkit.tasks.language_model import load_language_model

    where = f"model.init_from {path}"
    try:
        lm, vocab, _ = load_language_model(resolve_model_path(path))
    except (CheckpointError, FileNotFoundError) as e:
        raise ValueError(f"{where}: expected a language-model file or run directory written by `rnnkit "
                         f"train` (task language_model): {e}") from None
    if vocab.level != "word":
        raise ValueError(f"{where}: the classifier reads word tokens, so it needs a word-level language "
                         f"model (data.level: word), got level {vocab.level!r}")
    ours = {f"encoder.{key}": getattr(config.model.encoder, key)
            for key in ("cell", "hidden_size", "num_layers")}
    if embedding_size is not None:
        ours["embedding_size"] = embedding_size
    for key, mine in ours.items():
        lm_value = lm.config
        for part in key.split("."):
            lm_value = getattr(lm_value, part)
        if mine != lm_value:
            raise ValueError(f"{where}: the language model has {key} {lm_value!r}, the classifier's "
                             f"model.{key} is {mine!r}: set it to {lm_value!r}")
    return lm, vocab


def pretrained_language_models(config: ClassifierRunConfig):
    """(forward language model, its word vocabulary as a tokenizer, backward) for model.init_from, where
    backward is None, or (backward language model, its row of each of the forward vocabulary's words) for
    model.init_from_backward: a word the backward model lacks takes its <unk> row."""
    model = config.model
    if model.encoder.bidirectional and not model.init_from_backward:
        raise ValueError(f"model.init_from {model.init_from}: a language model reads forward only; a "
                         "bidirectional classifier needs a backward one too (model.init_from_backward), or "
                         "set model.encoder.bidirectional false")
    bidirectional = bool(model.init_from_backward)  # then the two embeddings' sum is checked at the copy
    lm, vocab = load_pretrained(model.init_from, config, None if bidirectional else model.embedding_size)
    tokenizer = PretrainedWordTokenizer(vocab.tokens, vocab.unk, config.data.lowercase)
    if not bidirectional:
        return lm, tokenizer, None
    lm_b, vocab_b = load_pretrained(model.init_from_backward, config, None)
    index_b = {w: i for i, w in enumerate(vocab_b.tokens)}
    unk = index_b.get(vocab_b.unk, 0)
    rows = torch.tensor([index_b.get(w, unk) for w in vocab.tokens])
    missing = sum(w not in index_b for w in vocab.tokens)
    print(f"model.init_from_backward {model.init_from_backward}: {missing:,} of the forward model's "
          f"{len(vocab):,} words are not in its vocabulary (they start from its <unk> row)", file=sys.stderr)
    return lm, tokenizer, (lm_b, rows)


def build(config: ClassifierRunConfig, resume_dir: Path | None) -> BuiltTask:
    """The engine's build step: read and encode the data, fill in the model's sizes, make the Task; on resume
    the encoding (tokenizer, labels, scaler) is read back from the run directory's encoding.json. With
    model.init_from (a new run) the vocabulary is the language model's and the embedding and encoder start
    from its weights."""
    if config.finetune.unfreeze_steps and not config.model.init_from:  # (a preset may leave it to --set)
        raise ValueError("finetune.unfreeze_steps keeps a pretrained encoder frozen at first: it needs "
                         "model.init_from (a language model)")
    raw, labels, valid_raw, valid_labels = training_parts(config)
    lm = backward = None
    if resume_dir is not None:
        stored = resume_dir / "encoding.json"
        if not stored.is_file():
            raise FileNotFoundError(f"cannot resume: {stored} not found (is {resume_dir} a classifier run?)")
        encoding = Encoding.from_json(config.data, json.loads(stored.read_text(encoding="utf-8")))
    elif config.model.init_from:
        lm, tokenizer, backward = pretrained_language_models(config)
        print(f"model.init_from {config.model.init_from}: {len(tokenizer):,} words, "
              f"{tokenizer.coverage(raw):.1%} of the training tokens", file=sys.stderr)
        encoding = Encoding.fit(config.data, raw, labels, tokenizer)
    else:
        encoding = Encoding.fit(config.data, raw, labels)
    train = dataset(encoding, raw, labels, f"training data {config.data.path}")
    valid = dataset(encoding, valid_raw, valid_labels,
                    f"validation data {config.data.valid_path or '(held out)'}")
    K = len(encoding.labels)
    sizes = {"num_classes": K, "vocab_size": 0 if encoding.numeric else len(encoding.tokenizer),
             "num_features": train.num_features or 0}
    for key, value in sizes.items():
        if getattr(config.model, key) not in (0, value):
            raise ValueError(f"model.{key} is {getattr(config.model, key)} but the data give {value} "
                             "(set it to 0 to take it from the data)")
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, **sizes))
    weights = balanced_weights(train.labels, K) if config.data.class_weights == "balanced" else None
    data, seed = config.data, config.trainer.seed
    train_lengths = [len(s) for s in train.sequences]
    valid_lengths = [len(s) for s in valid.sequences]

    def train_batches(rank: int, world_size: int, epoch: int) -> NumberedBatches:
        batches = bucket_batches(train_lengths, data.batch_size, seed, rank, world_size, epoch,
                                 data.bucket_chunk)
        collate = crop_collate(data.truncate) if data.crop_train_batches else pad_collate
        return NumberedBatches(train, batches, collate, epoch)

    def valid_batches(rank: int, world_size: int, epoch: int) -> DataLoader:
        batches = sorted_batches(valid_lengths, 2 * data.batch_size, rank, world_size)
        return DataLoader(valid, batch_sampler=batches, collate_fn=pad_collate)

    model = SequenceClassifier(config.model)
    if backward is not None:
        copy_pretrained_bidirectional(model, (lm.embedding, lm.rnn), (backward[0].embedding, backward[0].rnn),
                                      backward[1], f"model.init_from {config.model.init_from} and "
                                      f"model.init_from_backward {config.model.init_from_backward}")
    elif lm is not None:
        copy_pretrained(model, lm.embedding, lm.rnn, f"model.init_from {config.model.init_from}")
    unfreeze_steps = config.finetune.unfreeze_steps
    groups = len(model.layer_groups())
    if len(unfreeze_steps) >= groups:
        raise ValueError(f"finetune.unfreeze_steps: the model has {groups} layer groups (head, "
                         f"{config.model.encoder.num_layers} encoder layers, embedding), so at most "
                         f"{groups - 1} steps, got {len(unfreeze_steps)}")
    task = Task(
        name=TASK,
        model=model,
        loss=make_loss(weights, unfreeze_steps),
        train_batches=train_batches,
        valid_batches=valid_batches,
        metrics=lambda: classification_metrics(K),
        monitor="accuracy",
        monitor_mode="max",
        tiebreak="loss",  # equal accuracies (a small validation set): the lower cross-entropy
        units={"loss": "cross-entropy (nats)", "accuracy": "accuracy", "macro_f1": "macro-F1"},
        metadata={"config": to_dict(config), "encoding": encoding.to_json()},
    )
    return BuiltTask(task, config, {"encoding.json": json.dumps(encoding.to_json(), ensure_ascii=False)})


# ---- a trained classifier -------------------------------------------------------------------------------


def load_classifier(path: str | Path) -> tuple[SequenceClassifier, Encoding, dict]:
    """A model file written by training -> (model in eval mode, encoding, metadata)."""
    state_dict, meta = load_model_file(path, task=TASK)
    try:
        config = from_dict(ClassifierRunConfig, upgrade_config(meta["config"]))
        encoding = Encoding.from_json(config.data, meta["encoding"])
    except KeyError as e:
        raise CheckpointError(f"{path}: classifier metadata is incomplete: no {e.args[0]!r} entry (not "
                              "written by `rnnkit train`?)") from e
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: classifier metadata is invalid: {e}") from e
    model = SequenceClassifier(config.model)
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model its metadata describes: {e}") from e
    return model.eval(), encoding, meta


@dataclass
class Predictions:
    """labels[i] is the predicted label of input i; probabilities (N, K) over `classes`."""

    labels: list[str]
    probabilities: np.ndarray
    classes: tuple[str, ...]

    def rows(self) -> list[dict]:
        return [{"label": label, "probabilities": dict(zip(self.classes, map(float, p), strict=True))}
                for label, p in zip(self.labels, self.probabilities, strict=True)]


@dataclass
class TrainedClassifier:
    """A trained classifier, ready to use (`rnnkit.load(path)` returns one for a classifier file).

        >>> clf = rnnkit.load("runs/imdb")                                     # doctest: +SKIP
        >>> clf.predict(["A wonderful film.", "Dull and far too long."]).labels   # doctest: +SKIP
        ['pos', 'neg']
        >>> clf.evaluate("../shared/data/imdb/test.jsonl")["accuracy"]          # doctest: +SKIP
    """

    model: SequenceClassifier
    encoding: Encoding
    metadata: dict
    path: Path

    @classmethod
    def from_file(cls, path: str | Path) -> TrainedClassifier:
        model, encoding, meta = load_classifier(path)
        return cls(model, encoding, meta, Path(path))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.encoding.labels.labels

    @torch.no_grad()
    def probabilities(self, sequences: list, batch_size: int = 64) -> np.ndarray:
        """(N, K) class probabilities of encoded sequences, batched by length (order kept)."""
        out = np.zeros((len(sequences), len(self.classes)), dtype=np.float64)
        data = LabelledSequences(sequences, [0] * len(sequences))
        device = next(self.model.parameters()).device
        for batch in sorted_batches([len(s) for s in data.sequences], batch_size):
            inputs, lengths, _ = pad_collate([data[i] for i in batch])
            out[batch] = torch.softmax(self.model(inputs.to(device), lengths), dim=-1).double().cpu().numpy()
        return out

    def predict(self, inputs, batch_size: int = 64) -> Predictions:
        """Labels and class probabilities of texts (a str or a list of them) or series ((T, F) arrays)."""
        if isinstance(inputs, str) or (isinstance(inputs, np.ndarray) and inputs.ndim == 2):
            inputs = [inputs]
        probabilities = self.probabilities(self.encoding.sequences(list(inputs)), batch_size)
        labels = [self.classes[k] for k in probabilities.argmax(axis=1)]
        return Predictions(labels, probabilities, self.classes)

    def evaluate(self, path: str | Path, batch_size: int = 64) -> dict:
        """Accuracy, macro-F1, per-class precision / recall and confusion matrix (rows: true) on data."""
        return classification_report(*self.scored(path, batch_size), self.classes)

    def scored(self, path: str | Path, batch_size: int = 64) -> tuple[np.ndarray, list[int]]:
        """(class probabilities (N, K), label ids (N,)) of every example of a labelled data file."""
        data = self.encoding.data
        raw, labels = read_raw(path, data, split="test", fmt=format_for(path, data))
        data = dataset(self.encoding, raw, labels, str(path))
        return self.probabilities(data.sequences, batch_size), data.labels

    def explain(self, text: str) -> dict:
        """The model's running opinion: class probabilities after each token (the model run on every prefix),
        and the attention weights over the whole text when pooling is attention.

        Returns: {"tokens": [str], "probabilities": (T, K) array, "attention": (T,) array or None}.
        """
        if self.encoding.numeric:
            raise ValueError("explain reads texts; this classifier reads numeric series")
        ids = self.encoding.sequences([text])[0]
        tokenizer = self.encoding.tokenizer
        tokens = tokenizer.tokens(text)
        tokens = (tokens[: len(ids)] if self.encoding.data.truncate == "head" else tokens[-len(ids):])
        prefixes = [ids[: t + 1] for t in range(len(ids))]
        running = self.probabilities(prefixes)
        attention = None
        if self.model.config.pooling == "attention":
            with torch.no_grad():
                self.model(torch.tensor([ids]), torch.tensor([len(ids)]))
            attention = self.model.attention_weights[0].numpy()
        return {"tokens": tokens, "probabilities": running, "attention": attention}


# ---- the command line: rnnkit train / evaluate / predict for a classifier ------------------------------

TRAIN_FLAGS = (
    ("--batch-size", "data.batch_size", int, "sequences per batch (per process)"),
    ("--cell", "model.encoder.cell", str, "rnn, lstm, gru, mingru or minlstm"),
    ("--hidden-size", "model.encoder.hidden_size", int, "width of each recurrent layer (H)"),
    ("--pooling", "model.pooling", str, "last, mean, max or attention"),
    ("--max-length", "data.max_length", int, "keep at most this many tokens / steps of a sequence"),
    ("--tokenizer", "data.tokenizer", str, "word, bpe or wordpiece"),
)

BASELINES = ("tfidf", "nbsvm", "rocket", "knn")


def add_evaluate_arguments(parser) -> None:
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="labelled data read as in training: .jsonl/.csv/.tsv, an aclImdb folder (its "
                        "test/ part), .ts or .npz")
    parser.add_argument("--batch-size", type=int, default=64, help="sequences per batch (default: 64)")
    parser.add_argument("--confusion-png", metavar="PNG", default=None,
                        help="write the confusion matrix here")
    parser.add_argument("--baseline", action="append", choices=BASELINES, default=None,
                        help="also fit this non-neural baseline on the model's training part and score it on "
                        "the same data (text: tfidf, nbsvm; series: rocket, knn; repeatable)")
    parser.add_argument("--ensemble", action="store_true",
                        help="with --baseline: also score the mean of the model's and each baseline's class "
                        "probabilities (equal weights, nothing tuned), reported as model+NAME")


def evaluate_command(args) -> int:
    """`rnnkit evaluate`: accuracy, macro-F1, per-class precision/recall, confusion matrix (and baselines)."""
    if args.ensemble and not args.baseline:
        raise ValueError("--ensemble averages the model with the baselines: give --baseline NAME too")
    classifier = TrainedClassifier.from_file(args.model)
    p_model, targets = classifier.scored(args.data, args.batch_size)
    report = classification_report(p_model, targets, classifier.classes)
    results = {"model": report}
    for name in args.baseline or []:
        p_baseline = baseline_probabilities(name, classifier, args.data)
        results[name] = classification_report(p_baseline, targets, classifier.classes)
        if args.ensemble:
            results[f"model+{name}"] = classification_report((p_model + p_baseline) / 2, targets,
                                                             classifier.classes)
    if args.confusion_png:
        confusion_png(report, args.confusion_png, f"{Path(args.model).parent.name} on {Path(args.data).name}")
    if args.json:
        print(json.dumps(results if args.baseline else report))
        return 0
    for name, r in results.items():
        print(f"{name}: {args.data} ({r['examples']} examples): accuracy {r['accuracy']:.4f}, "
              f"macro-F1 {r['macro_f1']:.4f}")
    print("per class: " + ", ".join(f"{c} (precision {report['precision'][c]:.3f}, recall "
                                    f"{report['recall'][c]:.3f})" for c in report["classes"]))
    print(f"confusion matrix (rows true, columns predicted; {' '.join(report['classes'])}): "
          f"{report['confusion_matrix']}")
    return 0


def baseline_probabilities(name: str, classifier: TrainedClassifier, data_path) -> np.ndarray:
    """Fit baseline `name` on the classifier's training part (same split as training) -> its class
    probabilities (N, K) for the examples of data_path, in the file's order."""
    from rnnkit.baselines import fit_baseline

    config = from_dict(ClassifierRunConfig, upgrade_config(classifier.metadata["config"]))
    raw, labels, _, _ = training_parts(config)
    fmt = format_for(data_path, config.data)
    test_raw, _ = read_raw(data_path, config.data, split="test", fmt=fmt)
    encoding = classifier.encoding
    if encoding.numeric != (name in ("rocket", "knn")):
        kind = "numeric series" if encoding.numeric else "text"
        raise ValueError(f"baseline {name!r} does not read {kind}: expected one of "
                         f"{['rocket', 'knn'] if encoding.numeric else ['tfidf', 'nbsvm']}")
    y_train = label_ids(encoding, labels, config.data.path)
    if encoding.numeric:
        raw, test_raw = (encoding.sequences(raw), encoding.sequences(test_raw))  # scaled as the RNN sees them
    model = fit_baseline(name, raw, y_train, len(encoding.labels), seed=config.trainer.seed)
    return model.predict_proba(test_raw)


def add_predict_arguments(parser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    parser.add_argument("--input", metavar="FILE", default=None,
                        help="classify every record of a .jsonl/.csv/.tsv (its text column), .ts or .npz "
                        "file")
    parser.add_argument("--output", metavar="FILE", default=None,
                        help="write label and class probabilities per input as .csv or .jsonl "
                        "(default: JSON lines on stdout)")
    parser.add_argument("--explain", metavar="HTML", default=None,
                        help="for one text: write its words coloured by how each moved the predicted class's "
                        "probability (and the attention weights), as HTML")


def predict_command(args) -> int:
    """`rnnkit predict MODEL "text" ...` or `--input FILE`: label and probabilities per input."""
    classifier = TrainedClassifier.from_file(args.model)
    inputs = list(args.texts)
    if args.input:
        data = classifier.encoding.data
        fmt = format_for(args.input, data)
        raw, _ = read_raw(args.input, data, split="test", require_labels=False, fmt=fmt)
        inputs += raw
    if not inputs:
        raise ValueError("nothing to classify: give texts after MODEL or --input FILE")
    rows = classifier.predict(inputs).rows()
    if args.explain:
        if len(inputs) != 1 or not isinstance(inputs[0], str):
            raise ValueError(f"--explain takes exactly one text, got {len(inputs)} inputs")
        explain_html(classifier, inputs[0], args.explain)
    if args.output:
        write_predictions(rows, args.output, classifier.classes)
    else:
        for i, row in enumerate(rows):
            print(json.dumps({"index": i, **row}, ensure_ascii=False))
    return 0


def write_predictions(rows: list[dict], path: str | Path, classes: tuple[str, ...]) -> None:
    path = Path(path)
    if path.suffix.lower() == ".jsonl":
        path.write_text("".join(json.dumps({"index": i, **r}, ensure_ascii=False) + "\n"
                                for i, r in enumerate(rows)), encoding="utf-8")
    elif path.suffix.lower() == ".csv":
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["index", "label", *[f"p_{c}" for c in classes]])
            for i, r in enumerate(rows):
                writer.writerow([i, r["label"], *[f"{r['probabilities'][c]:.6f}" for c in classes]])
    else:
        raise ValueError(f"--output must end in .csv or .jsonl, got {path.name!r}")


def _spec():
    from rnnkit.tasks import TaskSpec

    return TaskSpec(
        name=TASK,
        summary="a sequence classifier on texts (IMDB, CSV/JSONL) or numeric series (.ts, .npz): one label "
        "per sequence",
        config_class=ClassifierRunConfig,
        build=build,
        upgrade_config=upgrade_config,
        train_flags=TRAIN_FLAGS,
        add_evaluate_arguments=add_evaluate_arguments,
        evaluate=evaluate_command,
        add_predict_arguments=add_predict_arguments,
        predict=predict_command,
        load=TrainedClassifier.from_file,
    )


SPEC = _spec()
