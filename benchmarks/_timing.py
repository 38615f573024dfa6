"""The timing loop the benchmarks share: every case is called in turn, the order flipping each repeat, so that a drift
in machine load (another process, frequency scaling) hits all cases alike; the peer and ours are timed side by side in
one process, never in separate runs."""
from __future__ import annotations

import statistics, time
from typing import Callable


def interleaved(fns: dict[str, Callable[[], object]],  # name -> a call doing one unit of work
                repeats: int,                         # timed calls of each
                warmup: int = 1,                      # untimed calls of each first (caches, allocator, lazy init)
                ) -> dict[str, list[float]]:
    "Seconds of every timed call of each function: calls interleaved, in `fns` order on even repeats and reversed on odd ones."
    if not fns: raise ValueError("fns is empty: give at least one function to time")
    if repeats < 1 or warmup < 0: raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    bad = [k for k, f in fns.items() if not callable(f)]
    if bad: raise TypeError(f"every value of fns must be callable with no arguments; not callable: {bad}")
    names = list(fns)
    for _ in range(warmup):
        for k in names: fns[k]()
    times = {k: [] for k in names}
    for r in range(repeats):
        for k in (names if r % 2 == 0 else names[::-1]):
            t0 = time.perf_counter(); fns[k](); times[k].append(time.perf_counter() - t0)
    return times


def medians(times: dict[str, list[float]]) -> dict[str, float]:
    "Median seconds per call of each case (robust to the odd slow call)."
    return {k: statistics.median(v) for k, v in times.items()}


def bests(times: dict[str, list[float]]) -> dict[str, float]:
    "Fastest call of each case (the least disturbed by other load)."
    return {k: min(v) for k, v in times.items()}
