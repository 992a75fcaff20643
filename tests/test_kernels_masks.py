"""The hash Bernoulli masks (rnnkit/kernels/masks.py, csrc/masks.cpp): the C++ fill against its pure-torch
twin bit for bit, both against splitmix64 written out in plain Python integers (and its published first
outputs), their statistics, and what the layers' masks keep: torch.manual_seed fixes them, the backend does
not change them.
"""

import random

import pytest
import torch
from built import require
from oracle import torch_threads

from rnnkit import kernels
from rnnkit import nn as rnn
from rnnkit.kernels import masks

U64 = (1 << 64) - 1


def splitmix64(z: int) -> int:
    """Steele, Lea and Flood's finaliser on Python ints (the oracle: no torch, no int64 wrap-around)."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & U64
    return z ^ (z >> 31)


def oracle_mask(seed: int, n: int, threshold: int) -> list[float]:
    keys = ((seed + (i + 1) * 0x9E3779B97F4A7C15) & U64 for i in range(n))
    return [float(splitmix64(key) >> 40 < threshold) for key in keys]


require("masks op", masks.op_available)


def op(seed: int, size, p: float, dtype=torch.float32) -> torch.Tensor:
    return torch.ops.rnnkit.hash_bernoulli(torch.tensor(seed), list(size), masks.threshold(p), dtype)


def twin(seed: int, size, p: float, dtype=torch.float32) -> torch.Tensor:
    return masks.bernoulli_twin(torch.tensor(seed), tuple(size), masks.threshold(p), dtype)


def test_the_published_splitmix64_outputs():
    """Vigna's splitmix64.c from state 0 returns 0xe220a8397b1dcdaf, 0x6e789e6aa1b965f4, 0x06c45d188009454f:
    elements 0, 1, 2 of the draw keyed 0 are their top 24 bits against the threshold."""
    firsts = [splitmix64(i * 0x9E3779B97F4A7C15 & U64) for i in (1, 2, 3)]
    assert firsts == [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F]
    for index, bits in enumerate((0xE220A8, 0x6E789E, 0x06C45D)):
        for fill in (op, twin):                       # threshold == bits: the element is 0; one more: 1
            assert fill(0, (3,), bits / (1 << 24))[index].item() == 0.0
            assert fill(0, (3,), (bits + 1) / (1 << 24))[index].item() == 1.0


@pytest.mark.parametrize("trial", range(6))
def test_op_and_twin_equal_the_python_oracle(trial):
    rng = random.Random(trial)
    seed = rng.randrange(-(1 << 63), 1 << 63)
    size = (rng.randint(1, 7), rng.randint(1, 5), rng.randint(1, 9))
    p = rng.random()
    n = size[0] * size[1] * size[2]
    expected = torch.tensor(oracle_mask(seed % (1 << 64), n, masks.threshold(p))).view(size)
    assert torch.equal(op(seed, size, p), expected)
    assert torch.equal(twin(seed, size, p), expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("p", [0.0, 1.0, 0.1, 0.5, 0.97])
def test_op_equals_twin_on_two_threads(dtype, p):
    """300,000 elements: split across two threads (1 << 15 a thread), the lanes' tails included."""
    seed = random.Random(int(p * 100)).randrange(-(1 << 63), 1 << 63)
    with torch_threads(2):
        a = op(seed, (75, 8, 500), p, dtype)
    b = twin(seed, (75, 8, 500), p, dtype)
    assert a.dtype == b.dtype == dtype and a.shape == (75, 8, 500)
    assert torch.equal(a, b)
    if p in (0.0, 1.0):
        assert torch.equal(a, torch.full_like(a, p))


def test_empty_and_zero_dimensional_sizes():
    for size in ((0,), (3, 0, 2), ()):
        assert torch.equal(op(5, size, 0.5), twin(5, size, 0.5))
        assert op(5, size, 0.5).shape == size


@pytest.mark.parametrize("p", [0.05, 0.3, 0.75])
def test_statistics(p):
    """P(1) = p; neighbours, rows and seeds uncorrelated (each within 5 standard errors)."""
    n, se = 1 << 20, lambda v, count: 5 * (v / count) ** 0.5  # noqa: E731
    a, b = op(11, (n,), p).double(), op(12, (n,), p).double()
    assert abs(a.mean().item() - p) < se(p * (1 - p), n)
    centred = lambda v: v - p  # noqa: E731
    for x, y in ((a[:-1], a[1:]), (a[: n // 2], a[n // 2 :]), (a, b)):   # next element, far one, next seed
        covariance = (centred(x) * centred(y)).mean().item()
        assert abs(covariance) < se((p * (1 - p)) ** 2, len(x))


def test_bad_arguments_name_what_was_expected():
    with pytest.raises(ValueError, match=r"probability must lie in \[0, 1\], got 1.5"):
        masks.threshold(1.5)
    with pytest.raises(RuntimeError, match="expected threshold in"):
        torch.ops.rnnkit.hash_bernoulli(torch.tensor(1), [3], (1 << 24) + 1, torch.float32)
    with pytest.raises(RuntimeError, match="expected seed to be one int64"):
        torch.ops.rnnkit.hash_bernoulli(torch.tensor([1, 2]), [3], 5, torch.float32)


def test_opcheck():
    args = (torch.tensor(3), [4, 5], 1 << 23, torch.float32)
    torch.library.opcheck(torch.ops.rnnkit.hash_bernoulli.default, args)


def test_layer_masks_follow_the_seed_and_not_the_backend():
    """torch.manual_seed fixes a layer's masks; the C++ fill and the twin (backend "scan") draw the same ones;
    another seed draws others; the zoneout masks of a layer-direction are not copies of each other."""
    layer = rnn.LSTM(4, 64, num_layers=2, bidirectional=True, zoneout=0.3, recurrent_dropout=0.2,
                     weight_drop=0.4)
    draws = []
    for backend in ("cpu", "scan", "cpu"):
        torch.manual_seed(7)
        with kernels.use(backend):
            draws.append(layer.sample_masks(T=9, B=5))
    for other in draws[1:]:
        assert sorted(other) == sorted(draws[0])
        assert all(torch.equal(other[key], draws[0][key]) for key in draws[0])
    torch.manual_seed(8)
    fresh = layer.sample_masks(T=9, B=5)
    assert not torch.equal(fresh["zoneout_h_l0"], draws[0]["zoneout_h_l0"])
    assert not torch.equal(draws[0]["zoneout_h_l0"], draws[0]["zoneout_c_l0"])
    assert not torch.equal(draws[0]["zoneout_h_l0"], draws[0]["zoneout_h_l0_reverse"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")
def test_twin_on_cuda_equals_the_cpu_op():
    seed = random.Random(5).randrange(-(1 << 63), 1 << 63)
    got = masks.bernoulli_twin(torch.tensor(seed), (40, 16, 33), masks.threshold(0.3), torch.float32, "cuda")
    assert got.device.type == "cuda" and torch.equal(got.cpu(), op(seed, (40, 16, 33), 0.3))
