"""Task models: plain nn.Modules that return outputs (and the loss when given targets); one file per task."""

from .language_model import (
    LanguageModel,
    LanguageModelConfig,
    detach_state,
    language_model_metrics,
    make_recurrent,
)

__all__ = ["LanguageModel", "LanguageModelConfig", "detach_state", "language_model_metrics", "make_recurrent"]
