"""Text generation from any language model with `step(token, state) -> (logits, state)`.

One new token costs one call of `step` on a (B,) batch of tokens, O(1) in the length generated so far (the
recurrent state carries the past). Decoding strategies, applied to the logits z of the next token:

    temperature  p = softmax(z / tau); tau -> 0 approaches greedy
    top-k        keep the k largest logits, renormalise (Fan et al., 2018)
    top-p        keep the fewest most probable tokens whose mass is >= p (nucleus; Holtzman et al., 2020)
    greedy       argmax z at every step
    beam search  `rnnkit.decode.beam.beam_search`; here with no end token and no length penalty, so every
                 hypothesis has max_new_tokens tokens and the most probable one wins

Sampling draws from a torch.Generator seeded with `seed`, so the same seed gives the same text.

    model = LanguageModel(...)                               # anything with .step
    text = generate(model, vocab, "ROMEO:", 200, temperature=0.8, top_k=40, seed=0, stream=print_piece)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from rnnkit.data.poems import POEM_START
from rnnkit.data.text import EOS, Vocabulary
from rnnkit.decode.beam import beam_search
from rnnkit.decode.step import StepFn, Stepper, eval_mode

__all__ = ["generate", "sample_token", "top_k_filter", "top_p_filter", "check_sampling", "seeded_generator"]

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
    check_sampling(temperature, top_k, top_p)
    z = logits.detach().double().cpu() / temperature  # (V,)
    if top_k is not None:
        z = top_k_filter(z, top_k)
    if top_p is not None:
        z = top_p_filter(z, top_p)
    return int(torch.multinomial(z.softmax(dim=-1), 1, generator=generator))


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ValueError, with the value, for a temperature <= 0, top_k < 1 or top_p outside (0, 1]."""
    if not temperature > 0.0:
        raise ValueError(f"temperature must be > 0 (use greedy decoding for argmax), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def seeded_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with `seed` (None: from the OS, different every call)."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


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
    model: nn.Module | StepFn,
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
        model: has step(token (B,) long, state) -> (logits (B, V), state), or is that step function;
            state=None starts a sequence. A module runs in eval mode without gradients.
        vocab: the model's vocabulary; the prompt is encoded with it (unknown token -> ValueError naming it).
        prompt: text to continue; "" starts after a line break.
        temperature, top_k, top_p: sampling (module docstring); not allowed with greedy or beam search.
        greedy: argmax at every step.
        beam_size: beam search with this many hypotheses (the text is streamed once the best one is known).
        seed: seeds the sampler; the same seed gives the same text.
        stream: called with the text of each new token as soon as it is chosen.
    Returns:
        The generated text, equal to the concatenation of the streamed pieces.

    Example:
        >>> import torch
        >>> from rnnkit.data.text import Vocabulary
        >>> class Cycle(torch.nn.Module):            # after token t, token t + 1 is certain
        ...     def step(self, token, state=None):
        ...         return 10.0 * torch.eye(3)[(token + 1) % 3], token
        >>> generate(Cycle(), Vocabulary(tuple("abc"), level="char"), "a", 4, greedy=True)
        'bcab'
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
    check_sampling(temperature, top_k, top_p)
    stream = stream or (lambda piece: None)
    ids = _prompt_ids(vocab, prompt)
    with eval_mode(model):
        if beam_size is not None:
            new = beam_search(model, ids, max_new_tokens, beam_size)[0].ids
            for i in new:
                stream(vocab.piece(i))
            return vocab.decode(new)
        step, generator = Stepper(model), seeded_generator(seed)
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
