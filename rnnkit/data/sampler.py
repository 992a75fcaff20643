"""A seeded, sharded, resumable shuffle: the order of epoch e is a function of (seed, e) only.

Epoch e visits the permutation `torch.randperm(N, generator=torch.Generator().manual_seed(seed + e))` -- the
seed torch's DistributedSampler uses, so with the same arguments both yield the same indices. For
data-parallel training the permutation is cut into `world_size` shards exactly as DistributedSampler cuts it:

    drop_last=False (default): pad the permutation with its own first entries to a multiple of world_size;
                               every example is visited, (-N) % world_size of them twice.
    drop_last=True:            drop the permutation's last N % world_size entries; every visited example is
                               visited once, the dropped ones (a different few each epoch) not at all.

and rank r takes entries r, r + world_size, r + 2 world_size, ... (so the ranks' batch j together hold the
entries of a single-process batch j of world_size times the size). Every shard has the same length.

Resume at the exact example. `state_dict()` is {"epoch": e, "examples": k}: this rank has yielded the first k
entries of its shard of epoch e; a fresh sampler given `load_state_dict(state)` continues with entry k of the
same permutation. Under `DataLoader(dataset, batch_size=B, sampler=sampler)` the loader reads indices ahead of
the training loop (workers prefetch, Lightning looks one batch ahead), so save what the loop *finished*:

    sampler.load_state_dict({"epoch": epoch, "examples": batches_done * B})

-- examples consumed = batches * batch_size, exact because every batch but an epoch's last is full. Skipping
the first `batches_done` batches of a fresh loader gives the same remainder (that is how rnnkit's engine
resumes, rnnkit.train.module.ResumableBatches); loading the state only avoids reading the skipped batches.

Example:
    >>> sampler = ResumableShuffleSampler(10, seed=3, rank=0, world_size=2, epoch=1)
    >>> order = list(sampler)
    >>> len(order), len(sampler)
    (5, 5)
    >>> it = iter(sampler)
    >>> first_two = [next(it), next(it)]
    >>> state = sampler.state_dict()
    >>> state
    {'epoch': 1, 'examples': 2}
    >>> resumed = ResumableShuffleSampler(10, seed=3, rank=0, world_size=2)
    >>> resumed.load_state_dict(state)
    >>> first_two + list(resumed) == order
    True
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ResumableShuffleSampler"]


class ResumableShuffleSampler(Sampler[int]):
    """Indices 0..N-1 in the seeded permutation of an epoch, this rank's shard of it, resumable mid-epoch.

    Args:
        num_examples: N, the size of the dataset.
        seed: the base seed; epoch e shuffles with seed + e (as DistributedSampler).
        rank, world_size: this process and the number of data-parallel processes.
        epoch: the epoch to visit (`set_epoch` changes it).
        drop_last: drop the permutation's tail to a multiple of world_size instead of padding it.
    """

    def __init__(
        self,
        num_examples: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        epoch: int = 0,
        drop_last: bool = False,
    ) -> None:
        if num_examples < 1:
            raise ValueError(f"num_examples must be >= 1, got {num_examples}")
        if world_size < 1:
            raise ValueError(f"world_size must be >= 1, got {world_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, {world_size}), got {rank}")
        if drop_last and num_examples < world_size:
            raise ValueError(
                f"drop_last with {num_examples} examples leaves nothing for {world_size} processes "
                f"(need at least {world_size})"
            )
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.num_examples, self.seed, self.rank, self.world_size = num_examples, seed, rank, world_size
        self.drop_last = drop_last
        if drop_last:
            self.shard_size = num_examples // world_size
        else:
            self.shard_size = math.ceil(num_examples / world_size)
        self.epoch = epoch
        self._yielded = 0  # entries of this epoch's shard handed out by the current (or last) pass
        self._start = 0  # where the next pass starts: 0, or the position a loaded state names

    def set_epoch(self, epoch: int) -> None:
        """Visit epoch `epoch` next, from its start (a loaded state for another epoch is dropped)."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        if epoch != self.epoch:
            self.epoch, self._yielded, self._start = epoch, 0, 0

    def permutation(self) -> list[int]:
        """This rank's shard of epoch `self.epoch`: all `len(self)` entries, from the start."""
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_examples, generator=generator).tolist()  # (N,)
        total = self.shard_size * self.world_size
        if total > len(order):  # pad with the permutation's own first entries (repeated if N < world_size)
            order = (order * math.ceil(total / len(order)))[:total]
        return order[self.rank : total : self.world_size]  # (shard_size,)

    def __len__(self) -> int:
        return self.shard_size

    def __iter__(self) -> Iterator[int]:
        shard = self.permutation()
        start, self._start = self._start, 0
        self._yielded = start
        for index in shard[start:]:
            self._yielded += 1
            yield index

    def state_dict(self) -> dict[str, int]:
        """{"epoch": e, "examples": k}: the first k entries of this rank's shard of epoch e are consumed."""
        return {"epoch": self.epoch, "examples": self._yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue epoch state["epoch"] at entry state["examples"] of this rank's shard (the next pass)."""
        missing = {"epoch", "examples"} - set(state)
        if missing:
            raise ValueError(f"sampler state needs keys epoch and examples, missing {sorted(missing)}")
        epoch, examples = int(state["epoch"]), int(state["examples"])
        if epoch < 0:
            raise ValueError(f"sampler state: epoch must be >= 0, got {epoch}")
        if not 0 <= examples <= self.shard_size:
            raise ValueError(
                f"sampler state: examples must be in [0, {self.shard_size}] (the shard of rank {self.rank} "
                f"of {self.world_size} over {self.num_examples} examples), got {examples}"
            )
        self.epoch, self._yielded, self._start = epoch, examples, examples
