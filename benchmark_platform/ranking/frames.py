"""The shape of the results frame the ranking functions read: one row per benchmark result, joined with its
model, hardware and framework (``store.load_results_frame`` builds it from the database)."""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from benchmark_platform.domain import CONFIG_DIMENSIONS
from benchmark_platform.runners.base import METRIC_COLUMNS

RESULT_FRAME_COLUMNS = (
    "result_id",
    "benchmark_date",
    "created_at",
    *CONFIG_DIMENSIONS,
    "runner",
    "source",  # where the numbers come from: the runner label, or the public source they were imported from
    "quality_flags",
    "model_id",
    "model_name",
    "model_version_id",
    "version_key",
    "hardware_config_id",
    "hardware_name",
    "gpu_type",
    "gpu_count",
    "cost_per_hour_usd",
    "spot_cost_per_hour_usd",
    "reserved_cost_per_hour_usd",
    "spot_available",
    "framework_id",
    "framework_name",
    *METRIC_COLUMNS,
)


def require_columns(frame: pd.DataFrame, columns: Iterable[str], purpose: str) -> None:
    """Fail early, naming what is missing, instead of a KeyError deep inside a groupby."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise ValueError(f"{purpose} needs result columns that are missing: {', '.join(missing)}")
