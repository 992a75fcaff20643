"""Inside a trained text classifier, for the playground: its running opinion along a text.

An RNN reads a text left to right, and after each token it could already answer: the running class
probability p_t = softmax(f(x_1..x_t)) is the classifier run on the prefix up to token t. Each token is
coloured by how it moved the probability of one class (by default the one finally predicted),

    effect_t = p_t(k) - p_{t-1}(k),   p_0(k) = 1/K

and, when the model pools by attention, the weights a_t of p = sum_t a_t o_t over the whole text are shown
too. All of it is `TrainedClassifier.explain` and `rnnkit.tasks.classifier.token_effects`, the code behind
`rnnkit predict --explain`; this module only checks the request and writes JSON.

Model files are read by `rnnkit.tasks.classifier.load_classifier` (rnnkit's safetensors loader, which never
unpickles). A classifier of numeric series (.ts / .npz) reads no typed text and is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rnnkit.tasks.classifier import TASK, TrainedClassifier, token_effects

from .api import LIMITS, ApiError, check_keys

__all__ = ["LoadedClassifier"]


@dataclass
class LoadedClassifier:
    """A text-classifier file opened for the page (eval mode, CPU)."""

    name: str
    classifier: TrainedClassifier

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> LoadedClassifier:
        classifier = TrainedClassifier.from_file(path)
        if classifier.encoding.numeric:
            raise ValueError(f"{path} is a classifier of numeric series; the playground reads typed text, so "
                             "it looks inside text classifiers only")
        return cls(name or str(path), classifier)

    def info(self) -> dict:
        config = self.classifier.model.config
        encoder = config.encoder
        return {
            "loaded": True, "name": self.name, "task": TASK, "cell": encoder.cell,
            "num_layers": encoder.num_layers, "hidden_size": encoder.hidden_size,
            "bidirectional": encoder.bidirectional, "pooling": config.pooling,
            "classes": list(self.classifier.classes), "vocab_size": len(self.classifier.encoding.tokenizer),
            "tokenizer": self.classifier.encoding.data.tokenizer,
        }

    def classify(self, request) -> dict:
        """POST /api/classify {text, label}: the tokens the model read, the class probabilities after each
        (T, K), each token's effect on `label`'s probability (default: the predicted class), the attention
        weights (T,) or null."""
        request = check_keys(request, ("text", "label"))
        text = request.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(f"text: expected a non-empty string, got {text!r}"[:120])
        if len(text) > LIMITS.text_chars:
            raise ApiError(f"text: {len(text)} characters, the server's limit is {LIMITS.text_chars}")
        classes = list(self.classifier.classes)
        label = request.get("label")
        if label is not None and label not in classes:
            raise ApiError(f"label: expected one of {classes}, got {label!r}")
        T = len(self.classifier.encoding.sequences([text])[0])
        if T == 0:
            raise ApiError("text: the tokenizer finds no tokens in it")
        if T > LIMITS.classify_tokens:
            raise ApiError(f"text: {T} tokens (after the model's max_length), the server's limit is "
                           f"{LIMITS.classify_tokens}")
        result = self.classifier.explain(text)
        running = result["probabilities"]  # (T, K)
        predicted = classes[int(running[-1].argmax())]
        label = predicted if label is None else label
        attention = result["attention"]
        return {
            "tokens": list(result["tokens"]), "classes": classes, "probabilities": running.tolist(),
            "predicted": predicted, "label": label,
            "effects": token_effects(running, classes.index(label)).tolist(),
            "attention": None if attention is None else attention.tolist(),
        }
