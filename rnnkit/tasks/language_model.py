"""The language-modelling task: text -> vocabulary -> token streams -> `LanguageModel`, trained by the engine.

Data (`data.dataset`):
- "text": `data.path` is a text file (or a folder of .txt files) split in time into the first (1 - f) for
  training and the last f for validation, or a folder holding train.txt and valid.txt (WikiText layout), used
  as given.
- "tang_poems": `data.path` is the Tang poems folder (or one of its files; rnnkit.data.datasets.tang_poems)
  in `data.script`; the regular poems (`data.poem_chars` characters per line, `data.poem_lines` lines) are
  de-duplicated, shuffled with `trainer.seed` and split by whole poems, each wrapped as ^poem$
  (rnnkit.data.poems). The model file's config then says it is a poem model (`training_data`).
The vocabulary (`data.level`): characters or words, built from all the text read, so validation never meets
an unknown token; or subwords, a BPE trained on the training text only and stored in the model file.

Training is stateful truncated BPTT: each batch continues the rows of the previous one, and the recurrent
state is carried across batches with its graph cut (`detach_state`).

Metrics: mean cross-entropy in nats, bits per token and perplexity, token-weighted over the validation stream;
the bits are named after the level's token (`BITS`): bpc (per character), bpw (per word), bpt (per subword
token), so a char model logs valid_bpc and a word model valid_bpw.

    >>> from rnnkit.tasks.language_model import LanguageModelRunConfig
    >>> LanguageModelRunConfig().model.encoder.cell
    'lstm'
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rnnkit.data.corpus import TextDataConfig, evaluation_ids, token_ids
from rnnkit.data.text import UNKNOWN, TokenStream, Vocabulary, read_text
from rnnkit.models.language_model import LanguageModel, LanguageModelConfig, upgrade_model_config
from rnnkit.nn.state import detach_state
from rnnkit.train.checkpoint import CheckpointError, load_model_file
from rnnkit.train.config import OptimConfig, TrainerConfig, from_dict, to_dict
from rnnkit.train.metrics import MeanLoss, StepOutput
from rnnkit.train.module import Task
from rnnkit.train.run import BuiltTask, train_run
from rnnkit.train.trainer import FitResult, evaluate

__all__ = [
    "TASK",
    "TextDataConfig",
    "LanguageModelRunConfig",
    "CrossEntropy",
    "BITS",
    "units",
    "upgrade_config",
    "language_model_task",
    "TrainedLanguageModel",
    "train_language_model",
    "load_language_model",
    "training_data",
    "evaluate_language_model",
    "gradient_norm_figure",
]

TASK = "language_model"


@dataclass(frozen=True)
class LanguageModelRunConfig:
    """The whole configuration of `rnnkit train` for a language model (what its presets hold)."""

    task: str = TASK
    model: LanguageModelConfig = field(default_factory=LanguageModelConfig)
    data: TextDataConfig = field(default_factory=TextDataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self):
        if self.task != TASK:
            raise ValueError(f"task must be {TASK!r} for a LanguageModelRunConfig, got {self.task!r}")


def upgrade_config(data: dict) -> dict:
    """A run config (config.yaml, or a model file's metadata) of any earlier rnnkit in today's form: the model
    section of files written before the encoder section is flat (`upgrade_model_config`)."""
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        return {**data, "model": upgrade_model_config(data["model"])}
    return data


# The name and unit of loss / ln 2 at each level: what one token of the vocabulary is.
BITS = {"char": ("bpc", "bits per character"), "word": ("bpw", "bits per word"),
        "subword": ("bpt", "bits per token")}


class CrossEntropy(MeanLoss):
    """Token-weighted mean cross-entropy -> {loss (nats), bits (loss / ln 2, named by `BITS[level]`: bpc,
    bpw or bpt), ppl (exp)}."""

    def __init__(self, level: str = "char", **kwargs):
        super().__init__(**kwargs)
        self.bits = BITS[level][0]

    def compute(self) -> dict[str, float]:
        loss = self.mean()
        return {"loss": loss, self.bits: loss / math.log(2.0), "ppl": math.exp(min(loss, 700.0))}


def units(level: str) -> dict[str, str]:
    """Metric name -> axis label of the plots, for a vocabulary of `level`."""
    bits, unit = BITS[level]
    return {"loss": "cross-entropy (nats)", bits: unit, "ppl": "perplexity"}


def lm_loss(model: LanguageModel, batch, carry):
    """One TBPTT window: continue from the carried state with its graph cut; returns (loss, state, tokens)."""
    inputs, targets = batch  # (B, T), (B, T)
    _, state, loss = model(inputs, detach_state(carry), targets)
    return StepOutput(loss, state, targets.numel())


def language_model_task(config: LanguageModelRunConfig, vocab: Vocabulary | None = None):
    """Build the Task (model, streams, metrics) and the config with model.vocab_size filled in."""
    train_ids, valid_ids, vocab = token_ids(config.data, vocab, config.trainer.seed)
    if config.model.vocab_size not in (0, len(vocab)):
        raise ValueError(
            f"model.vocab_size is {config.model.vocab_size} but the data's vocabulary has {len(vocab)} "
            "tokens (set it to 0 to take it from the data)"
        )
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, vocab_size=len(vocab)))
    data = config.data

    def train_batches(rank: int, world_size: int, epoch: int) -> TokenStream:  # the same stream every epoch
        return TokenStream(train_ids, data.batch_size, data.bptt, rank=rank, world_size=world_size)

    def valid_batches(rank: int, world_size: int, epoch: int) -> TokenStream:
        batch_size = max(1, min(data.batch_size, (len(valid_ids) - 1) // (world_size * data.bptt)))
        return TokenStream(valid_ids, batch_size, data.bptt, rank=rank, world_size=world_size)

    model = LanguageModel(config.model)
    task = Task(
        name=TASK,
        model=model,
        loss=lm_loss,
        train_batches=train_batches,
        valid_batches=valid_batches,
        metrics=lambda: {"cross_entropy": CrossEntropy(vocab.level)},
        units=units(vocab.level),
        plot=plot_extras(config, len(vocab), vocab.level, sum(p.numel() for p in model.parameters())),
        metadata={"config": to_dict(config), "vocabulary": vocab.to_json()},
    )
    return task, config, vocab


def plot_extras(config: LanguageModelRunConfig, vocab_size: int, level: str, parameters: int) -> dict:
    """The loss plot's extras (rnnkit.train.plots): the uniform model's level ln V, a second axis in bits
    (nats / ln 2), and a subtitle saying what was trained on what."""
    encoder, data = config.model.encoder, config.data
    variants = [k for k, v in encoder.variants.items() if v]
    source = data.dataset if data.dataset != "text" else Path(data.path).name if data.path else "text"
    cell = " + ".join([encoder.cell, *variants])
    sizes = f"{encoder.num_layers} x {encoder.hidden_size} {cell}, embedding {config.model.embedding_size}"
    subtitle = f"{sizes}, {parameters:,} parameters; {level} level, V = {vocab_size:,}, {source}"
    return {
        "subtitle": subtitle,
        "references": {"loss": [[math.log(vocab_size), f"uniform over V = {vocab_size:,} tokens: ln V"]]},
        "secondary": {"loss": [BITS[level][1], 1.0 / math.log(2.0)]},
    }


def build(config: LanguageModelRunConfig, resume_dir: Path | None) -> BuiltTask:
    """The engine's build step: the Task, the resolved config, and vocabulary.json for the run directory
    (read back from `resume_dir` on resume, so the resumed run has the same token ids)."""
    vocab = None
    if resume_dir is not None:
        vocab_file = resume_dir / "vocabulary.json"
        if not vocab_file.is_file():
            raise FileNotFoundError(
                f"cannot resume: {vocab_file} not found (is {resume_dir} an rnnkit run directory?)"
            )
        vocab = Vocabulary.from_json(json.loads(vocab_file.read_text(encoding="utf-8")))
    task, config, vocab = language_model_task(config, vocab)
    return BuiltTask(task, config, {"vocabulary.json": json.dumps(vocab.to_json(), ensure_ascii=False)})


def train_language_model(
    config: LanguageModelRunConfig,
    resume_dir: str | Path | None = None,
    argv: list[str] | None = None,
    callbacks: list | None = None,
) -> FitResult:
    """Train a language model; `resume_dir` continues that run exactly (same config from its config.yaml)."""
    return train_run(build, config, resume_dir, argv, callbacks)


def load_language_model(
    path: str | Path, map_location: str = "cpu"
) -> tuple[LanguageModel, Vocabulary, dict]:
    """Load a model file written by training -> (model in eval mode, vocabulary, metadata)."""
    state_dict, meta = load_model_file(path, task=TASK)
    try:
        meta["config"] = upgrade_config(meta["config"])
        model_config = from_dict(LanguageModelConfig, meta["config"]["model"], prefix="model.")
        vocab = Vocabulary.from_json(meta["vocabulary"])
        training_data(meta)  # the data section is checked here, not at the first use
    except KeyError as e:
        raise CheckpointError(f"{path}: the language-model metadata lacks {e}: incomplete or corrupt") from e
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: invalid language-model metadata: {e}") from e
    if len(vocab) != model_config.vocab_size:
        raise CheckpointError(
            f"{path}: the vocabulary holds {len(vocab)} tokens but the model's output layer has "
            f"model.vocab_size = {model_config.vocab_size}: the metadata is corrupt"
        )
    model = LanguageModel(model_config)
    try:
        model.load_state_dict({k: v.to(map_location) for k, v in state_dict.items()})
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the model its metadata describes: {e}") from e
    return model.eval(), vocab, meta


@dataclass
class TrainedLanguageModel:
    """A trained language model, ready to use (`rnnkit.load(path)` returns one for a language-model file).

        >>> lm = rnnkit.load("runs/shakespeare_gru")                        # doctest: +SKIP
        >>> lm.generate("ROMEO:", max_new_tokens=100, temperature=0.8, seed=1)   # doctest: +SKIP
        >>> lm.evaluate("../shared/data/tinyshakespeare/input.txt")["loss"]      # doctest: +SKIP
    """

    model: LanguageModel
    vocabulary: Vocabulary
    metadata: dict
    path: Path

    @classmethod
    def from_file(cls, path: str | Path) -> TrainedLanguageModel:
        model, vocab, meta = load_language_model(path)
        return cls(model, vocab, meta, Path(path))

    def generate(self, prompt: str = "", max_new_tokens: int = 200, **decoding) -> str:
        """The continuation of `prompt` (rnnkit.decode.generate: temperature, top_k, top_p, greedy,
        beam_size, seed, stream)."""
        from rnnkit.decode import generate

        return generate(self.model, self.vocabulary, prompt, max_new_tokens, **decoding)

    def poem(self, chars: int = 5, lines: int | None = None, acrostic: str | None = None, **decoding) -> str:
        """A well-formed Tang poem from a poem model, one verse per line (rnnkit.decode.generate_poem)."""
        from rnnkit.decode import generate_poem

        return generate_poem(self.model, self.vocabulary, chars, lines, acrostic, **decoding)

    def evaluate(
        self, data_path: str | Path, split: str = "valid", accelerator: str = "cpu", unknown: str = "error"
    ) -> dict:
        """{loss (nats), bpc / bpw / bpt (bits per token of the level), ppl, tokens, unknown} on text read as
        in training (`split`: valid, train or all; `unknown`: error, skip or unk, see
        `evaluate_language_model`)."""
        metrics = evaluate_language_model(self.path, data_path, split, accelerator=accelerator,
                                          progress_bar=False, unknown=unknown)
        return {k.removeprefix("valid_"): v for k, v in metrics.items()}

    predict = generate


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
    unknown: str = "error",
) -> dict[str, float]:
    """Cross-entropy (nats), bits per token (valid_bpc / valid_bpw / valid_bpt by the level) and perplexity
    of a trained model on text.

    Args:
        checkpoint: a model file (model.safetensors of a run).
        data_path: text file or folder, read as in training.
        split_name: "valid" (the training run's held-out part), "train", or "all" (the whole text).
        batch_size, bptt: 0 = as in training.
        unknown: tokens the vocabulary does not hold: "error" (ValueError naming the first few and their
            count), "skip" (left out) or "unk" (mapped to <unk>, when the vocabulary has one); their count
            is `valid_unknown`.
    """
    if unknown not in UNKNOWN:
        raise ValueError(f"unknown must be 'error', 'skip' or 'unk', got {unknown!r}")
    model, vocab, meta = load_language_model(checkpoint)
    data = TextDataConfig(**meta["config"]["data"])
    data = dataclasses.replace(
        data, path=str(data_path), batch_size=batch_size or data.batch_size, bptt=bptt or data.bptt
    )
    seed = meta["config"].get("trainer", {}).get("seed", 0)
    ids, unseen = evaluation_ids(data, vocab, seed, split_name, unknown)
    if len(ids) < 2:
        raise ValueError(f"{data_path} ({split_name}) holds {len(ids)} known tokens, need at least 2")
    rows = max(1, min(data.batch_size, (len(ids) - 1) // data.bptt))
    stream = TokenStream(ids, rows, data.bptt)
    task = Task(
        name=TASK,
        model=model,
        loss=lm_loss,
        train_batches=lambda r, w, e: [],
        valid_batches=lambda r, w, e: stream,
        metrics=lambda: {"cross_entropy": CrossEntropy(vocab.level)},
    )
    metrics = evaluate(task, TrainerConfig(accelerator=accelerator, devices=1, progress_bar=progress_bar))
    metrics["valid_tokens"] = float(stream.targets.numel())  # the remainder that fills no row is not scored
    metrics["valid_unknown"] = float(sum(unseen.values()))
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
        name -> (steps - 1,) gradient norms (see `rnnkit.models.gradient_flow.gradient_norms_through_time`).
    """
    from rnnkit.models.gradient_flow import gradient_norms_through_time, plot_gradient_norms

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


# ---- the command line: rnnkit train / evaluate / predict (generate) for a language model -----------------

TRAIN_FLAGS = (
    ("--batch-size", "data.batch_size", int, "rows of the token stream per process (B)"),
    ("--bptt", "data.bptt", int, "time steps per batch: the truncation length of BPTT (T)"),
    ("--cell", "model.encoder.cell", str, "rnn, lstm, gru, mingru or minlstm"),
    ("--hidden-size", "model.encoder.hidden_size", int, "width of each recurrent layer (H)"),
)


def add_evaluate_arguments(parser) -> None:
    parser.add_argument("--data", required=True, metavar="PATH",
                        help="text file or folder, read as in training")
    parser.add_argument("--split", choices=["valid", "train", "all"], default="valid",
                        help="which part of the text: the held-out last part as in training (default), the "
                        "training part, or all of it")
    parser.add_argument("--batch-size", type=int, default=0,
                        help="rows of the stream (default: as in training)")
    parser.add_argument("--bptt", type=int, default=0, help="time steps per batch (default: as in training)")
    parser.add_argument("--unknown", choices=UNKNOWN, default="error",
                        help="characters or words the model's vocabulary does not hold: an error naming them "
                        "(default), skip them, or map them to <unk> (when the vocabulary has it); the count "
                        "is reported")


def evaluate_command(args) -> int:
    """`rnnkit evaluate`: cross-entropy, bits per character / word / token and perplexity on stdout (JSON
    with --json)."""
    metrics = evaluate_language_model(args.model, args.data, args.split, args.batch_size, args.bptt,
                                      args.accelerator, progress_bar=not args.json, unknown=args.unknown)
    metrics = {k.removeprefix("valid_"): v for k, v in metrics.items()}
    if args.json:
        print(json.dumps(metrics))
        return 0
    bits, unit = next((b, u) for b, u in BITS.values() if b in metrics)
    unknown = int(metrics["unknown"])
    handled = {"skip": "skipped", "unk": "scored as <unk>"}.get(args.unknown)
    note = f"; {unknown} unknown tokens {handled}" if unknown and handled else ""
    print(f"{args.model} on {args.data} ({args.split}, {int(metrics['tokens'])} tokens{note}): "
          f"cross-entropy {metrics['loss']:.4f} nats, {metrics[bits]:.4f} {unit}, "
          f"perplexity {metrics['ppl']:.3f}")
    return 0


def add_predict_arguments(gen) -> None:
    gen.add_argument("--prompt", default="", help="text to continue (default: start after a line break)")
    gen.add_argument("--max-new-tokens", type=int, default=None, metavar="N",
                     help="tokens to generate (default: 200; not with poems, whose form sets their length)")
    gen.add_argument("--temperature", type=float, default=1.0,
                     help="divide the logits by this (> 0; lower is more conservative; default: 1.0)")
    gen.add_argument("--top-k", type=int, default=None, metavar="K", help="sample only among the K likeliest")
    gen.add_argument("--top-p", type=float, default=None, metavar="P",
                     help="sample only among the likeliest tokens holding probability mass P (nucleus)")
    gen.add_argument("--greedy", action="store_true", help="always take the likeliest token")
    gen.add_argument("--beam", type=int, default=None, metavar="N", help="beam search with N hypotheses")
    gen.add_argument("--seed", type=int, default=None, help="seed of the sampler (same seed, same text)")
    gen.add_argument("--poem", action="store_true",
                     help="generate a Chinese classical poem (the default for a poem model)")
    gen.add_argument("--chars", type=int, choices=[5, 7], default=None,
                     help="--poem: characters per line (default: the model's data.poem_chars, else 5)")
    gen.add_argument("--lines", type=int, choices=[4, 8], default=None,
                     help="--poem: 4 (quatrain) or 8 (regulated verse) lines (default: the model's "
                     "data.poem_lines, else 4)")
    gen.add_argument("--acrostic", metavar="CHARS", default=None,
                     help="--poem: 藏头诗, line k starts with the k-th of these 4 or 8 characters "
                     "(e.g. 春夏秋冬)")


def predict_command(args) -> int:
    """`rnnkit predict` / `rnnkit generate`: continue a prompt (or write a poem with a poem model)."""
    from rnnkit.decode import generate, generate_poem

    model, vocab, meta = load_language_model(args.model)
    sampling = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)

    def stream(piece: str) -> None:
        print(piece, end="", flush=True)

    data = training_data(meta)  # None: a hand-saved model file, judged by its vocabulary alone
    poem_model = data is not None and data.dataset == "tang_poems"
    poem_flags = [flag for flag, value in (("--poem", args.poem), ("--acrostic", args.acrostic),
                                           ("--chars", args.chars), ("--lines", args.lines)) if value]
    if poem_flags and data is not None and not poem_model:
        raise ValueError(
            f"{args.model} was trained on plain text (data.dataset {data.dataset!r}), not on poems: "
            f"{'/'.join(poem_flags)} need a model trained with data.dataset=tang_poems "
            "(preset tang_poems)"
        )
    if args.poem or args.acrostic or poem_model:  # a poem model always writes poems
        _check_poem_options(args, poem_model)
        chars, lines = _poem_form(args, data if poem_model else None)
        generate_poem(model, vocab, chars=chars, lines=lines, acrostic=args.acrostic, greedy=args.greedy,
                      stream=stream, **sampling)
    else:
        if poem_flags:
            raise ValueError(f"{'/'.join(poem_flags)} shape a poem: add --poem (for a poem model)")
        print(args.prompt, end="", flush=True)
        max_new_tokens = 200 if args.max_new_tokens is None else args.max_new_tokens
        generate(model, vocab, args.prompt, max_new_tokens, greedy=args.greedy, beam_size=args.beam,
                 stream=stream, **sampling)
    print()
    return 0


def _check_poem_options(args, poem_model: bool) -> None:
    """Free-text decoding options given for a poem are errors, never silently dropped."""
    given = []
    if args.beam is not None:
        given.append(f"--beam {args.beam}")
    if args.prompt:
        given.append(f"--prompt {args.prompt!r}")
    if args.max_new_tokens is not None:
        given.append(f"--max-new-tokens {args.max_new_tokens}")
    if given:
        why = "--poem" if args.poem else "--acrostic" if args.acrostic else f"{args.model} is a poem model"
        raise ValueError(
            f"poems are decoded under constraints from the poem start, their length set by --chars and "
            f"--lines: no --beam, no --prompt, no --max-new-tokens; got {', '.join(given)} ({why})"
        )


def _poem_form(args, data: TextDataConfig | None) -> tuple[int, int]:
    """(chars, lines) from --chars/--lines/--acrostic, defaulting to the form the model was trained on;
    a form the model never saw (its data.poem_chars / data.poem_lines, 0 = both) is an error."""
    trained = {"chars": data.poem_chars if data else 0, "lines": data.poem_lines if data else 0}
    lines = args.lines
    if args.acrostic:  # the acrostic sets the lines
        acrostic = "".join(args.acrostic.split())
        if lines is not None and len(acrostic) in (4, 8) and lines != len(acrostic):
            raise ValueError(
                f"--lines {lines} conflicts with the {len(acrostic)}-character --acrostic {acrostic}, which "
                f"writes {len(acrostic)} lines (leave --lines out)"
            )
        lines = len(acrostic)
    asked = {"chars": args.chars or trained["chars"] or 5, "lines": lines or trained["lines"] or 4}
    for key, value in asked.items():
        if trained[key] and value != trained[key]:
            raise ValueError(
                f"this model was trained on poems with data.poem_{key}={trained[key]} only, got {key} {value}"
            )
    return asked["chars"], asked["lines"]


def _spec():
    from rnnkit.tasks import TaskSpec

    return TaskSpec(
        name=TASK,
        summary="a character-, word- or subword-level language model on text (or Tang poems): next-token "
        "prediction",
        config_class=LanguageModelRunConfig,
        build=build,
        upgrade_config=upgrade_config,
        train_flags=TRAIN_FLAGS,
        add_evaluate_arguments=add_evaluate_arguments,
        evaluate=evaluate_command,
        add_predict_arguments=add_predict_arguments,
        predict=predict_command,
        load=TrainedLanguageModel.from_file,
    )


SPEC = _spec()
