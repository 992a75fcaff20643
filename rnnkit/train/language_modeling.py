"""The language-modelling task: text -> vocabulary -> token streams -> `LanguageModel`, trained by the engine.

Data (`data.dataset`):
- "text": `data.path` is a text file (or a folder of .txt files) split in time into the first (1 - f) for
  training and the last f for validation, or a folder holding train.txt and valid.txt (WikiText layout), used
  as given.
- "tang_poems": `data.path` is the Tang poems folder (or one of its files; rnnkit.data.datasets.tang_poems)
  in `data.script`; the regular poems (`data.poem_chars` characters per line, `data.poem_lines` lines) are
  de-duplicated, shuffled with `trainer.seed` and split by whole poems, each wrapped as ^poem$
  (rnnkit.data.poems). The model file's config then says it is a poem model (`training_data`).
The vocabulary is built from all the text read, so validation never meets an unknown character.

Training is stateful truncated BPTT: each batch continues the rows of the previous one, and the recurrent
state is carried across batches with its graph cut (`detach_state`).

    >>> from rnnkit.train.language_modeling import LanguageModelRunConfig
    >>> LanguageModelRunConfig().model.cell
    'lstm'
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pytorch_lightning as pl
import torch

from rnnkit.data.datasets import tang_poems
from rnnkit.data.poems import poem_corpus, regular_poems, split_poems
from rnnkit.data.text import TokenStream, Vocabulary, read_text, split
from rnnkit.models.language_model import (
    LanguageModel,
    LanguageModelConfig,
    detach_state,
    language_model_metrics,
)

from .checkpoint import CheckpointError, load_model_file
from .config import OptimConfig, TrainerConfig, dump_yaml, to_dict
from .module import Task
from .trainer import FitResult, evaluate, fit, make_run_dir, write_command

__all__ = [
    "TASK",
    "TextDataConfig",
    "LanguageModelRunConfig",
    "language_model_task",
    "train_language_model",
    "load_language_model",
    "training_data",
    "evaluate_language_model",
    "gradient_norm_figure",
]

TASK = "language_model"
DATASETS = ("text", "tang_poems")


@dataclass(frozen=True)
class TextDataConfig:
    """Where the text is and how it is cut into batches.

    Args:
        path: a text file, a folder of .txt files, or a folder with train.txt and valid.txt; for
            dataset "tang_poems" the folder holding tang_poems.jsonl / tang_poems.simplified.tsv.
        dataset: "text" (plain text) or "tang_poems" (regular Tang poems, each ^poem$; char level only).
        script: tang_poems: "traditional" (the source) or "simplified" (OpenCC t2s).
        poem_chars: tang_poems: keep poems of 5 or 7 characters per line (0 = both).
        poem_lines: tang_poems: keep poems of 4 or 8 lines (0 = both).
        level: "char" or "word" tokens.
        valid_fraction: the fraction held out for validation: the last part of a single text, or a random
            set of whole poems.
        batch_size: B, parallel rows of the stream per process.
        bptt: T, time steps per batch (the truncation length of BPTT).
        min_freq: word level: drop rarer words (they become <unk>).
        max_vocab: word level: keep at most this many tokens (0 = no limit).
    """

    path: str = ""
    dataset: str = "text"
    script: str = "traditional"
    poem_chars: int = 0
    poem_lines: int = 0
    level: str = "char"
    valid_fraction: float = 0.1
    batch_size: int = 32
    bptt: int = 64
    min_freq: int = 1
    max_vocab: int = 0

    def __post_init__(self):
        if self.level not in ("char", "word"):
            raise ValueError(f"data.level must be 'char' or 'word', got {self.level!r}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"data.valid_fraction must be in (0, 1), got {self.valid_fraction}")
        for name in ("batch_size", "bptt", "min_freq"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_vocab < 0:
            raise ValueError(f"data.max_vocab must be >= 0, got {self.max_vocab}")
        if self.dataset not in DATASETS:
            raise ValueError(f"data.dataset must be 'text' or 'tang_poems', got {self.dataset!r}")
        if self.script not in ("traditional", "simplified"):
            raise ValueError(f"data.script must be 'traditional' or 'simplified', got {self.script!r}")
        if self.poem_chars not in (0, 5, 7) or self.poem_lines not in (0, 4, 8):
            raise ValueError(
                "data.poem_chars must be 0 (both), 5 or 7 and data.poem_lines 0 (both), 4 or 8, got "
                f"{self.poem_chars} and {self.poem_lines}"
            )
        if self.dataset == "tang_poems" and self.level != "char":
            raise ValueError(f"data.dataset 'tang_poems' is char level, got data.level {self.level!r}")
        if self.dataset == "text" and (self.poem_chars or self.poem_lines):
            raise ValueError(
                "data.poem_chars and data.poem_lines filter data.dataset 'tang_poems', got dataset 'text' "
                f"with poem_chars={self.poem_chars}, poem_lines={self.poem_lines}"
            )


@dataclass(frozen=True)
class LanguageModelRunConfig:
    """The whole configuration of `rnnkit train` for a language model (what configs/*.yaml hold)."""

    task: str = TASK
    model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    data: TextDataConfig = field(default_factory=TextDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        if self.task != TASK:
            raise ValueError(
                f"task must be {TASK!r} (the only task `rnnkit train` knows so far), got {self.task!r}"
            )


def read_corpus(data: TextDataConfig, seed: int = 0) -> tuple[str, str | None]:
    """(train text, valid text) for a folder with train.txt/valid.txt or for poems (split with `seed`),
    else (all text, None)."""
    if not data.path:
        raise ValueError("no training text: give --data PATH (or data.path in the config)")
    if data.dataset == "tang_poems":
        return read_poems(data, seed)
    path = Path(data.path)
    if path.is_dir() and (path / "train.txt").is_file() and (path / "valid.txt").is_file():
        return read_text(path / "train.txt"), read_text(path / "valid.txt")
    return read_text(path), None


def read_poems(data: TextDataConfig, seed: int) -> tuple[str, str]:
    """(train, valid) poem streams "^poem$^poem$...": the regular poems of the form asked for, distinct,
    shuffled with `seed` and split by whole poems (`data.valid_fraction` of them validate)."""
    poems = tang_poems(data.path, script=data.script)
    kept = regular_poems(
        poems,
        chars=[data.poem_chars or 5, data.poem_chars or 7],
        lines=[data.poem_lines or 4, data.poem_lines or 8],
    )
    if len(kept) < 2:
        raise ValueError(
            f"{data.path} ({data.script}) holds {len(kept)} regular poems with poem_chars={data.poem_chars}, "
            f"poem_lines={data.poem_lines} (of {len(poems)} poems); need at least 2"
        )
    train, valid = split_poems(kept, data.valid_fraction, seed)
    return poem_corpus(train), poem_corpus(valid)


def _token_ids(
    data: TextDataConfig, vocab: Vocabulary | None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, Vocabulary]:
    train_text, valid_text = read_corpus(data, seed)
    if vocab is None:
        vocab = Vocabulary.build(
            train_text + (valid_text or ""),
            level=data.level,
            min_freq=data.min_freq,
            max_size=data.max_vocab or None,
        )
    if valid_text is None:
        train_ids, valid_ids = split(torch.tensor(vocab.encode(train_text)), data.valid_fraction)
    else:
        train_ids, valid_ids = torch.tensor(vocab.encode(train_text)), torch.tensor(vocab.encode(valid_text))
    return train_ids, valid_ids, vocab


def lm_loss(model: LanguageModel, batch, carry):
    """One TBPTT window: continue from the carried state with its graph cut; returns (loss, state, tokens)."""
    inputs, targets = batch  # (B, T), (B, T)
    _, state, loss = model(inputs, detach_state(carry), targets)
    return loss, state, targets.numel()


def language_model_task(config: LanguageModelRunConfig, vocab: Vocabulary | None = None):
    """Build the Task (model, streams, metrics) and the config with model.vocab_size filled in."""
    train_ids, valid_ids, vocab = _token_ids(config.data, vocab, config.trainer.seed)
    if config.model.vocab_size not in (0, len(vocab)):
        raise ValueError(
            f"model.vocab_size is {config.model.vocab_size} but the data's vocabulary has {len(vocab)} "
            "tokens (set it to 0 to take it from the data)"
        )
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=len(vocab)))
    data = config.data

    def train_batches(rank: int, world_size: int) -> TokenStream:
        return TokenStream(train_ids, data.batch_size, data.bptt, rank=rank, world_size=world_size)

    def valid_batches(rank: int, world_size: int) -> TokenStream:
        batch_size = max(1, min(data.batch_size, (len(valid_ids) - 1) // (world_size * data.bptt)))
        return TokenStream(valid_ids, batch_size, data.bptt, rank=rank, world_size=world_size)

    task = Task(
        name=TASK,
        model=LanguageModel(config.model),
        loss=lm_loss,
        train_batches=train_batches,
        valid_batches=valid_batches,
        metrics=language_model_metrics,
        metadata={"config": to_dict(config), "vocabulary": vocab.to_json()},
    )
    return task, config, vocab


def train_language_model(
    config: LanguageModelRunConfig,
    resume_dir: str | Path | None = None,
    argv: list[str] | None = None,
    callbacks: list | None = None,
) -> FitResult:
    """Train a language model; `resume_dir` continues that run exactly (same config from its config.yaml)."""
    vocab = None
    if resume_dir is not None:
        run_dir = Path(resume_dir)
        vocab_file = run_dir / "vocabulary.json"
        if not vocab_file.is_file():
            raise FileNotFoundError(
                f"cannot resume: {vocab_file} not found (is {run_dir} an rnnkit run directory?)"
            )
        vocab = Vocabulary.from_json(json.loads(vocab_file.read_text(encoding="utf-8")))
    if (
        resume_dir is None and config.data.path and Path(config.data.path).exists()
    ):  # resumable from any folder
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, path=str(Path(config.data.path).resolve()))
        )
    pl.seed_everything(config.trainer.seed, verbose=False)
    task, config, vocab = language_model_task(config, vocab)
    if resume_dir is None:
        run_dir = make_run_dir(config.trainer, TASK)
    if pl.utilities.rank_zero_only.rank == 0:
        dump_yaml(config, run_dir / "config.yaml")
        (run_dir / "vocabulary.json").write_text(
            json.dumps(vocab.to_json(), ensure_ascii=False), encoding="utf-8"
        )
        write_command(run_dir, argv)
    return fit(
        task, config.optim, config.trainer, run_dir, resume=resume_dir is not None, callbacks=callbacks
    )


def load_language_model(
    path: str | Path, map_location: str = "cpu"
) -> tuple[LanguageModel, Vocabulary, dict]:
    """Load a model file written by training -> (model in eval mode, vocabulary, metadata)."""
    state_dict, meta = load_model_file(path, task=TASK)
    try:
        model_config = LanguageModelConfig(**meta["config"]["model"])
        vocab = Vocabulary.from_json(meta["vocabulary"])
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path}: language-model metadata is incomplete: {e!r}") from e
    model = LanguageModel(model_config)
    try:
        model.load_state_dict({k: v.to(map_location) for k, v in state_dict.items()})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model its metadata describes: {e}") from e
    return model.eval(), vocab, meta


def training_data(meta: dict) -> TextDataConfig | None:
    """The data config a model file was trained with (from its metadata), or None when the file records none
    (a model saved by hand rather than by `rnnkit train`).

    `training_data(meta).dataset == "tang_poems"` marks a poem model; files from before poems were a
    dataset read as dataset "text".
    """
    data = meta.get("config", {}).get("data")
    return None if data is None else TextDataConfig(**data)


def evaluate_language_model(
    checkpoint: str | Path,
    data_path: str | Path,
    split_name: str = "valid",
    batch_size: int = 0,
    bptt: int = 0,
    accelerator: str = "auto",
    progress_bar: bool = True,
) -> dict[str, float]:
    """Cross-entropy (nats), bits per token and perplexity of a trained model on text.

    Args:
        checkpoint: a model file (model.safetensors of a run).
        data_path: text file or folder, read as in training.
        split_name: "valid" (the training run's held-out part), "train", or "all" (the whole text).
        batch_size, bptt: 0 = as in training.
    """
    model, vocab, meta = load_language_model(checkpoint)
    data = TextDataConfig(**meta["config"]["data"])
    data = dataclasses.replace(
        data, path=str(data_path), batch_size=batch_size or data.batch_size, bptt=bptt or data.bptt
    )
    if split_name not in ("valid", "train", "all"):
        raise ValueError(f"split must be 'valid', 'train' or 'all', got {split_name!r}")
    train_ids, valid_ids, _ = _token_ids(data, vocab, meta["config"].get("trainer", {}).get("seed", 0))
    ids = {"train": train_ids, "valid": valid_ids, "all": torch.cat([train_ids, valid_ids])}[split_name]
    rows = max(1, min(data.batch_size, (len(ids) - 1) // data.bptt))
    stream = TokenStream(ids, rows, data.bptt)
    task = Task(
        name=TASK,
        model=model,
        loss=lm_loss,
        train_batches=lambda r, w: [],
        valid_batches=lambda r, w: stream,
        metrics=language_model_metrics,
    )
    metrics = evaluate(task, TrainerConfig(accelerator=accelerator, devices=1, progress_bar=progress_bar))
    metrics["valid_tokens"] = float(stream.targets.numel())  # the remainder that fills no row is not scored
    return metrics


def gradient_norm_figure(
    checkpoints: dict[str, str | Path],
    data_path: str | Path,
    out_png: str | Path,
    steps: int = 100,
    batch_size: int = 16,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Vanishing gradients made visible: ||dL_T/dh_t|| per step, several trained models, the same windows.

    Args:
        checkpoints: name -> model file, e.g. {"rnn": ..., "gru": ..., "lstm": ...} trained on the same text.
        data_path: the text; `batch_size` windows of `steps` + 1 tokens are drawn from it with `seed`.
        out_png: where the log-scale plot goes.
    Returns:
        name -> (steps - 1,) gradient norms (see `rnnkit.train.plots.gradient_norms_through_time`).
    """
    from .plots import gradient_norms_through_time, plot_gradient_norms

    text = read_text(data_path)
    norms = {}
    for name, path in checkpoints.items():
        model, vocab, _ = load_language_model(path)
        ids = torch.tensor(vocab.encode(text))
        if len(ids) < steps + 1:
            raise ValueError(f"{data_path} has {len(ids)} tokens, fewer than steps + 1 = {steps + 1}")
        starts = torch.randint(
            0, len(ids) - steps, (batch_size,), generator=torch.Generator().manual_seed(seed)
        )
        windows = torch.stack([ids[s : s + steps + 1] for s in starts.tolist()])  # (B, T + 1)
        norms[name] = gradient_norms_through_time(model, windows[:, :-1], windows[:, -1])
    plot_gradient_norms(norms, out_png, title=f"gradient norm through time, {Path(data_path).name}")
    return norms
