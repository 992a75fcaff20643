"""The one timing rule every benchmark here uses: callables alternate run by run, median wall time."""

from __future__ import annotations

import statistics
import time


def median_ms(runs: dict, repeats: int, warmup: int) -> dict[str, float]:
    """Median wall time (ms) of each callable; the callables alternate run by run."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            times[name].append(1e3 * (time.perf_counter() - start))
    return {name: statistics.median(ts) for name, ts in times.items()}
