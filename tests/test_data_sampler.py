"""rnnkit.data.sampler: seeded per-epoch order, DistributedSampler's shards, exact resume mid-epoch."""

from __future__ import annotations

import itertools
import random

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler

from rnnkit.data.sampler import ResumableShuffleSampler


def fresh_seed() -> int:
    return random.randrange(2**31)


def test_the_order_is_randperm_of_seed_plus_epoch():
    seed = fresh_seed()
    expected = torch.randperm(13, generator=torch.Generator().manual_seed(seed + 4)).tolist()
    assert list(ResumableShuffleSampler(13, seed=seed, epoch=4)) == expected


def test_same_seed_and_epoch_same_order_and_different_epochs_differ():
    seed = fresh_seed()
    a = list(ResumableShuffleSampler(50, seed=seed, epoch=2))
    assert a == list(ResumableShuffleSampler(50, seed=seed, epoch=2))
    sampler = ResumableShuffleSampler(50, seed=seed, epoch=2)
    sampler.set_epoch(3)
    b = list(sampler)
    assert b != a and sorted(a) == sorted(b) == list(range(50))


@pytest.mark.parametrize(
    "n, world, drop_last", [(12, 3, False), (13, 4, False), (13, 4, True), (3, 5, False)]
)
def test_shards_are_distributed_samplers(n, world, drop_last):
    """The oracle: torch's DistributedSampler with the same seed, epoch and drop_last."""
    seed, epoch = fresh_seed(), random.randrange(10)
    for rank in range(world):
        ours = ResumableShuffleSampler(n, seed, rank, world, epoch, drop_last=drop_last)
        theirs = DistributedSampler(range(n), world, rank, shuffle=True, seed=seed, drop_last=drop_last)
        theirs.set_epoch(epoch)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_shards_are_disjoint_and_cover_the_data():
    seed = fresh_seed()
    shards = [list(ResumableShuffleSampler(12, seed, rank, 3)) for rank in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]
    assert sorted(itertools.chain(*shards)) == list(range(12))
    # interleaved: the ranks' entries j together are entries 3j..3j+2 of the one-process order
    order = list(ResumableShuffleSampler(12, seed))
    assert [shards[r][j] for j in range(4) for r in range(3)] == order


def test_padding_and_dropping_to_equal_shards():
    # 10 examples on 4 ranks, order p: padded to 12 with p[0], p[1]; dropped to 8 without p[8], p[9]
    seed = fresh_seed()
    p = list(ResumableShuffleSampler(10, seed))
    padded = [list(ResumableShuffleSampler(10, seed, r, 4)) for r in range(4)]
    assert padded == [[p[0], p[4], p[8]], [p[1], p[5], p[9]], [p[2], p[6], p[0]], [p[3], p[7], p[1]]]
    dropped = [list(ResumableShuffleSampler(10, seed, r, 4, drop_last=True)) for r in range(4)]
    assert dropped == [[p[0], p[4]], [p[1], p[5]], [p[2], p[6]], [p[3], p[7]]]


@pytest.mark.parametrize("rank, world", [(0, 1), (1, 3)])
def test_stop_after_k_save_restore_continues_with_the_next_example(rank, world):
    seed, epoch = fresh_seed(), random.randrange(5)
    uninterrupted = list(ResumableShuffleSampler(40, seed, rank, world, epoch))
    k = random.randrange(1, len(uninterrupted))
    sampler = ResumableShuffleSampler(40, seed, rank, world, epoch)
    taken = list(itertools.islice(iter(sampler), k))
    state = sampler.state_dict()
    assert state == {"epoch": epoch, "examples": k}
    del sampler  # as after a SIGKILL: only the state survives
    restored = ResumableShuffleSampler(40, seed, rank, world)  # epoch comes from the state
    restored.load_state_dict(state)
    assert restored.state_dict() == state
    rest = list(restored)
    assert taken + rest == uninterrupted
    assert restored.state_dict() == {"epoch": epoch, "examples": len(uninterrupted)}
    assert list(restored) == uninterrupted  # the next pass starts the epoch again


def test_dataloader_batches_consumed_times_batch_size():
    """Resuming a DataLoader(batch_size=B) after k batches with examples = k * B equals skipping k batches."""
    seed, batch = fresh_seed(), 4
    data = torch.arange(30) * 10

    def loader(sampler):
        return DataLoader(data, batch_size=batch, sampler=sampler)

    full = [b.tolist() for b in loader(ResumableShuffleSampler(30, seed, epoch=1))]
    assert len(full) == 8 and len(full[-1]) == 2  # 7 full batches, then the rest
    for k in (0, 3, 7, 8):
        sampler = ResumableShuffleSampler(30, seed)
        sampler.load_state_dict({"epoch": 1, "examples": k * batch if k < 8 else 30})
        assert [b.tolist() for b in loader(sampler)] == full[k:]


def test_set_epoch_drops_a_loaded_state_of_another_epoch():
    sampler = ResumableShuffleSampler(10, seed=1)
    sampler.load_state_dict({"epoch": 2, "examples": 7})
    sampler.set_epoch(3)
    assert list(sampler) == list(ResumableShuffleSampler(10, seed=1, epoch=3))
    sampler.load_state_dict({"epoch": 3, "examples": 7})
    sampler.set_epoch(3)  # the same epoch keeps it
    assert len(list(sampler)) == 3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_examples=0), "num_examples must be >= 1, got 0"),
        (dict(num_examples=5, world_size=0), "world_size must be >= 1, got 0"),
        (dict(num_examples=5, rank=2, world_size=2), r"rank must be in \[0, 2\), got 2"),
        (dict(num_examples=1, world_size=2, drop_last=True), "need at least 2"),
        (dict(num_examples=5, epoch=-1), "epoch must be >= 0, got -1"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ResumableShuffleSampler(**kwargs)


def test_bad_states():
    sampler = ResumableShuffleSampler(10, rank=1, world_size=3)
    with pytest.raises(ValueError, match=r"missing \['examples'\]"):
        sampler.load_state_dict({"epoch": 0})
    with pytest.raises(ValueError, match=r"examples must be in \[0, 4\] .* got 5"):
        sampler.load_state_dict({"epoch": 0, "examples": 5})
