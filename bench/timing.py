"""The one timer of the benchmarks: the median wall time of a call after a warm-up."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int | None = None) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls, after ``warmup`` calls (default: a tenth, at least 3)."""
    for _ in range(max(3, repeats // 10) if warmup is None else warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)
