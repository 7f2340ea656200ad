"""What a force-expire run's batches were: their count, sizes and times, for both force-expire benches."""

from __future__ import annotations

import statistics
from typing import Any


def batch_stats(batches: list[tuple[int, float]]) -> dict[str, Any]:
    """From (size, seconds) of each batch: count, sizes (min, median, max), times (median, p99) and every
    batch over 100 ms as (index, size, ms)."""
    sizes = [n for n, _s in batches]
    times = [s for _n, s in batches]
    return {
        "batches": len(batches),
        "batch_sizes_min_median_max": [min(sizes), int(statistics.median(sizes)), max(sizes)],
        "batch_ms_median_p99": [
            round(statistics.median(times) * 1000, 1),
            round(statistics.quantiles(times, n=100, method="inclusive")[98] * 1000, 1)
            if len(times) > 1
            else round(times[0] * 1000, 1),
        ],
        "batches_over_100ms": [(i, n, round(s * 1000)) for i, (n, s) in enumerate(batches) if s > 0.1],
    }
