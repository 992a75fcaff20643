"""What `rnnkit train` and `rnnkit evaluate` do once rnnkit/cli.py has parsed the command line."""

from __future__ import annotations

import json
from pathlib import Path

from .config import apply_overrides, load_yaml
from .language_modeling import LanguageModelRunConfig, evaluate_language_model, train_language_model

__all__ = ["resolve_train_config", "train_command", "evaluate_command"]


def resolve_train_config(
    config_path: str | None, data: str | None, overrides: list[str], resume: str | None
) -> LanguageModelRunConfig:
    """Preset (or the resumed run's config.yaml, or the defaults) <- --data <- --set overrides."""
    if resume is not None:
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise FileNotFoundError(
                f"cannot resume: {run_dir / 'config.yaml'} not found (give the run directory)"
            )
        config = load_yaml(LanguageModelRunConfig, run_dir / "config.yaml")
    elif config_path is not None:
        config = load_yaml(LanguageModelRunConfig, config_path)
    else:
        config = LanguageModelRunConfig()
    if data is not None:
        overrides = [f"data.path={data}", *overrides]
    return apply_overrides(config, overrides)


def train_command(
    config_path: str | None, data: str | None, overrides: list[str], resume: str | None, argv: list[str]
) -> int:
    config = resolve_train_config(config_path, data, overrides, resume)
    result = train_language_model(config, resume_dir=resume, argv=argv)
    if _is_rank_zero():
        shown = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.metrics.items()))
        print(f"run directory: {result.run_dir}  (step {result.global_step}; {shown})")
    return 0


def evaluate_command(
    checkpoint: str, data: str, split: str, batch_size: int, bptt: int, accelerator: str, as_json: bool
) -> int:
    metrics = evaluate_language_model(
        checkpoint, data, split, batch_size, bptt, accelerator, progress_bar=not as_json
    )
    metrics = {k.removeprefix("valid_"): v for k, v in metrics.items()}
    if as_json:
        print(json.dumps(metrics))
    else:
        print(
            f"{checkpoint} on {data} ({split}, {int(metrics['tokens'])} tokens): cross-entropy "
            f"{metrics['loss']:.4f} nats, {metrics['bpc']:.4f} bits per token, "
            f"perplexity {metrics['ppl']:.3f}"
        )
    return 0


def _is_rank_zero() -> bool:
    from pytorch_lightning.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0
