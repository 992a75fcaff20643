"""The C++ kernels are required where the tests run: a kernel that does not build on this machine fails the
tests that need it, naming the compiler's first error, instead of skipping them (or testing the scan, which
`kernels.use("cpu")` falls back to, against itself)."""

import warnings
from collections.abc import Callable

import pytest

from rnnkit import kernels


def require_kernel(mode: str) -> None:
    """Build (first call) and load the kernel of `mode` ("LSTM", "GRU", "RNN_TANH", ...), or fail."""
    require(f"{mode} kernel", lambda: kernels.fused_available(mode))


def require(what: str, available: Callable[[], bool]) -> None:
    """Build (first call) and load a C++ library by calling `available`, or fail naming the reason."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = available()
    if not built:
        reasons = "; ".join(str(w.message) for w in caught) or "see the first RuntimeWarning of this session"
        pytest.fail(f"the C++ {what} did not build on this machine: {reasons}", pytrace=False)
