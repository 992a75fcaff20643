"""Inside a trained language model, for the playground: hidden units along a text, and generation with the
probability of every token.

Karpathy, Johnson & Fei-Fei (2015), "Visualizing and understanding recurrent networks": colour each character
by one unit's activation after reading it, and look for units that track something simple. Here the
something is three features of the text up to each character:

    in_quotes       1 between an opening '"' and its closing one (the quote itself counted as inside), else 0
    line_position   characters since the last line break
    bracket_depth   open ( [ { minus closed ones

and the units are ranked by |Pearson r| between their activation and each feature over the text. Every unit
is one of h (every cell) or c (LSTM) of one layer, read from the recurrent state after each token
(`LanguageModel.step`), so stacked layers are all visible.

Model files are read by `rnnkit.tasks.language_model.load_language_model`, i.e. rnnkit's safetensors loader,
which never unpickles; any other file is a `CheckpointError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rnnkit.data.poems import POEM_START
from rnnkit.decode import generate, generate_poem
from rnnkit.decode.step import eval_mode
from rnnkit.models.gradient_flow import gradient_norms_through_time
from rnnkit.tasks import task_of_model
from rnnkit.tasks.language_model import TASK, load_language_model, training_data

from .api import LIMITS, ApiError, check_keys, choice, integer, number

__all__ = ["LoadedModel", "FEATURES", "open_model", "text_features", "window_starts"]

FEATURES = ("in_quotes", "line_position", "bracket_depth")
OPEN, CLOSE = "([{", ")]}"


def text_features(pieces: list[str]) -> dict[str, np.ndarray]:
    """The FEATURES after each piece of text (a character, or a token's text), each (T,)."""
    quote, column, depth = 0, 0, 0
    out = {name: np.zeros(len(pieces)) for name in FEATURES}
    for t, piece in enumerate(pieces):
        for ch in piece:
            quote = 1 - quote if ch == '"' else quote
            column = 0 if ch == "\n" else column + 1
            depth = depth + 1 if ch in OPEN else max(depth - 1, 0) if ch in CLOSE else depth
        out["in_quotes"][t] = 1.0 if quote or piece == '"' else 0.0
        out["line_position"][t], out["bracket_depth"][t] = column, depth
    return out


def correlations(units: np.ndarray, feature: np.ndarray) -> np.ndarray | None:
    """Pearson r of each column of units (T, N) with feature (T,); None when the feature is constant."""
    f = feature - feature.mean()
    if not f.any():
        return None
    u = units - units.mean(axis=0)  # (T, N)
    scale = np.sqrt((u * u).sum(axis=0) * (f * f).sum())  # (N,)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (u.T @ f) / scale
    return np.where(scale > 0, r, 0.0)


def window_starts(num_tokens: int, T: int, windows: int) -> list[int]:
    """Where up to `windows` windows of T tokens, each followed by its target token, start in a text of
    `num_tokens` tokens: evenly spread from the first token to the last possible start (rounded half up),
    none twice."""
    last, gaps = num_tokens - T - 1, max(windows - 1, 1)  # the last window's target is the text's last token
    return sorted({(2 * k * last + gaps) // (2 * gaps) for k in range(windows)}) if last >= 0 else []


def open_model(path: str | Path, name: str | None = None):
    """A model file or run directory opened for the page: a LoadedModel (language model) or a
    LoadedClassifier (text classifier); ValueError (CheckpointError) for anything else."""
    from rnnkit.tasks import resolve_model_path
    from rnnkit.tasks.classifier import TASK as CLASSIFIER

    path = resolve_model_path(path)
    task = task_of_model(path)
    if task == CLASSIFIER:
        from .inside_classifier import LoadedClassifier

        return LoadedClassifier.from_file(path, name)
    if task != TASK:
        raise ValueError(f"{path} holds a {task!r} model; the playground looks inside language models "
                         f"({TASK!r}) and text classifiers ({CLASSIFIER!r})")
    return LoadedModel.from_file(path, name)


@dataclass
class LoadedModel:
    """A language-model file opened for the page: the model (eval mode, CPU), its vocabulary and metadata."""

    name: str
    model: torch.nn.Module
    vocabulary: object
    metadata: dict

    @classmethod
    def from_file(cls, path: str | Path, name: str | None = None) -> LoadedModel:
        """Open a model file or run directory; ValueError (CheckpointError) for a file that is not rnnkit's,
        or is another task's model."""
        from rnnkit.tasks import resolve_model_path

        path = resolve_model_path(path)
        task = task_of_model(path)
        if task != TASK:
            raise ValueError(f"{path} holds a {task!r} model; the playground looks inside language models "
                             f"({TASK!r}) only")
        model, vocab, meta = load_language_model(path)
        return cls(name or str(path), model, vocab, meta)

    # ------------------------------------------------------------------------------- what it is

    @property
    def poem(self) -> bool:
        data = training_data(self.metadata)
        return data is not None and data.dataset == "tang_poems"

    def info(self) -> dict:
        encoder = self.model.config.encoder
        data = training_data(self.metadata)
        return {
            "loaded": True, "name": self.name, "task": TASK, "cell": encoder.cell,
            "num_layers": encoder.num_layers, "hidden_size": encoder.hidden_size,
            "states": list(self._state_names()), "vocab_size": len(self.vocabulary),
            "level": self.vocabulary.level, "poem": self.poem,
            "poem_chars": data.poem_chars if self.poem else None,
            "script": data.script if self.poem else None,
        }

    def _state_names(self) -> tuple[str, ...]:
        return ("h", "c") if self.model.config.encoder.cell == "lstm" else ("h",)

    # ------------------------------------------------------------------------------- hidden units

    def _encode(self, text: str) -> tuple[list[str], list[int]]:
        """(tokens, ids) of a text; ApiError naming the tokens the model never saw (a vocabulary without
        <unk>)."""
        vocab = self.vocabulary
        tokens = vocab.tokenize(text)
        unseen = sorted({t for t in tokens if t not in vocab.index})
        if unseen and vocab.unk is None:
            shown = " ".join(repr(t) for t in unseen[:8]) + (" ..." if len(unseen) > 8 else "")
            raise ApiError(f"text: {len(unseen)} distinct {vocab.level}s the model never saw: {shown}; "
                           "remove them")
        return tokens, vocab.encode_tokens(tokens)

    def _states_along(self, ids: list[int]) -> np.ndarray:
        """The recurrent state after each token: (T, S, L, H), S = 1 (h) or 2 (h, c)."""
        rows, state = [], None
        with eval_mode(self.model):
            for i in ids:
                _, state = self.model.step(torch.tensor([i]), state)
                parts = state if isinstance(state, tuple) else (state,)
                rows.append(np.stack([p[:, 0].double().cpu().numpy() for p in parts]))  # (S, L, H)
        return np.stack(rows)

    def activations(self, request) -> dict:
        """POST /api/activations {text, layer, state, unit, top}: the unit's value after each token, and the
        units that track each feature best."""
        request = check_keys(request, ("text", "layer", "state", "unit", "top"))
        text = request.get("text")
        if not isinstance(text, str) or not text:
            raise ApiError(f"text: expected a non-empty string, got {text!r}"[:120])
        if len(text) > LIMITS.text_chars:
            raise ApiError(f"text: {len(text)} characters, the server's limit is {LIMITS.text_chars}")
        encoder, vocab = self.model.config.encoder, self.vocabulary
        layer = integer(request, "layer", encoder.num_layers - 1, 0, encoder.num_layers - 1)
        names = self._state_names()
        state = choice(request, "state", "h", names)
        unit = integer(request, "unit", 0, 0, encoder.hidden_size - 1)
        top = integer(request, "top", 5, 1, 20)
        tokens, ids = self._encode(text)
        pieces = [vocab.piece(i) if t in vocab.index else t for t, i in zip(tokens, ids, strict=True)]
        states = self._states_along(ids)  # (T, S, L, H)
        T, S, L, H = states.shape
        units = states.reshape(T, S * L * H)
        features = text_features(pieces)
        ranked = {}
        for name, values in features.items():
            r = correlations(units, values)
            if r is None:
                ranked[name] = {"values": values.tolist(), "top": [], "constant": True}
                continue
            best = np.argsort(-np.abs(r), kind="stable")[:top]
            found = []
            for k in best:
                s, rest = divmod(int(k), L * H)
                found.append({"state": names[s], "layer": rest // H, "unit": rest % H, "r": float(r[k])})
            ranked[name] = {"values": values.tolist(), "top": found, "constant": False}
        values = states[:, names.index(state), layer, unit]
        return {"pieces": pieces, "layer": layer, "state": state, "unit": unit, "values": values.tolist(),
                "range": float(np.abs(states[:, names.index(state), layer]).max()), "features": ranked}

    # ------------------------------------------------------------------------------- gradients

    def gradient_norms(self, request) -> dict:
        """POST /api/model-gradient-norms {T, windows, text, seed}: ||dL_T/dh_t|| of the trained model
        (`gradient_norms_through_time`, the top layer's h), averaged over up to `windows` windows of T tokens
        of the text, each with the token after it as the target. Without a text, the model writes its own
        (sampled with `seed`). Entry t is T - 1 - t steps back from the loss, as in the initialisation curves
        of /api/gradient-norms; the last step's own state (0 steps back) reaches the loss through the output
        only and has no entry."""
        request = check_keys(request, ("T", "windows", "text", "seed"))
        T = integer(request, "T", 50, 2, LIMITS.model_gradient_steps, " for a trained model")
        windows = integer(request, "windows", 8, 1, LIMITS.model_gradient_windows)
        seed = integer(request, "seed", 0, 0, 2**31 - 1)
        text = request.get("text")
        generated = text is None or text == ""
        if generated:
            prompt = POEM_START if self.poem else ""
            try:
                text = prompt + generate(self.model, self.vocabulary, prompt, T + windows, seed=seed)
            except ValueError as e:
                raise ApiError(f"text: the model could not write one ({e}); type a text") from None
        elif not isinstance(text, str):
            raise ApiError(f"text: expected a string, got {text!r}"[:120])
        elif len(text) > LIMITS.text_chars:
            raise ApiError(f"text: {len(text)} characters, the server's limit is {LIMITS.text_chars}")
        _, ids = self._encode(text)
        starts = window_starts(len(ids), T, windows)
        if not starts:
            raise ApiError(f"text: {len(ids)} tokens; T = {T} needs at least {T + 1} (the window and the "
                           "token after it): type a longer text or lower T")
        tokens = torch.tensor([ids[s : s + T] for s in starts])  # (B, T)
        targets = torch.tensor([ids[s + T] for s in starts])  # (B,)
        norms = gradient_norms_through_time(self.model, tokens, targets)  # (T - 1,)
        return {"T": T, "cell": self.model.config.encoder.cell, "name": self.name, "text": text,
                "generated": generated, "starts": starts, "norms": norms.tolist()}

    # ------------------------------------------------------------------------------- generation

    def generate(self, request) -> dict:
        """POST /api/generate: a poem (poem model: {chars, acrostic, lines}) or a continuation of a prompt
        ({prompt, max_new_tokens}), sampled with {temperature, seed}; each token with its probability under
        the model (softmax of its logits, before any constraint) and whether the decoder forced it."""
        request = check_keys(request, ("prompt", "max_new_tokens", "chars", "lines", "acrostic",
                                       "temperature", "seed", "greedy"))
        temperature = number(request, "temperature", 1.0, 0.05, 5.0)
        seed = integer(request, "seed", 0, 0, 2**31 - 1)
        greedy = request.get("greedy", False)
        if not isinstance(greedy, bool):
            raise ApiError(f"greedy: expected true or false, got {greedy!r}")
        decoding = {"greedy": True} if greedy else {"temperature": temperature, "seed": seed}
        model, vocab = self.model, self.vocabulary
        ids_by_piece = {vocab.piece(i): i for i in range(len(vocab))}
        seen_logits, chosen = [], []

        def step(token, state):  # records what the model said before each choice
            logits, state = model.step(token, state)
            seen_logits.append(logits[0])
            return logits, state

        def stream(piece):
            chosen.append((piece, seen_logits[-1]))

        try:
            with eval_mode(model):
                if self.poem:
                    acrostic = request.get("acrostic") or None
                    if acrostic is not None and not isinstance(acrostic, str):
                        raise ApiError(f"acrostic: expected a string of 4 or 8 characters, got {acrostic!r}")
                    chars = choice(request, "chars", self.info()["poem_chars"] or 5, (5, 7))
                    lines = request.get("lines")
                    if lines is not None:
                        lines = choice(request, "lines", None, (4, 8))
                    generate_poem(step, vocab, chars, lines, acrostic, stream=stream, line_break="",
                                  **decoding)
                else:
                    if "acrostic" in request or "chars" in request or "lines" in request:
                        raise ApiError("chars / lines / acrostic need a poem model (trained on tang_poems); "
                                       "this one continues a prompt")
                    prompt = request.get("prompt", "")
                    if not isinstance(prompt, str) or len(prompt) > LIMITS.text_chars:
                        raise ApiError(f"prompt: expected a string of at most {LIMITS.text_chars} characters")
                    n = integer(request, "max_new_tokens", 200, 1, LIMITS.generate_tokens)
                    generate(step, vocab, prompt, n, stream=stream, **decoding)
        except ApiError:
            raise
        except ValueError as e:
            raise ApiError(str(e)) from None
        forced = self._forced(request, len(chosen))
        tokens = []
        for k, (piece, logits) in enumerate(chosen):
            p = torch.softmax(logits.double(), dim=-1)[ids_by_piece[piece]]
            tokens.append({"piece": piece, "p": float(p), "forced": forced[k]})
        return {"poem": self.poem, "text": "".join(t["piece"] for t in tokens), "tokens": tokens}

    def _forced(self, request, n: int) -> list[bool]:
        """Which tokens of a poem the decoder chose rather than the model: punctuation, acrostic heads."""
        if not self.poem:
            return [False] * n
        chars = request.get("chars", self.info()["poem_chars"] or 5)
        acrostic = "".join((request.get("acrostic") or "").split())
        out = []
        for k in range(n):
            line, j = divmod(k, chars + 1)
            out.append(j == chars or (j == 0 and line < len(acrostic)))
        return out
