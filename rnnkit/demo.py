"""`rnnkit demo`: a small character LSTM from `rnnkit.nn`, trained by the engine on Python's own docs.

The job the Quickstart runs (`make demo`), about a minute on two CPU cores:

    text   = rnnkit.data.datasets.python_docs()         pydoc_data.topics, ships with CPython (no download)
    model  = LanguageModel(embedding 64 -> rnnkit.nn.LSTM 256 -> linear over the ~100 characters)
    train  = rnnkit.train (PyTorch Lightning): Adam, cosine schedule, truncated BPTT, a run directory with
             config.yaml, metrics.csv, plots/loss.png and model.safetensors
    sample = rnnkit.decode.generate on the model read back from model.safetensors, streamed, seeded

There is no second training loop here: the demo builds a `LanguageModelRunConfig` and hands it to
`train_language_model`, the function behind `rnnkit train`. The text is written once to
`<output_dir>/python_docs.txt` (the engine reads text files), so the commands printed at the end can use it.
`rnnkit demo --numpy` runs the from-scratch twin instead: rnnkit/reference/char_model.py.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback

from rnnkit.data.datasets import python_docs
from rnnkit.decode import generate
from rnnkit.models.language_model import LanguageModelConfig
from rnnkit.models.recurrent import RecurrentConfig
from rnnkit.tasks.language_model import (
    LanguageModelRunConfig,
    TextDataConfig,
    load_language_model,
    train_language_model,
)
from rnnkit.train.config import OptimConfig, TrainerConfig

__all__ = ["DEMO", "DemoResult", "demo_config", "run_demo", "write_corpus", "LossTable"]

CORPUS_FILE = "python_docs.txt"

# Sized on a shared 2-core machine: one step of 32 x 64 characters takes about 56 ms on one thread, so 800
# steps (about 4 passes over the 420k training characters) train in 45 s. The demo runs torch on one thread:
# this small LSTM gains little from a second one, and when the cores are busy two threads ran 25x slower.
DEMO = LanguageModelRunConfig(
    model=LanguageModelConfig(
        embedding_size=64, encoder=RecurrentConfig(cell="lstm", hidden_size=256, num_layers=1)
    ),
    data=TextDataConfig(level="char", valid_fraction=0.1, batch_size=32, bptt=64),
    optim=OptimConfig(name="adam", lr=3e-3, grad_clip=1.0, schedule="cosine", final_lr_fraction=0.1),
    trainer=TrainerConfig(
        max_epochs=1000,  # max_steps decides
        max_steps=800,
        accelerator="cpu",
        val_check_interval=100,
        log_every_n_steps=10,
        progress_bar=False,  # the loss table below is the progress report
        model_summary=False,
        output_dir="runs",
    ),
)


@dataclass(frozen=True)
class DemoResult:
    """What `run_demo` returns: the run directory, its model file, the final metrics and the sample."""

    run_dir: Path
    model_file: Path
    metrics: dict[str, float]
    sample: str


def demo_config(
    steps: int | None = None,
    seed: int = 0,
    hidden_size: int | None = None,
    batch_size: int | None = None,
    bptt: int | None = None,
    output_dir: str | None = None,
) -> LanguageModelRunConfig:
    """`DEMO` with the given sizes (None: DEMO's); validation every 100 steps, or once at the end of a shorter
    run. A size below 1 is a ValueError."""
    base = DEMO
    sizes = {"steps": steps, "hidden_size": hidden_size, "batch_size": batch_size, "bptt": bptt}
    for name, value in sizes.items():
        if value is not None and value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    steps = base.trainer.max_steps if steps is None else steps
    encoder = base.model.encoder
    encoder = dataclasses.replace(encoder, hidden_size=hidden_size or encoder.hidden_size)
    model = dataclasses.replace(base.model, encoder=encoder)
    data = dataclasses.replace(
        base.data, batch_size=batch_size or base.data.batch_size, bptt=bptt or base.data.bptt
    )
    trainer = dataclasses.replace(
        base.trainer,
        max_steps=steps,
        seed=seed,
        val_check_interval=min(base.trainer.val_check_interval, steps),
        output_dir=output_dir or base.trainer.output_dir,
        run_name=f"demo-{time.strftime('%Y%m%d-%H%M%S')}",
    )
    return dataclasses.replace(base, model=model, data=data, trainer=trainer)


def write_corpus(output_dir: str | Path) -> Path:
    """Write `python_docs()` to `output_dir/python_docs.txt` unless it is there already; return its path."""
    path = Path(output_dir) / CORPUS_FILE
    text = python_docs()
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return path


class LossTable(Callback):
    """Prints the falling loss: a row after step 1 and after every validation (the demo's progress report,
    in place of rnnkit.train.progress).

    train = mean training cross-entropy (nats per character) over the steps since the previous row;
    valid = cross-entropy on the held-out last 10% of the text; bits/char = valid / ln 2.
    """

    reports_progress = True

    def __init__(self, log=print):
        self.print_line, self.losses, self.start = log, [], time.perf_counter()

    def on_train_start(self, trainer, pl_module):
        self.start = time.perf_counter()
        self.print_line(f"{'step':>6} {'train loss':>11} {'valid loss':>11} {'bits/char':>10} {'time':>7}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))
        if trainer.global_step == 1:
            self._row(trainer.global_step, None)

    def on_validation_end(self, trainer, pl_module):
        valid = trainer.callback_metrics.get("valid_loss")
        if not trainer.sanity_checking and valid is not None:
            self._row(trainer.global_step, float(valid))

    def _row(self, step: int, valid: float | None) -> None:
        train = sum(self.losses) / max(len(self.losses), 1)
        self.losses = []
        shown = f"{valid:>11.3f} {valid / math.log(2):>10.3f}" if valid is not None else f"{'':>11} {'':>10}"
        self.print_line(f"{step:>6} {train:>11.3f} {shown} {time.perf_counter() - self.start:>6.1f}s")


def run_demo(
    config: LanguageModelRunConfig = DEMO,
    prompt: str = "The ",
    sample_length: int = 400,
    temperature: float = 0.8,
    log=print,
    stream=None,
    threads: int = 1,
) -> DemoResult:
    """Train `config` on the bundled Python docs with the engine, then sample from the saved model.

    Args:
        config: a run config (`demo_config(...)`); its data.path is set to the written corpus file.
        prompt: text the sample continues.
        sample_length: characters to generate.
        temperature: sampling temperature (seeded with trainer.seed).
        log: prints one line; stream: prints one generated piece (default: print without a newline).
        threads: torch's intra-op threads while the demo runs (restored afterwards).
    Returns:
        DemoResult; the run directory holds everything `rnnkit train` writes.
    """
    if sample_length < 0:
        raise ValueError(f"sample_length must be >= 0, got {sample_length}")
    unseen = sorted(set(prompt) - set(python_docs()))
    if unseen:  # found before training, not after it
        raise ValueError(f"prompt characters {unseen} never occur in Python's docs, the demo's text")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(config, prompt, sample_length, temperature, log,
                    stream or (lambda piece: print(piece, end="", flush=True)))
    finally:
        torch.set_num_threads(previous)


def _run(config, prompt, sample_length, temperature, log, stream) -> DemoResult:
    corpus = write_corpus(config.trainer.output_dir)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(corpus)))
    e, m = config.model.embedding_size, config.model.encoder
    log(
        f"rnnkit demo: a character LSTM from rnnkit.nn (embedding {e}, {m.num_layers} x "
        f"{m.hidden_size} hidden) trained with PyTorch Lightning on Python's docs ({corpus}), "
        f"{config.trainer.max_steps} steps of {config.data.batch_size} x {config.data.bptt} characters"
    )
    argv = _command(config, prompt, sample_length)
    with warnings.catch_warnings():  # Lightning 2.x on torch 2.13: a deprecation inside Lightning itself
        warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\).*")
        result = train_language_model(config, argv=argv, callbacks=[LossTable(log)])

    model_file = result.run_dir / "model.safetensors"
    model, vocab, _ = load_language_model(model_file)  # sample from the file, as `rnnkit generate` does
    log(f"\nsample (seed {config.trainer.seed}, temperature {temperature}):\n")
    stream(prompt)
    sample = generate(
        model, vocab, prompt, sample_length, temperature=temperature, seed=config.trainer.seed, stream=stream
    )
    stream("\n")
    run, data = shlex.quote(str(result.run_dir)), shlex.quote(str(corpus))
    log(
        f"\nrun directory: {result.run_dir}  (config.yaml, metrics.csv, plots/loss.png, model.safetensors)\n"
        "next:\n"
        f"  rnnkit generate {run} --prompt 'def ' --temperature 0.7 --seed 1\n"
        f"  rnnkit evaluate {run} --data {data}\n"
        "  rnnkit train --config tiny_char --data YOUR.txt   # a model of your own text\n"
        "  rnnkit demo --numpy   # the same job in NumPy, with hand-written backpropagation through time"
    )
    return DemoResult(result.run_dir, model_file, result.metrics, sample)


def _command(config: LanguageModelRunConfig, prompt: str, sample_length: int) -> list[str]:
    """The `rnnkit demo` command line that repeats this run (kept in the run's command.txt)."""
    return [
        "rnnkit", "demo",
        "--steps", str(config.trainer.max_steps),
        "--seed", str(config.trainer.seed),
        "--hidden-size", str(config.model.encoder.hidden_size),
        "--batch-size", str(config.data.batch_size),
        "--bptt", str(config.data.bptt),
        "--output-dir", config.trainer.output_dir,
        "--prompt", prompt,
        "--sample-length", str(sample_length),
    ]  # fmt: skip
