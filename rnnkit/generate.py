"""Text generation from any language model with `step(token, state) -> (logits, state)`.

One new token costs one call of `step` on a (B,) batch of tokens, O(1) in the length generated so far (the
recurrent state carries the past). Decoding strategies, applied to the logits z of the next token:

    temperature  p = softmax(z / tau); tau -> 0 approaches greedy
    top-k        keep the k largest logits, renormalise (Fan et al., 2018)
    top-p        keep the fewest most probable tokens whose mass is >= p (nucleus; Holtzman et al., 2020)
    greedy       argmax z at every step
    beam search  keep the `beam_size` prefixes of highest log p(prefix); return the best (no length penalty:
                 every hypothesis has max_new_tokens tokens)

Sampling draws from a torch.Generator seeded with `seed`, so the same seed gives the same text.
`generate_poem` decodes Chinese classical poems under constraints that make every output well-formed.

    model = LanguageModel(...)                               # anything with .step
    text = generate(model, vocab, "ROMEO:", 200, temperature=0.8, top_k=40, seed=0, stream=print_piece)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rnnkit.data.poems import COMMA, PERIOD, POEM_START, is_hanzi, line_end
from rnnkit.data.text import EOS, Vocabulary

__all__ = ["generate", "generate_poem", "beam_search", "sample_token", "top_k_filter", "top_p_filter"]

Stream = Callable[[str], None]


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Logits (..., V) with all but the k largest of each row set to -inf (exactly k kept, ties by index)."""
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got {k}")
    if k >= logits.shape[-1]:
        return logits
    keep = logits.topk(k, dim=-1).indices  # (..., k)
    mask = torch.ones_like(logits, dtype=torch.bool).scatter(-1, keep, False)
    return logits.masked_fill(mask, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Logits (..., V) restricted to the nucleus: the fewest most probable tokens whose mass is >= p.

    A token is dropped when the tokens more probable than it already hold mass >= p; the most probable
    token is always kept.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {p}")
    probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True)  # (..., V)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of the strictly more probable tokens
    drop_sorted = mass_before >= p
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> int:
    """Draw one token id from logits (V,): divide by the temperature, then top-k, then top-p, then sample."""
    _check_sampling(temperature, top_k, top_p)
    z = logits.detach().double().cpu() / temperature  # (V,)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return int(torch.multinomial(z.softmax(dim=-1), 1, generator=generator))


def _check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for argmax), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


class _Stepper:
    """Runs `model.step` one token (or one token per beam) at a time in eval mode, without gradients."""

    def __init__(self, model: nn.Module) -> None:
        if not callable(getattr(model, "step", None)):
            raise ValueError(f"the model needs a step(token, state) method, {type(model).__name__} has none")
        self.model, self.device = model, _device(model)

    def __call__(self, tokens: list[int], state):
        token = torch.tensor(tokens, dtype=torch.long, device=self.device)  # (B,)
        logits, state = self.model.step(token, state)  # (B, V)
        return logits.float(), state

    def feed(self, ids: list[int], state=None, batch: int = 1):
        """Run the ids through the model; logits (batch, V) after the last one and the state."""
        logits = None
        for i in ids:
            logits, state = self([i] * batch, state)
        return logits, state


class _EvalMode:
    def __init__(self, model: nn.Module) -> None:
        self.model, self.was_training = model, model.training

    def __enter__(self):
        self.model.eval()
        self.grad = torch.no_grad()
        self.grad.__enter__()

    def __exit__(self, *exc):
        self.grad.__exit__(*exc)
        self.model.train(self.was_training)


def _prompt_ids(vocab: Vocabulary, prompt: str) -> list[int]:
    """The prompt's ids; an empty prompt starts from "\\n", <eos> or "^", the first the vocabulary has."""
    ids = vocab.encode(prompt) if prompt else []
    if ids:
        return ids
    for start in ("\n", EOS, POEM_START):
        if start in vocab:
            return [vocab.index[start]]
    raise ValueError(
        "an empty prompt needs a start token ('\\n', '<eos>' or '^') in the vocabulary; none is "
        "there, give a prompt"
    )


def generate(
    model: nn.Module,
    vocab: Vocabulary,
    prompt: str,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    beam_size: int | None = None,
    seed: int | None = None,
    stream: Stream | None = None,
) -> str:
    """Continue `prompt` by `max_new_tokens` tokens and return the continuation (without the prompt).

    Args:
        model: has step(token (B,) long, state) -> (logits (B, V), state); state=None starts a sequence.
        vocab: the model's vocabulary; the prompt is encoded with it (unknown token -> ValueError naming it).
        prompt: text to continue; "" starts after a line break.
        temperature, top_k, top_p: sampling (module docstring); not allowed with greedy or beam search.
        greedy: argmax at every step.
        beam_size: beam search with this many hypotheses (the text is streamed once the best one is known).
        seed: seeds the sampler; the same seed gives the same text.
        stream: called with the text of each new token as soon as it is chosen.
    Returns:
        The generated text, equal to the concatenation of the streamed pieces.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    sampling = temperature != 1.0 or top_k is not None or top_p is not None
    if (greedy or beam_size is not None) and sampling:
        raise ValueError(
            f"temperature/top_k/top_p apply to sampling, not to {'greedy' if greedy else 'beam'} "
            f"decoding; got temperature={temperature}, top_k={top_k}, top_p={top_p}"
        )
    if greedy and beam_size is not None:
        raise ValueError(f"choose greedy or beam search, got greedy=True and beam_size={beam_size}")
    _check_sampling(temperature, top_k, top_p)
    stream = stream or (lambda piece: None)
    ids = _prompt_ids(vocab, prompt)
    with _EvalMode(model):
        if beam_size is not None:
            new = beam_search(model, ids, max_new_tokens, beam_size)
            for i in new:
                stream(vocab.piece(i))
            return vocab.decode(new)
        step, generator = _Stepper(model), _generator(seed)
        logits, state = step.feed(ids)
        pieces = []
        for n in range(max_new_tokens):
            z = logits[0]  # (V,)
            i = int(z.argmax()) if greedy else sample_token(z, temperature, top_k, top_p, generator)
            pieces.append(vocab.piece(i))
            stream(pieces[-1])
            if n + 1 < max_new_tokens:
                logits, state = step([i], state)
    return "".join(pieces)


def beam_search(model: nn.Module, prompt_ids: list[int], max_new_tokens: int, beam_size: int) -> list[int]:
    """The `max_new_tokens` ids after the prompt of (approximately) highest log-probability, by beam search.

    All hypotheses run as one batch of `beam_size` rows; after each step the rows are reordered to follow
    their surviving prefixes, so the state's batch dimension must be found: it is the dimension whose size
    changes between a batch of 1 and a batch of `beam_size` (for torch.nn's (L, B, H) states, dimension 1).
    """
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not prompt_ids:
        raise ValueError("beam search needs at least one prompt token")
    if max_new_tokens == 0:
        return []
    step = _Stepper(model)
    _, one = step([prompt_ids[0]], None)
    logits, state = step([prompt_ids[0]] * beam_size, None)
    batch_dims = _tree_map(_batch_dim, one, state)
    logits, state = step.feed(prompt_ids[1:], state, beam_size) if len(prompt_ids) > 1 else (logits, state)
    vocab_size = logits.shape[-1]
    scores = torch.full((beam_size,), float("-inf"), device=logits.device)
    scores[0] = 0.0  # all rows hold the same prefix: start from one, or the beams would be copies
    prefixes: list[list[int]] = [[] for _ in range(beam_size)]
    for n in range(max_new_tokens):
        total = scores[:, None] + logits.log_softmax(dim=-1)  # (beam, V): log p(prefix + token)
        scores, flat = total.view(-1).topk(beam_size)  # (beam,)
        beams, tokens = (flat // vocab_size).tolist(), (flat % vocab_size).tolist()
        prefixes = [prefixes[b] + [t] for b, t in zip(beams, tokens, strict=True)]
        if n + 1 < max_new_tokens:
            state = _select_rows(state, batch_dims, torch.tensor(beams))
            logits, state = step(tokens, state)
    return prefixes[0]


def _select_rows(state, batch_dims, index: torch.Tensor):
    """The state of the batch rows `index` (the prefixes that survived), leaf by leaf along its batch dim."""
    pick = lambda s, d: s if d is None else s.index_select(d, index.to(s.device))
    return _tree_map(pick, state, batch_dims)


def _batch_dim(one: torch.Tensor, many: torch.Tensor) -> int | None:
    changed = [d for d, (a, b) in enumerate(zip(one.shape, many.shape, strict=False)) if a != b]
    if len(changed) > 1 or one.dim() != many.dim():
        raise ValueError(
            f"cannot find the batch dimension of a state: shapes {tuple(one.shape)} for batch 1 "
            f"and {tuple(many.shape)} for a larger batch"
        )
    return changed[0] if changed else None


def _tree_map(fn, tree, *others):
    """Apply fn to the tensors of a state (a tensor, or tuples/lists/dicts of them), leaf by leaf."""
    if isinstance(tree, torch.Tensor):
        return fn(tree, *others)
    if isinstance(tree, (tuple, list)):
        return type(tree)(_tree_map(fn, t, *(o[i] for o in others)) for i, t in enumerate(tree))
    if isinstance(tree, dict):
        return {k: _tree_map(fn, v, *(o[k] for o in others)) for k, v in tree.items()}
    return tree


def generate_poem(
    model: nn.Module,
    vocab: Vocabulary,
    chars: int = 5,
    lines: int = 4,
    acrostic: str | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int | None = None,
    stream: Stream | None = None,
) -> str:
    """A well-formed Chinese classical poem from a model trained on `rnnkit.data.poems.poem_corpus`.

    Decoding starts from POEM_START and is constrained position by position: inside a line only Chinese
    characters of the vocabulary may be drawn (all other logits are -inf), and the line's punctuation is
    forced ("，" after odd lines, "。" after even ones), so the output always has `lines` lines of `chars`
    characters. Forced tokens are fed to the model too, so it conditions on them.

    Args:
        chars: characters per line, 5 (五言) or 7 (七言).
        lines: 4 (quatrain, 绝句) or 8 (regulated verse, 律诗); set by the acrostic when one is given.
        acrostic: 藏头诗, line k starts with its k-th character; 4 characters -> quatrain, 8 -> 律诗.
            Each must be a Chinese character the model has seen (same script as its training data).
        temperature, top_k, top_p, greedy, seed, stream: as in `generate`.
    Returns:
        The poem, e.g. "床前明月光，疑是地上霜。举头望明月，低头思故乡。"
    """
    if chars not in (5, 7):
        raise ValueError(f"chars must be 5 or 7, got {chars}")
    if acrostic is not None:
        acrostic = "".join(acrostic.split())
        if len(acrostic) not in (4, 8):
            raise ValueError(
                f"an acrostic needs 4 characters (quatrain) or 8 (regulated verse), got "
                f"{len(acrostic)}: {acrostic!r}"
            )
        lines = len(acrostic)
    if lines not in (4, 8):
        raise ValueError(f"lines must be 4 or 8, got {lines}")
    for required in (POEM_START, COMMA, PERIOD):
        if required not in vocab:
            raise ValueError(
                f"the vocabulary has no {required!r}: the model was not trained on poem_corpus text"
            )
    allowed = torch.tensor([is_hanzi(t) for t in vocab.tokens])  # (V,) bool
    if not allowed.any():
        raise ValueError("the vocabulary holds no Chinese character")
    for k, ch in enumerate(acrostic or ""):
        if not is_hanzi(ch):
            raise ValueError(f"acrostic character {k + 1} is {ch!r}, not a Chinese character")
        if ch not in vocab:
            raise ValueError(
                f"acrostic character {ch!r} (U+{ord(ch):04X}) is not in the model's vocabulary of "
                f"{len(vocab)} tokens (never seen in training; is it the other script?)"
            )
    _check_sampling(temperature, top_k, top_p)
    stream = stream or (lambda piece: None)
    generator, poem = _generator(seed), []
    with _EvalMode(model):
        step = _Stepper(model)
        logits, state = step([vocab.index[POEM_START]], None)
        for k in range(lines):
            for j in range(chars + 1):
                if j == chars:
                    i = vocab.index[line_end(k)]
                elif j == 0 and acrostic:
                    i = vocab.index[acrostic[k]]
                else:
                    z = logits[0].masked_fill(~allowed.to(logits.device), float("-inf"))  # (V,)
                    i = int(z.argmax()) if greedy else sample_token(z, temperature, top_k, top_p, generator)
                poem.append(vocab.tokens[i])
                stream(poem[-1])
                if not (k == lines - 1 and j == chars):
                    logits, state = step([i], state)
    return "".join(poem)
