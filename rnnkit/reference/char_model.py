"""A character-level language model trained by the NumPy reference engine alone (the `rnnkit demo` job).

    e_t = E[c_t]                              embedding lookup, (B, T, E)
    h_t, c_t = LSTM(e_t, h_{t-1}, c_{t-1})    reference.LSTM, (B, T, H)
    p_t = softmax(h_t W_y^T + b_y)            next-character distribution, (B, T, V)
    L = -mean log p_t[c_{t+1}]

Trained with truncated BPTT: the text is cut into B contiguous rows, each window continues where the last one
ended, and the final state of one window is the (constant) initial state of the next. Gradients come from the
hand-written backward passes in `layers.py` and `losses.py`; Adam from `optim.py`.

The default text is `rnnkit.data.datasets.python_docs()`: `pydoc_data.topics`, the interpreter's own
documentation, which ships with every CPython.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .layers import LSTM
from .losses import softmax_cross_entropy
from .optim import Adam, clip_grad_norm


@dataclass(frozen=True)
class DemoConfig:
    steps: int = 600
    batch_size: int = 32
    seq_len: int = 64
    embedding_size: int = 32
    hidden_size: int = 192
    learning_rate: float = 3e-3
    max_grad_norm: float = 5.0
    log_every: int = 50
    sample_length: int = 300
    temperature: float = 0.7
    seed: int = 0
    prompt: str = ""  # the text the sample continues; "" starts it after a line break

    def __post_init__(self):
        for name in ("steps", "batch_size", "seq_len", "embedding_size", "hidden_size", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.sample_length < 0:
            raise ValueError(f"sample_length must be >= 0, got {self.sample_length}")
        for name in ("learning_rate", "temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")


class CharModel:
    """Embedding -> LSTM -> linear softmax over characters, with forward and hand-written backward."""

    def __init__(self, vocab_size: int, embedding_size: int, hidden_size: int, seed: int = 0,
                 dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.lstm = LSTM(embedding_size, hidden_size, batch_first=True, seed=seed, dtype=dtype)
        bound = 1.0 / np.sqrt(hidden_size)
        self.params = {
            "embedding.weight": rng.normal(0.0, 1.0, (vocab_size, embedding_size)).astype(dtype),
            **{f"rnn.{name}": value for name, value in self.lstm.params.items()},  # the same arrays
            "decoder.weight": rng.uniform(-bound, bound, (vocab_size, hidden_size)).astype(dtype),
            "decoder.bias": np.zeros(vocab_size, dtype),
        }

    def forward(self, tokens, state=None):
        """tokens (B, T) int -> logits (B, T, V), final (h, c)."""
        self._tokens = tokens
        x = self.params["embedding.weight"][tokens]  # (B, T, E)
        h, state = self.lstm.forward(x, state)  # (B, T, H)
        self._h = h
        return h @ self.params["decoder.weight"].T + self.params["decoder.bias"], state  # (B, T, V)

    def backward(self, d_logits):
        """d_logits (B, T, V) -> gradients of every parameter, by name."""
        V = d_logits.shape[-1]
        d_flat = d_logits.reshape(-1, V)  # (B*T, V)
        grads = {
            "decoder.weight": d_flat.T @ self._h.reshape(-1, self._h.shape[-1]),
            "decoder.bias": d_flat.sum(axis=0),
        }
        lstm_grads = self.lstm.backward(d_logits @ self.params["decoder.weight"])  # dL/dh: (B, T, H)
        grads.update({f"rnn.{name}": lstm_grads[name] for name in self.lstm.params})
        d_embedding = np.zeros_like(self.params["embedding.weight"])
        np.add.at(d_embedding, self._tokens, lstm_grads["input"])  # scatter-add rows of dL/dx
        grads["embedding.weight"] = d_embedding
        return grads

    def sample(self, prompt: list[int], length: int, temperature: float, rng) -> list[int]:
        """Read the prompt's tokens (at least one), then draw `length` tokens one at a time, carrying the
        state (one step of work per token)."""
        logits, state = self.forward(np.array([prompt]), None)  # (1, P, V)
        out = []
        for n in range(length):
            z = logits[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            out.append(int(rng.choice(len(p), p=p / p.sum())))
            if n + 1 < length:
                logits, state = self.forward(np.array([[out[-1]]]), state)
        return out


def batches(ids: np.ndarray, batch_size: int, seq_len: int):
    """Endless TBPTT windows: (inputs (B, T), targets (B, T)), each row continuing the previous window."""
    rows = ids[: len(ids) // batch_size * batch_size].reshape(batch_size, -1)  # (B, N/B)
    while True:
        for start in range(0, rows.shape[1] - seq_len - 1, seq_len):
            yield rows[:, start : start + seq_len], rows[:, start + 1 : start + seq_len + 1], start == 0


def evaluate(model: CharModel, ids: np.ndarray, config: DemoConfig) -> float:
    """Mean cross-entropy (nats per character) over the held-out text, carrying the state."""
    losses, state = [], None
    rows = ids[: len(ids) // config.batch_size * config.batch_size].reshape(config.batch_size, -1)
    for start in range(0, rows.shape[1] - config.seq_len - 1, config.seq_len):
        logits, state = model.forward(rows[:, start : start + config.seq_len], state)
        targets = rows[:, start + 1 : start + config.seq_len + 1]
        losses.append(softmax_cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))[0])
    return float(np.mean(losses))


def run_demo(config: DemoConfig = DemoConfig(), text: str | None = None, log=print) -> dict:
    """Train on `text` (default: the bundled Python docs), print the falling loss and a sample."""
    if text is None:
        from rnnkit.data.datasets import python_docs  # here, not at the top: rnnkit.data imports torch

        text = python_docs()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], dtype=np.int64)
    split = int(0.9 * len(ids))
    train, valid = ids[:split], ids[split:]
    need = config.batch_size * (config.seq_len + 2)  # a window of every row, in training and validation
    if min(len(train), len(valid)) < need:
        raise ValueError(
            f"text too short: need at least {need} training and {need} validation characters for "
            f"batch_size={config.batch_size}, seq_len={config.seq_len}; got {len(train)} and {len(valid)}"
        )
    unseen = sorted(set(config.prompt) - set(index))
    if unseen:
        raise ValueError(f"prompt characters {unseen} are not in the text's {len(chars)} characters")
    model = CharModel(len(chars), config.embedding_size, config.hidden_size, config.seed)
    optimizer = Adam(model.params, lr=config.learning_rate)
    log(f"rnnkit demo: character LSTM in NumPy, {len(text):,} characters, vocabulary {len(chars)}, "
        f"{sum(p.size for p in model.params.values()):,} parameters")
    log(f"{'step':>6} {'loss (nats/char)':>17} {'bits/char':>10} {'time':>7}")

    t0, state, history = time.perf_counter(), None, []
    stream = batches(train, config.batch_size, config.seq_len)
    for step in range(1, config.steps + 1):
        inputs, targets, restart = next(stream)
        logits, state = model.forward(inputs, None if restart else state)
        V = logits.shape[-1]
        loss, d_logits = softmax_cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
        grads = model.backward(d_logits.reshape(logits.shape))
        clip_grad_norm(grads, config.max_grad_norm)
        optimizer.step(grads)
        history.append(loss)
        if step % config.log_every == 0 or step == 1:
            recent = float(np.mean(history[-config.log_every:]))
            log(f"{step:>6} {recent:>17.3f} {recent / np.log(2):>10.3f} {time.perf_counter() - t0:>6.1f}s")

    valid_loss = evaluate(model, valid, config)
    log(f"validation loss {valid_loss:.3f} nats/char ({valid_loss / np.log(2):.3f} bits/char), "
        f"uniform would be {np.log(len(chars)):.3f}")
    rng = np.random.default_rng(config.seed)
    prompt = [index[c] for c in config.prompt] or [index["\n"] if "\n" in index else 0]
    sample = "".join(chars[i] for i in model.sample(prompt, config.sample_length, config.temperature, rng))
    log("sample:\n" + config.prompt + sample)
    return {"train_loss": history, "valid_loss": valid_loss, "sample": sample}
