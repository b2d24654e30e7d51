"""The ranking package's one edge with the database: load the results frame and use cases, write what the pure
functions computed. Each write replaces its rows in one transaction and validates everything before it starts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, delete, insert, select

from benchmark_platform.orm import (
    BenchmarkResult,
    DailyModelStats,
    HardwareConfig,
    InferenceFramework,
    Model,
    ModelRanking,
    ModelUseCase,
    ModelVersion,
    UseCase,
    version_key_expression,
)
from benchmark_platform.ranking.daily_stats import DAILY_STATS_COLUMNS, daily_model_stats
from benchmark_platform.ranking.frames import METRIC_COLUMNS, RESULT_FRAME_COLUMNS, require_columns
from benchmark_platform.ranking.rankings import (
    DEFAULT_RANKING_TTL,
    UseCaseCriteria,
    UseCaseRanking,
    rank_use_cases,
)

_FRAME_TYPES = {
    **{column: float for column in METRIC_COLUMNS},
    "cost_per_hour_usd": float,
    "spot_cost_per_hour_usd": float,
    "batch_size": "int64",
    "sequence_length": "int64",
    "tensor_parallel": "int64",
    "gpu_count": "int64",
    "spot_available": bool,
}


def _results_query(day: date | None, since: date | None, until: date | None, workload_types: Sequence[str] | None):
    result = BenchmarkResult
    query = (
        select(
            result.id.label("result_id"),
            result.benchmark_date,
            result.created_at,
            result.workload_type,
            result.batch_size,
            result.sequence_length,
            result.tensor_parallel,
            result.runner,
            result.quality_flags,
            ModelVersion.model_id,
            Model.name.label("model_name"),
            result.model_version_id,
            version_key_expression().label("version_key"),
            result.hardware_config_id,
            HardwareConfig.name.label("hardware_name"),
            HardwareConfig.gpu_type,
            HardwareConfig.gpu_count,
            HardwareConfig.cost_per_hour_usd,
            HardwareConfig.spot_cost_per_hour_usd,
            HardwareConfig.spot_available,
            result.framework_id,
            InferenceFramework.name.label("framework_name"),
            *(getattr(result, column) for column in METRIC_COLUMNS),
        )
        .join(ModelVersion, ModelVersion.id == result.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .join(HardwareConfig, HardwareConfig.id == result.hardware_config_id)
        .join(InferenceFramework, InferenceFramework.id == result.framework_id)
        .order_by(result.benchmark_date, result.created_at)
    )
    if day is not None:
        query = query.where(result.benchmark_date == day)
    if since is not None:
        query = query.where(result.benchmark_date >= since)
    if until is not None:
        query = query.where(result.benchmark_date <= until)
    if workload_types is not None:
        query = query.where(result.workload_type.in_(list(workload_types)))
    return query


def load_results_frame(
    engine: Engine,
    *,
    day: date | None = None,
    since: date | None = None,
    until: date | None = None,
    workload_types: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Benchmark results joined with model, version, hardware and framework: RESULT_FRAME_COLUMNS, one row each."""
    with engine.connect() as connection:
        rows = connection.execute(_results_query(day, since, until, workload_types)).all()
    frame = pd.DataFrame.from_records(rows, columns=list(RESULT_FRAME_COLUMNS))
    return frame.astype(_FRAME_TYPES)


def load_use_cases(engine: Engine) -> list[UseCaseCriteria]:
    """Every row of ``use_case_taxonomy`` as ranking criteria, ordered by subcategory."""
    with engine.connect() as connection:
        rows = connection.execute(select(UseCase).order_by(UseCase.subcategory)).mappings().all()
    return [
        UseCaseCriteria.from_taxonomy(
            id=row["id"],
            subcategory=row["subcategory"],
            category=row["category"],
            characteristics=row["characteristics"],
            default_weights=row["default_weights"],
        )
        for row in rows
    ]


class _DailyStatsRow(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model_id: uuid.UUID
    stats_date: date
    avg_accuracy: float | None = Field(ge=0, le=1)
    avg_throughput: float | None = Field(ge=0)
    p95_latency_ms: float | None = Field(ge=0)
    total_benchmarks: int = Field(ge=0)
    aggregated_metrics: dict[str, Any]


def write_daily_stats(engine: Engine, day: date, frame: pd.DataFrame) -> int:
    """Replace the ``daily_model_stats`` rows of ``day`` with ``frame`` (DAILY_STATS_COLUMNS); returns rows written."""
    require_columns(frame, DAILY_STATS_COLUMNS, "write_daily_stats")
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    rows = [_DailyStatsRow.model_validate(record) for record in records]
    wrong_day = sorted({str(row.stats_date) for row in rows if row.stats_date != day})
    if wrong_day:
        raise ValueError(f"daily stats for {day} hold rows dated {', '.join(wrong_day)}")
    with engine.begin() as connection:
        connection.execute(delete(DailyModelStats).where(DailyModelStats.stats_date == day))
        if rows:
            connection.execute(insert(DailyModelStats), [row.model_dump() for row in rows])
    return len(rows)


def write_rankings(engine: Engine, rankings: Iterable[UseCaseRanking]) -> dict[str, int]:
    """Replace each ranked use case's ``model_rankings`` and ``model_use_cases`` rows, all in one transaction.

    Returns the number of models written per use case. A use case that no longer has any ranked configuration
    loses its old rows: stale rankings are worse than none.
    """
    rankings = list(rankings)
    unknown = [ranking.use_case.subcategory for ranking in rankings if ranking.use_case.id is None]
    if unknown:
        raise ValueError(f"use cases without a use_case_taxonomy id cannot be stored: {', '.join(unknown)}")
    written: dict[str, int] = {}
    with engine.begin() as connection:
        for ranking in rankings:
            use_case = ranking.use_case
            connection.execute(delete(ModelRanking).where(ModelRanking.use_case_category == use_case.subcategory))
            connection.execute(delete(ModelUseCase).where(ModelUseCase.use_case_id == use_case.id))
            if ranking.model_rankings:
                connection.execute(insert(ModelRanking), [record.model_dump() for record in ranking.model_rankings])
                connection.execute(insert(ModelUseCase), [record.model_dump() for record in ranking.model_use_cases])
            written[use_case.subcategory] = len(ranking.model_rankings)
    return written


def refresh_rankings(
    engine: Engine,
    *,
    since: date | None = None,
    calculated_at: datetime | None = None,
    ttl: timedelta = DEFAULT_RANKING_TTL,
) -> dict[str, UseCaseRanking]:
    """Rank every use case of the taxonomy from the results (dated ``since`` or later) and store the rankings."""
    use_cases = load_use_cases(engine)
    results = load_results_frame(engine, since=since, workload_types=[use_case.subcategory for use_case in use_cases])
    rankings = rank_use_cases(results, use_cases, calculated_at=calculated_at, ttl=ttl)
    write_rankings(engine, rankings.values())
    return rankings


def refresh_daily_stats(engine: Engine, day: date) -> pd.DataFrame:
    """Compute and store ``day``'s daily_model_stats; returns the rows written."""
    frame = daily_model_stats(load_results_frame(engine, day=day), day)
    write_daily_stats(engine, day, frame)
    return frame
