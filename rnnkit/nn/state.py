"""Recurrent states as trees: one helper set for every model, decoder and the training loop.

A state is a tensor, or a tuple / list / dict of states (LSTM: (h, c); a stack of cells: a list), or None.
Every function here maps over the tensors of such a tree and keeps its structure:

    tree_map(fn, state)             fn on every tensor (other leaves pass through)
    detach_state(state)             the same values with the autograd graph cut: truncated BPTT
                                    (Williams & Peng 1990)
    select_rows(state, index, dim)  batch rows `index` along the batch dim (beam search keeps survivors)
    expand_rows(state, n, dim)      each batch row repeated n times, row-major (one source -> n beams)

`dim` is the batch dimension of every tensor: 1 for torch.nn's (L * D, B, H) states, 0 for a (B, H) cell
state; a tree of ints (the tree's shape) gives one per tensor.

    >>> import torch
    >>> h, c = torch.randn(2, 3, 4), torch.randn(2, 3, 4)       # (L, B, H)
    >>> [t.shape[1] for t in select_rows((h, c), torch.tensor([2, 0]))]
    [2, 2]
    >>> expand_rows(h, 2)[:, 1].equal(h[:, 0])                    # rows 0, 0, 1, 1, 2, 2
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["tree_map", "detach_state", "select_rows", "expand_rows"]


def tree_map(fn: Callable[..., Any], tree: Any, *others: Any) -> Any:
    """Apply `fn(tensor, *matching leaves of others)` to every tensor of a nested tuple/list/dict."""
    if isinstance(tree, Tensor):
        return fn(tree, *others)
    if isinstance(tree, (tuple, list)):
        return type(tree)(tree_map(fn, t, *(o[i] for o in others)) for i, t in enumerate(tree))
    if isinstance(tree, dict):
        return {k: tree_map(fn, v, *(o[k] for o in others)) for k, v in tree.items()}
    return tree


def detach_state(state: Any) -> Any:
    """Cut the autograd graph behind a recurrent state (tensor, tuple/list/dict, None): truncated BPTT."""
    return tree_map(lambda t: t.detach(), state)


def _dims(state: Any, dim: Any) -> Any:
    return tree_map(lambda t: dim, state) if isinstance(dim, int) else dim


def select_rows(state: Any, index: Tensor, dim: Any = 1) -> Any:
    """The batch rows `index` (B',) long of every tensor, along its batch dimension `dim`."""
    return tree_map(lambda t, d: t.index_select(d, index.to(t.device)), state, _dims(state, dim))


def expand_rows(state: Any, n: int, dim: Any = 1) -> Any:
    """Every batch row repeated `n` times in place (row b becomes rows b*n .. b*n + n - 1)."""
    if n < 1:
        raise ValueError(f"expand_rows needs n >= 1, got {n}")
    return tree_map(lambda t, d: torch.repeat_interleave(t, n, dim=d), state, _dims(state, dim))
