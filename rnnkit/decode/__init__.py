"""Decoding: turning a model's `step(tokens (B,), state) -> (logits (B, V), state)` into token sequences.

    step.py      the step contract: `Stepper` (ids -> tensors on the model's device), `eval_mode`
    sampling.py  temperature, top-k, top-p, greedy; the seeded, streaming `generate` of `rnnkit generate`
    beam.py      beam search from a prompt or an initial state, with an end token and the GNMT length penalty
    poems.py     Chinese classical poems under constraints (forms, acrostics)

    text = generate(model, vocab, "ROMEO:", 200, temperature=0.8, top_k=40, seed=0)
    best = beam_search(decoder, [bos], 50, beam_size=5, state=encoder_state, end_token=eos)[0].ids
"""

from rnnkit.decode.beam import Hypothesis, beam_search, length_penalty_score
from rnnkit.decode.poems import generate_poem
from rnnkit.decode.sampling import generate, sample_token, top_k_filter, top_p_filter
from rnnkit.decode.step import Stepper, eval_mode

__all__ = [
    "generate",
    "generate_poem",
    "beam_search",
    "Hypothesis",
    "length_penalty_score",
    "sample_token",
    "top_k_filter",
    "top_p_filter",
    "Stepper",
    "eval_mode",
]
