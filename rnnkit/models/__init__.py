"""Task models: plain nn.Modules that return outputs (and the loss when given targets); one file per task,
and the encoder factory (recurrent.py) they all read sequences with."""

from .language_model import (
    LanguageModel,
    LanguageModelConfig,
    language_model_metrics,
    upgrade_model_config,
)
from .recurrent import RecurrentConfig, init_state, make_encoder

__all__ = [
    "LanguageModel",
    "LanguageModelConfig",
    "RecurrentConfig",
    "init_state",
    "language_model_metrics",
    "make_encoder",
    "upgrade_model_config",
]
