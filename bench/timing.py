"""How the benchmark times a thing and writes a table row: shared by every case module."""

import statistics
import time


def median_seconds(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(case, key, value, unit, baseline=None, baseline_value=None, faster_is="lower", **extra):
    """One table row. `time_ratio` is the one ratio the benchmark states: our time over the baseline's
    (below 1: ours is faster); for a rate (`faster_is="higher"`, e.g. names/s) their rate over ours."""
    time_ratio = None  # faster_is=None: a figure that is not a time or rate, such as a loss
    if baseline_value and faster_is:
        time_ratio = value / baseline_value if faster_is == "lower" else baseline_value / value
    return {"case": case, "key": key, "value": value, "unit": unit, "baseline": baseline,
            "baseline_value": baseline_value, "time_ratio": time_ratio, **extra}


def skipped(case, key, unit, package):
    """The row of a case whose baseline is not installed: how to install it, and no figure."""
    return row(f"{case} (skipped: {package} is not installed; pip install -e '.[bench]' adds it)", key, None, unit)


def interleaved(fns, reps):
    """Median seconds of each function, timed in turns (so load on the machine hits them alike)."""
    times = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, times):
            start = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - start)
    return [statistics.median(ts) for ts in times]
