"""One day's benchmark results, per model, as the ``daily_model_stats`` row a dashboard reads.

Latency: ``p95_latency_ms`` is the 95th percentile (numpy's linear interpolation) over the model's results of
that day of each result's TTFT p90. TTFT is the latency every use case's SLA names, and p95 across configurations
shows how slow the model gets on its worse deployments, not on its best one. Averages skip missing values; a
statistic with no values at all is NaN in the frame and null in the database and in ``aggregated_metrics``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd

from benchmark_platform.ranking.frames import require_columns
from benchmark_platform.ranking.rankings import json_value

LATENCY_COLUMN = "ttft_p90_ms"
LATENCY_PERCENTILE = 0.95
DAILY_STATS_COLUMNS = (
    "model_id",
    "model_name",
    "stats_date",
    "avg_accuracy",
    "avg_throughput",
    "p95_latency_ms",
    "total_benchmarks",
    "aggregated_metrics",
)
_INPUT_COLUMNS = (
    "benchmark_date",
    "model_id",
    "model_name",
    "hardware_name",
    "framework_name",
    "workload_type",
    "runner",
    "accuracy_score",
    "throughput_tokens_sec",
    "ttft_p90_ms",
    "tpot_p90_ms",
)


def _summaries(day_rows: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return day_rows.groupby(by, sort=True).agg(
        benchmarks=("runner", "size"),
        simulated=("_simulated", "sum"),
        avg_accuracy=("accuracy_score", "mean"),
        avg_throughput=("throughput_tokens_sec", "mean"),
        p95_latency_ms=(LATENCY_COLUMN, lambda values: values.quantile(LATENCY_PERCENTILE)),
        avg_tpot_p90_ms=("tpot_p90_ms", "mean"),
    )


def _breakdown(per_group: pd.DataFrame, model_id: Any) -> dict[str, dict[str, Any]]:
    if model_id not in per_group.index.get_level_values(0):
        return {}
    return {
        str(name): {statistic: json_value(value) for statistic, value in stats.items()}
        for name, stats in per_group.loc[model_id].to_dict("index").items()
    }


def daily_model_stats(results: pd.DataFrame, day: date) -> pd.DataFrame:
    """One row per model with results dated ``day`` (DAILY_STATS_COLUMNS); other days in ``results`` are ignored.

    ``aggregated_metrics`` holds the latency definition, the runner split (measured vs simulated) and the same
    statistics per hardware, per framework and per workload.
    """
    require_columns(results, _INPUT_COLUMNS, "daily stats")
    day_rows = results[pd.to_datetime(results["benchmark_date"]).dt.date == day]
    if day_rows.empty:
        return pd.DataFrame({column: pd.Series(dtype=object) for column in DAILY_STATS_COLUMNS})
    day_rows = day_rows.assign(_simulated=day_rows["runner"].eq("simulated"))
    per_model = _summaries(day_rows, ["model_id"])
    names = day_rows.groupby("model_id", sort=True)["model_name"].first()
    per_hardware = _summaries(day_rows, ["model_id", "hardware_name"])
    per_framework = _summaries(day_rows, ["model_id", "framework_name"])
    per_workload = _summaries(day_rows, ["model_id", "workload_type"])
    rows = []
    for model_id, stats in per_model.iterrows():
        benchmarks, simulated = int(stats["benchmarks"]), int(stats["simulated"])
        rows.append(
            {
                "model_id": model_id,
                "model_name": names[model_id],
                "stats_date": day,
                "avg_accuracy": float(stats["avg_accuracy"]),
                "avg_throughput": float(stats["avg_throughput"]),
                "p95_latency_ms": float(stats["p95_latency_ms"]),
                "total_benchmarks": benchmarks,
                "aggregated_metrics": {
                    "latency": f"p{round(LATENCY_PERCENTILE * 100)} over the day's results of {LATENCY_COLUMN}",
                    "avg_tpot_p90_ms": json_value(stats["avg_tpot_p90_ms"]),
                    "runners": {"measured": benchmarks - simulated, "simulated": simulated},
                    "by_hardware": _breakdown(per_hardware, model_id),
                    "by_framework": _breakdown(per_framework, model_id),
                    "by_workload": _breakdown(per_workload, model_id),
                },
            }
        )
    return pd.DataFrame(rows, columns=list(DAILY_STATS_COLUMNS))
