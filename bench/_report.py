"""What the benchmark modules share: timing a pair of callables, and printing figures as a table.

`median_pair` samples a measured callable and its baseline alternately, so drift and load hit both alike; `table`
lays out a header and rows in aligned columns; `duration` and `verdict_of` format a figure's cells.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Collection, Sequence

__all__ = ["duration", "median_pair", "table", "verdict_of"]


def duration(ns: float, *, us_decimals: int = 1) -> str:
    """`ns` nanoseconds in ns, µs (with `us_decimals` decimals) or ms, whichever reads best."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.{us_decimals}f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def verdict_of(passed: bool | None) -> str:
    """A figure's verdict: "info" without a target (`passed` is None), else "PASS" or "FAIL"."""
    return "info" if passed is None else "PASS" if passed else "FAIL"


def _sample(fn: Callable[[], object], batch: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(batch):
        fn()
    return (time.perf_counter_ns() - start) / batch


def median_pair(
    fn: Callable[[], object], baseline: Callable[[], object], *, batch: int, samples: int, warmup: int = 20
) -> tuple[float, float]:
    """Median nanoseconds per call of `fn` and `baseline`, sampled alternately so drift hits both.

    Each sample is the mean of `batch` calls; `warmup` samples of each are taken and dropped first.
    """
    for _ in range(warmup):
        _sample(fn, batch)
        _sample(baseline, batch)
    values: list[float] = []
    baselines: list[float] = []
    # As timeit does: no cyclic GC while sampling, or a full collection scanning a large live heap (e.g. 20,000
    # tool definitions) lands in random samples and measures the heap, not the code. What is measured here holds no
    # reference cycles, so reference counting frees each result as it goes.
    gc.collect()
    gc.disable()
    try:
        for _ in range(samples):
            values.append(_sample(fn, batch))
            baselines.append(_sample(baseline, batch))
    finally:
        gc.enable()
    return statistics.median(values), statistics.median(baselines)


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, right: Collection[int] = (1, 2, 4)) -> str:
    """`header`, a rule and `rows` in columns two spaces apart; the columns numbered in `right` are right-aligned."""
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
