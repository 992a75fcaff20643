"""Chinese classical poems under constraints: every output is a well-formed 绝句 or 律诗, acrostic if asked.

A model trained on `rnnkit.data.poems.poem_corpus` text ("^" + poem + "$" ...) writes a poem one character
at a time from POEM_START; the decoder decides the form, the model only the characters:

    position in a line    the next token is drawn (sampling or greedy, `rnnkit.decode.sampling`) from the
                          Chinese characters of the vocabulary only: every other logit is -inf
    end of line k         "，" after odd lines, "。" after even ones, forced (`rnnkit.data.poems.line_end`)
    first of line k       the acrostic's k-th character, forced (藏头诗)

The poem comes back (and streams) one verse per line, "床前明月光，\n疑是地上霜。\n..."; `line_break=""`
gives the training form "床前明月光，疑是地上霜。...".

    poem = generate_poem(model, vocab, chars=5, acrostic="春夏秋冬", seed=0)      # 4 lines of 5
"""

from __future__ import annotations

import torch
from torch import nn

from rnnkit.data.poems import COMMA, PERIOD, POEM_START, is_hanzi, line_end
from rnnkit.data.text import Vocabulary
from rnnkit.decode.sampling import Stream, check_sampling, sample_token, seeded_generator
from rnnkit.decode.step import StepFn, Stepper, eval_mode

__all__ = ["generate_poem"]


def generate_poem(
    model: nn.Module | StepFn,
    vocab: Vocabulary,
    chars: int = 5,
    lines: int | None = None,
    acrostic: str | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    seed: int | None = None,
    stream: Stream | None = None,
    line_break: str = "\n",
) -> str:
    """A well-formed Chinese classical poem from a model trained on `rnnkit.data.poems.poem_corpus`.

    Decoding starts from POEM_START and is constrained position by position: inside a line only Chinese
    characters of the vocabulary may be drawn (all other logits are -inf), and the line's punctuation is
    forced ("，" after odd lines, "。" after even ones), so the output always has `lines` lines of `chars`
    characters. Forced tokens are fed to the model too, so it conditions on them.

    Args:
        chars: characters per line, 5 (五言) or 7 (七言).
        lines: 4 (quatrain, 绝句) or 8 (regulated verse, 律诗); None: the acrostic's length, else 4. A value
            that disagrees with the acrostic is an error.
        acrostic: 藏头诗, line k starts with its k-th character; 4 characters -> quatrain, 8 -> 律诗.
            Each must be a Chinese character the model has seen (same script as its training data).
        temperature, top_k, top_p, greedy, seed, stream: as in `rnnkit.decode.sampling.generate`; a line's
            punctuation is streamed together with the line break that follows it.
        line_break: what follows each line but the last ("" gives the poem as the model writes it).
    Returns:
        The poem, e.g. "床前明月光，\n疑是地上霜。\n举头望明月，\n低头思故乡。", equal to the concatenation of
        the streamed pieces.
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
        if lines is None:
            lines = len(acrostic)
        elif lines in (4, 8) and lines != len(acrostic):
            raise ValueError(
                f"lines={lines} conflicts with the {len(acrostic)}-character acrostic {acrostic!r}, which "
                f"writes {len(acrostic)} lines (leave lines out)"
            )
    lines = 4 if lines is None else lines
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
    check_sampling(temperature, top_k, top_p)
    stream = stream or (lambda piece: None)
    generator, poem = seeded_generator(seed), []
    with eval_mode(model):
        step = Stepper(model)
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
                last = k == lines - 1 and j == chars
                poem.append(vocab.tokens[i] + (line_break if j == chars and not last else ""))
                stream(poem[-1])
                if not last:
                    logits, state = step([i], state)
    return "".join(poem)
