"""Beam search over any `step(tokens (B,), state) -> (logits (B, V), state)`: language models and decoders.

All hypotheses run as one batch of `beam_size` rows. At every step each live hypothesis y is extended by every
token v, the `beam_size` extensions of highest log p(y) + log p(v | y) live on, and the state's rows are
reordered to follow them (`rnnkit.nn.state.select_rows`). Live hypotheses all have the same length, so
ranking them by log-probability is ranking them by score.

    end token       an extension by `end_token` among the beam_size best of a step is finished: it is kept
                    and never extended (the search looks at the 2 * beam_size best, so beam_size stay live)
    length penalty  hypotheses are ranked by the GNMT score (Wu et al., 2016, eq. 14)
                        s(Y) = log p(Y) / lp(Y),    lp(Y) = ((5 + |Y|) / 6) ** alpha       alpha = 0: log p(Y)
                    |Y| counts the new tokens, the end token included
    stopping        after max_new_tokens tokens (the live hypotheses then join the finished ones), or once no
                    live hypothesis can reach the n_best-th finished score: log p only falls and lp only grows
                    with length, so every continuation of y scores <= log p(y) / lp(max_new_tokens)
                    (stopping early never changes the result)
    initial state   a state for one source (e.g. an encoder's final state), repeated to the beam's rows
                    (`rnnkit.nn.state.expand_rows`)

Without an end token and with alpha = 0 (what `rnnkit generate --beam` runs) every hypothesis has
max_new_tokens tokens and the most probable one wins.

    best = beam_search(decoder, [bos], 50, beam_size=5, state=encoder_state, end_token=eos,
                       length_penalty=0.6)[0].ids
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rnnkit.decode.step import StepFn, Stepper, eval_mode
from rnnkit.nn.state import expand_rows, select_rows, tree_map

__all__ = ["beam_search", "Hypothesis", "length_penalty_score"]


@dataclass(frozen=True)
class Hypothesis:
    """One decoded continuation.

    ids: the new token ids, ending with the end token when `finished`; log_prob: log p(ids | start, state);
    score: log_prob / lp(len(ids)); finished: it ended with the end token (else it reached max_new_tokens).
    """

    ids: list[int]
    log_prob: float
    score: float
    finished: bool


def length_penalty_score(log_prob: float, length: int, alpha: float) -> float:
    """The GNMT score log p / ((5 + length) / 6) ** alpha (Wu et al., 2016, eq. 14); alpha = 0: log p."""
    return log_prob / ((5 + length) / 6) ** alpha


def beam_search(
    model: nn.Module | StepFn,
    start_ids: Sequence[int],
    max_new_tokens: int,
    beam_size: int,
    *,
    state: Any = None,
    end_token: int | None = None,
    length_penalty: float = 0.0,
    n_best: int = 1,
    batch_dim: Any = None,
) -> list[Hypothesis]:
    """The `n_best` continuations of `start_ids` of (approximately) highest score, by beam search.

    Args:
        model: a module with step(tokens (B,) long, state) -> (logits (B, V), state), or that step function;
            a module (also the module of a bound `module.step`) runs in eval mode without gradients.
        start_ids: the prompt of a language model, or a decoder's start token id(s); at least one.
        max_new_tokens: the most tokens generated after `start_ids`.
        beam_size: the number of live hypotheses; 1 is greedy decoding (with alpha = 0).
        state: the state before `start_ids` for one source (batch of 1), e.g. an encoder's final state;
            None lets the model start its own.
        end_token: the id that ends a hypothesis; None: every hypothesis has `max_new_tokens` tokens.
        length_penalty: alpha >= 0 of the GNMT score (module docstring); 0 ranks by log-probability.
        n_best: how many hypotheses to return, 1 .. beam_size.
        batch_dim: the batch dimension of the state's tensors: an int, or a tree like the state with an int
            (or None: not batched) per tensor. None: with an initial state 1 (torch.nn's (L * D, B, H)),
            without one found from the model's states for a batch of 1 and of beam_size.
    Returns:
        Up to `n_best` hypotheses, best score first (ties keep the beam's order).

    Example:
        >>> import torch
        >>> p = torch.tensor([[0.0, 0.6, 0.4], [0.5, 0.25, 0.25], [1.0, 0.0, 0.0]])   # p(next | last)
        >>> step = lambda token, state: (p[token].clamp_min(1e-9).log(), token)   # state: the last token
        >>> [beam_search(step, [0], 2, beam_size=k)[0].ids for k in (1, 2)]      # 0.6 * 0.5 < 0.4 * 1
        [[1, 0], [2, 0]]
    """
    start_ids = [int(i) for i in start_ids]
    _check_arguments(start_ids, max_new_tokens, beam_size, end_token, length_penalty, n_best)
    if max_new_tokens == 0:
        return [Hypothesis([], 0.0, 0.0, finished=False)]
    step = Stepper(model, state)
    with eval_mode(model):
        logits, state, dims = _start(step, start_ids, beam_size, state, batch_dim)
        if end_token is not None and end_token >= logits.shape[-1]:
            raise ValueError(f"end_token must be < the vocabulary size {logits.shape[-1]}, got {end_token}")
        finished = _search(step, logits, state, dims, max_new_tokens, beam_size, end_token, length_penalty,
                           n_best)
    return sorted(finished, key=lambda h: -h.score)[:n_best]  # stable


def _search(step, logits, state, dims, max_new_tokens, beam_size, end_token, alpha, n_best):
    """Every hypothesis that finished, then the live ones if max_new_tokens was reached (unsorted)."""
    vocab_size = logits.shape[-1]
    scores = torch.full((beam_size,), float("-inf"), device=logits.device)  # (beam,) log p(prefix)
    scores[0] = 0.0  # all rows hold the same prefix: start from one, or the beams would be copies
    prefixes: list[list[int]] = [[] for _ in range(beam_size)]
    finished: list[Hypothesis] = []
    # One end per row at most, so among the 2 * beam_size best extensions beam_size do not end (V >= 2).
    width = beam_size if end_token is None else min(2 * beam_size, beam_size * vocab_size)
    for n in range(max_new_tokens):
        total = scores[:, None] + logits.log_softmax(dim=-1)  # (beam, V): log p(prefix + token)
        top, flat = total.view(-1).topk(width)  # (width,) best first
        ranks, rows, tokens = [], [], []  # the extensions that stay live, best first
        for rank, (log_prob, f) in enumerate(zip(top.tolist(), flat.tolist(), strict=True)):
            row, token = divmod(f, vocab_size)
            if token != end_token and len(rows) < beam_size:
                ranks.append(rank)
                rows.append(row)
                tokens.append(token)
            elif token == end_token and rank < beam_size and math.isfinite(log_prob):
                ids = prefixes[row] + [token]
                score = length_penalty_score(log_prob, len(ids), alpha)
                finished.append(Hypothesis(ids, log_prob, score, finished=True))
        if not rows:  # V == 1: every extension ended
            return finished
        scores = top[torch.tensor(ranks, device=top.device)]  # (beam,) best first
        prefixes = [prefixes[r] + [t] for r, t in zip(rows, tokens, strict=True)]
        if _settled(finished, float(scores[0]), max_new_tokens, alpha, n_best):
            return finished
        if n + 1 < max_new_tokens:
            state = _select(state, torch.tensor(rows), dims)
            logits, state = step(tokens, state)
    for ids, log_prob in zip(prefixes, scores.tolist(), strict=True):
        if math.isfinite(log_prob):  # -inf: a row that never held a prefix (V < beam_size)
            finished.append(Hypothesis(ids, log_prob, length_penalty_score(log_prob, len(ids), alpha), False))
    return finished


def _settled(finished: list[Hypothesis], best_live: float, max_new_tokens: int, alpha: float, n: int) -> bool:
    """No live hypothesis can still enter the n best: their bound log p / lp(max_new_tokens) is no better."""
    if best_live == float("-inf"):
        return True
    if len(finished) < n:
        return False
    nth_best = sorted((h.score for h in finished), reverse=True)[n - 1]
    return length_penalty_score(best_live, max_new_tokens, alpha) <= nth_best


def _start(step: Stepper, start_ids: list[int], beam_size: int, state: Any, batch_dim: Any):
    """Logits (beam, V) after the start ids, the beam's state and the batch dims of its tensors."""
    if state is not None:  # one source: run the start ids once, then repeat the state to the beam's rows
        dims = _per_tensor(state, 1 if batch_dim is None else batch_dim)
        tree_map(_check_one_row, state, dims)
        logits, state = step.feed(start_ids, state)  # (1, V)
        return logits.expand(beam_size, -1), _expand(state, beam_size, dims), dims
    if batch_dim is None:
        _, one = step(start_ids[:1], None)
    logits, state = step(start_ids[:1] * beam_size, None)
    dims = tree_map(_batch_dim, one, state) if batch_dim is None else _per_tensor(state, batch_dim)
    if len(start_ids) > 1:
        logits, state = step.feed(start_ids[1:], state, beam_size)
    return logits, state, dims


def _per_tensor(state: Any, batch_dim: Any) -> Any:
    return tree_map(lambda t: batch_dim, state) if isinstance(batch_dim, int) else batch_dim


def _select(state: Any, index: torch.Tensor, dims: Any) -> Any:
    """The batch rows `index` (the prefixes that survived); tensors without a batch dim pass through."""
    return tree_map(lambda t, d: t if d is None else select_rows(t, index, d), state, dims)


def _expand(state: Any, n: int, dims: Any) -> Any:
    return tree_map(lambda t, d: t if d is None else expand_rows(t, n, d), state, dims)


def _batch_dim(one: torch.Tensor, many: torch.Tensor) -> int | None:
    """The dimension whose size changes between a batch of 1 and a larger one (torch.nn's (L, B, H): 1)."""
    changed = [d for d, (a, b) in enumerate(zip(one.shape, many.shape, strict=False)) if a != b]
    if len(changed) > 1 or one.dim() != many.dim():
        raise ValueError(
            f"cannot find the batch dimension of a state: shapes {tuple(one.shape)} for batch 1 "
            f"and {tuple(many.shape)} for a larger batch"
        )
    return changed[0] if changed else None


def _check_one_row(t: torch.Tensor, dim: int | None) -> None:
    if dim is not None and (t.dim() <= dim or t.shape[dim] != 1):
        raise ValueError(
            f"the initial state is for one source: expected size 1 along batch_dim {dim}, got shape "
            f"{tuple(t.shape)} (pass batch_dim: 1 for torch.nn's (L * D, B, H), 0 for a (B, H) cell state)"
        )


def _check_arguments(start_ids, max_new_tokens, beam_size, end_token, length_penalty, n_best) -> None:
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not start_ids:
        raise ValueError("beam search needs at least one start token (a prompt or a start id), got 0")
    if min(start_ids) < 0:
        raise ValueError(f"start token ids must be >= 0, got {min(start_ids)}")
    if end_token is not None and end_token < 0:
        raise ValueError(f"end_token must be >= 0, got {end_token}")
    if not (math.isfinite(length_penalty) and length_penalty >= 0.0):
        raise ValueError(f"length_penalty must be a finite alpha >= 0, got {length_penalty}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be in [1, beam_size={beam_size}], got {n_best}")
