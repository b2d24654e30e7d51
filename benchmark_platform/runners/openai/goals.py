"""Latency goals: parsing ``ttft_p90_ms=500``, checking a measurement against them, and DistServe's SLO attainment
(pure)."""

from __future__ import annotations

import math

import numpy as np

from benchmark_platform.runners.base import Measurement
from benchmark_platform.runners.openai.protocol import RequestRecord

GOAL_METRICS = ("ttft", "tpot", "itl", "e2e")
GOAL_PERCENTILES = ("p50", "p90", "p95", "p99", "p99.9", "mean")
# DistServe's goodput: the highest request rate whose SLO attainment (share of requests meeting every latency target)
# is at least this.
SLO_ATTAINMENT_TARGET = 0.9


def parse_goal(text: str) -> tuple[str, float]:
    """``ttft_p90_ms=500`` → (``ttft_p90``, 500.0); raises ValueError naming what is wrong."""
    name, _, value = text.partition("=")
    name = name.strip().removesuffix("_ms")
    metric, _, percentile = name.partition("_")
    percentile = percentile.replace("p999", "p99.9")
    if metric not in GOAL_METRICS or percentile not in GOAL_PERCENTILES:
        raise ValueError(
            f"goal {text!r}: expected METRIC_PERCENTILE_ms=VALUE with METRIC in {'/'.join(GOAL_METRICS)} "
            f"and PERCENTILE in {'/'.join(GOAL_PERCENTILES)}, e.g. ttft_p90_ms=500"
        )
    try:
        limit = float(value)
    except ValueError:
        raise ValueError(f"goal {text!r}: the limit must be a number of milliseconds") from None
    if not math.isfinite(limit) or limit <= 0:
        raise ValueError(f"goal {text!r}: the limit must be a positive finite number of milliseconds")
    return f"{metric}_{percentile}", limit


def slo_attainment(records: list[RequestRecord], goals: dict[str, float], e2e_limit_ms: float | None = None) -> float:
    """Share of sent requests that completed within every per-request target (TTFT, TPOT, E2E limits among the
    goals, whatever their percentile), as DistServe counts SLO attainment; failed requests count as misses."""
    limits = {name.split("_")[0]: limit / 1e3 for name, limit in goals.items()}
    if e2e_limit_ms is not None:
        limits["e2e"] = e2e_limit_ms / 1e3
    if not records:
        return 0.0
    met = 0
    for record in records:
        if record.error is not None or not record.token_times:
            continue
        tpot = record.tpot or 0.0
        gaps = np.diff(record.token_times)
        values = {"ttft": record.ttft, "tpot": tpot, "e2e": record.e2e, "itl": float(gaps.max()) if gaps.size else 0}
        met += all(values[metric] <= limit for metric, limit in limits.items())
    return met / len(records)


def goal_report(measurement: Measurement, goals: dict[str, float]) -> dict[str, dict[str, float | bool]]:
    """Each goal with the measured value and whether it is met."""
    detail = measurement.detailed_metrics
    report = {}
    for name, limit in goals.items():
        metric, percentile = name.split("_", 1)
        value = (detail.get(f"{metric}_ms") or {}).get(percentile)
        report[name] = {"limit_ms": limit, "measured_ms": value, "met": value is not None and value <= limit}
    return report
