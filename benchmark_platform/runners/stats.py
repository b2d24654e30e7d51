"""Percentile summaries shared by the runners (pure functions)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# numpy's default (linear interpolation between closest ranks), as vLLM's serving benchmark uses.
PERCENTILE_METHOD = "linear"


def summarize(values: Sequence[float] | np.ndarray, scale: float = 1.0) -> dict[str, float] | None:
    """p50/p90/p99/mean/min/max of ``values`` × ``scale`` (e.g. 1e3 for seconds to ms); None when there are none."""
    data = np.asarray(values, dtype=float) * scale
    if data.size == 0:
        return None
    p50, p90, p99 = np.percentile(data, [50, 90, 99], method=PERCENTILE_METHOD)
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "mean": float(data.mean()),
        "min": float(data.min()),
        "max": float(data.max()),
        "count": int(data.size),
    }
