"""The ranking package's one edge with the database: load the results frame and use cases, write what the pure
functions computed. Each write replaces its rows in one transaction and validates everything before it starts."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, Float, case, delete, func, insert, select

from benchmark_platform import planner, queue
from benchmark_platform.domain import CONFIG_DIMENSIONS
from benchmark_platform.interop import EXPORT_COLUMNS
from benchmark_platform.orm import (
    BenchmarkResult,
    DailyModelStats,
    DeploymentRanking,
    HardwareConfig,
    InferenceFramework,
    Model,
    ModelRanking,
    ModelUseCase,
    ModelVersion,
    UseCase,
    UseCaseRankingSummary,
    version_key_expression,
)
from benchmark_platform.public_results import PUBLIC_SOURCES
from benchmark_platform.ranking import criteria
from benchmark_platform.ranking.daily_stats import DAILY_STATS_COLUMNS, daily_model_stats
from benchmark_platform.ranking.frames import METRIC_COLUMNS, RESULT_FRAME_COLUMNS, require_columns
from benchmark_platform.ranking.predictors import DEPLOYMENT_KEY, held_out_phrases, predictor_labels
from benchmark_platform.ranking.rankings import (
    DEFAULT_RANKING_TTL,
    DEPLOYMENT_COLUMNS,
    RANKED,
    STORED_DEPLOYMENT_COLUMNS,
    DeploymentRow,
    UseCaseCriteria,
    UseCaseRanking,
    configuration_breakdown,
    configuration_columns,
    json_value,
    rank_use_cases,
    unranked_columns,
)

_FRAME_TYPES = {
    **{column: float for column in METRIC_COLUMNS},
    "cost_per_hour_usd": float,
    "spot_cost_per_hour_usd": float,
    "reserved_cost_per_hour_usd": float,
    "batch_size": "int64",
    "sequence_length": "int64",
    "tensor_parallel": "int64",
    "expert_parallel": "int64",
    "data_parallel_attention": bool,
    "prefix_caching": bool,
    "gpu_count": "int64",
    "spot_available": bool,
}


def _results_query(
    day: date | None = None,
    since: date | None = None,
    until: date | None = None,
    workload_types: Sequence[str] | None = None,
    model_version_id: uuid.UUID | None = None,
):
    """The one join of results with their version, hardware and framework: the ranking frame and the export."""
    result = BenchmarkResult
    source_name = result.detailed_metrics["source_tool"]["name"].astext
    query = (
        select(
            result.id.label("result_id"),
            result.benchmark_date,
            result.created_at,
            *(getattr(result, column) for column in CONFIG_DIMENSIONS),
            result.runner,
            case((source_name.in_(PUBLIC_SOURCES), source_name), else_=result.runner).label("source"),
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
            HardwareConfig.reserved_cost_per_hour_usd,
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
    if model_version_id is not None:
        query = query.where(result.model_version_id == model_version_id)
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


def load_export_frame(engine: Engine, model_version_id: uuid.UUID | None = None) -> pd.DataFrame:
    """Every result (of one version, when given) as ``export-results`` writes it (``interop.EXPORT_COLUMNS``): the
    results frame's own query plus the tool that measured it, so the export cannot drift from what is ranked."""
    detail = BenchmarkResult.detailed_metrics
    source_tool = func.coalesce(detail["source_tool"]["name"].astext, detail["runner_name"].astext)
    query = _results_query(model_version_id=model_version_id).add_columns(source_tool.label("source_tool"))
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    frame = pd.DataFrame.from_records(rows, columns=[*RESULT_FRAME_COLUMNS, "source_tool"])
    return frame[list(EXPORT_COLUMNS)]


def load_predictors(engine: Engine, workload_type: str, model_version_ids: Iterable[uuid.UUID]) -> pd.DataFrame:
    """The predictors behind a use case's simulated results (``detailed_metrics.predictor``) of these versions: one
    row per deployment (``predictors.DEPLOYMENT_KEY``) and distinct predictor."""
    result = BenchmarkResult
    predictor = result.detailed_metrics["predictor"]
    query = (
        select(*(getattr(result, column) for column in DEPLOYMENT_KEY), predictor.label("predictor"))
        .distinct()
        .where(
            result.workload_type == workload_type,
            result.runner == "simulated",
            result.model_version_id.in_(list(model_version_ids)),
            predictor.is_not(None),
        )
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return pd.DataFrame.from_records(rows, columns=[*DEPLOYMENT_KEY, "predictor"])


def with_predictors(engine: Engine, ranking: UseCaseRanking) -> UseCaseRanking:
    """``ranking`` with a ``predictor`` column (a short label, None where nothing is simulated) and a ``held_out``
    column (what the validation rows say of those predictors, ``predictors.held_out_phrases``) on its ranked and
    unranked deployments, so that what shows a simulated number can name the model that made it and its error."""
    frames = (ranking.configurations, ranking.unranked)
    versions = pd.concat([frame["model_version_id"] for frame in frames]).unique()
    loaded = load_predictors(engine, ranking.use_case.subcategory, versions)
    configurations, unranked = (
        frame.assign(predictor=predictor_labels(frame, loaded), held_out=held_out_phrases(frame, loaded))
        for frame in frames
    )
    return replace(ranking, configurations=configurations, unranked=unranked)


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


def _criteria_breakdown(
    record: dict[str, Any], weights: dict[str, float], registry: Mapping[str, criteria.Criterion], *, ranked: bool
) -> dict[str, Any]:
    """Per registered criterion the deployment's value in its unit; for a ranked one also its weight and closeness.
    Kept as JSON so that a criterion added to the registry is stored without a migration."""
    values = {key: {"value": json_value(record[c.column]), "unit": c.unit} for key, c in registry.items()}
    return values | (configuration_breakdown(record, weights, registry) if ranked else {})


def _deployment_rows(ranking: UseCaseRanking, calculated_at: datetime) -> list[dict[str, Any]]:
    """Every deployment the ranking considered, ranked ones first (best first), as ``deployment_rankings`` rows."""
    rows = []
    for status_of, frame in ((None, ranking.configurations), ("status", ranking.unranked)):
        for record in frame.to_dict("records"):
            values = {column: json_value(record[column]) for column in DEPLOYMENT_COLUMNS}
            rows.append(
                values
                | {
                    "status": record[status_of] if status_of else RANKED,
                    "criteria": _criteria_breakdown(
                        record, ranking.weights, ranking.use_case.registry, ranked=status_of is None
                    ),
                    "calculated_at": calculated_at,
                }
            )
    return [DeploymentRow.model_validate(row).model_dump(include=set(STORED_DEPLOYMENT_COLUMNS)) for row in rows]


def write_rankings(engine: Engine, rankings: Iterable[UseCaseRanking]) -> dict[str, int]:
    """Replace each ranked use case's stored rankings, all in one transaction: its ``model_rankings`` and
    ``model_use_cases`` rows, its ``use_case_rankings`` row and every deployment it considered
    (``deployment_rankings``), so that the report and the demo read what was ranked instead of ranking again.

    Returns the number of models written per use case. A use case that no longer has any ranked configuration
    loses its old rows: stale rankings are worse than none.
    """
    rankings = list(rankings)
    unknown = [ranking.use_case.subcategory for ranking in rankings if ranking.use_case.id is None]
    if unknown:
        raise ValueError(f"use cases without a use_case_taxonomy id cannot be stored: {', '.join(unknown)}")
    prepared = []
    for ranking in rankings:
        calculated_at = ranking.calculated_at
        summary = {
            "use_case": ranking.use_case.subcategory,
            "use_case_id": ranking.use_case.id,
            "weights": ranking.weights,
            "considered": ranking.considered,
            "excluded": ranking.excluded,
            "notes": list(ranking.notes),
            "pruning": ranking.pruning,
            "price_basis": ranking.use_case.price_basis,
            "cost_unit": ranking.use_case.cost_unit,
            "calculated_at": calculated_at,
        }
        prepared.append((ranking, summary, _deployment_rows(ranking, calculated_at)))
    written: dict[str, int] = {}
    with engine.begin() as connection:
        for ranking, summary, deployments in prepared:
            use_case = ranking.use_case
            connection.execute(delete(ModelRanking).where(ModelRanking.use_case_category == use_case.subcategory))
            connection.execute(delete(ModelUseCase).where(ModelUseCase.use_case_id == use_case.id))
            connection.execute(
                delete(UseCaseRankingSummary).where(UseCaseRankingSummary.use_case == use_case.subcategory)
            )  # its deployment_rankings rows go with it (ON DELETE CASCADE)
            if ranking.model_rankings:
                connection.execute(insert(ModelRanking), [record.model_dump() for record in ranking.model_rankings])
                connection.execute(insert(ModelUseCase), [record.model_dump() for record in ranking.model_use_cases])
            connection.execute(insert(UseCaseRankingSummary), [summary])
            if deployments:
                connection.execute(insert(DeploymentRanking), deployments)
            written[use_case.subcategory] = len(ranking.model_rankings)
    return written


class RankingsNotStoredError(LookupError):
    """No stored ranking for a use case: the rankings have not been computed since its results arrived."""


def _stored_deployments_query(names: Sequence[str]):
    ranked = DeploymentRanking
    return (
        select(
            *ranked.__table__.columns,
            ModelVersion.model_id,
            Model.name.label("model_name"),
            version_key_expression().label("version_key"),
            HardwareConfig.name.label("hardware_name"),
            HardwareConfig.gpu_type,
            HardwareConfig.gpu_count,
            InferenceFramework.name.label("framework_name"),
        )
        .join(ModelVersion, ModelVersion.id == ranked.model_version_id)
        .join(Model, Model.id == ModelVersion.model_id)
        .join(HardwareConfig, HardwareConfig.id == ranked.hardware_config_id)
        .join(InferenceFramework, InferenceFramework.id == ranked.framework_id)
        .where(ranked.use_case.in_(list(names)))
        .order_by(ranked.use_case, ranked.rank.asc().nulls_last(), ranked.id)
    )


_STORED_TYPES = {
    **{column.key: float for column in DeploymentRanking.__table__.columns if isinstance(column.type, Float)},
    "gpu_count": "int64",
}


def _breakdown_value(breakdown: dict[str, Any], key: str, field: str) -> float:
    value = (breakdown.get(key) or {}).get(field)
    return float("nan") if value is None else value


def _stored_frames(rows: list[dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The stored deployments as the ranking returned them: ranked configurations and the unranked ones."""
    frame = pd.DataFrame(rows)
    ranked_columns, unranked = list(configuration_columns()), list(unranked_columns())
    if frame.empty:
        return pd.DataFrame(columns=ranked_columns), pd.DataFrame(columns=unranked)
    frame = frame.astype(_STORED_TYPES)
    for key, criterion in criteria.CRITERIA.items():
        frame[criteria.closeness_column(key)] = [_breakdown_value(b, key, "closeness") for b in frame["criteria"]]
        if criterion.column not in frame.columns:  # a criterion without a column of its own: its stored value
            frame[criterion.column] = [_breakdown_value(b, key, "value") for b in frame["criteria"]]
    is_ranked = frame["status"].eq(RANKED)
    configurations = frame.loc[is_ranked, ranked_columns].reset_index(drop=True)
    configurations = configurations.astype({"rank": "int64", "score": float, "pareto": bool})
    return configurations, frame.loc[~is_ranked, unranked].reset_index(drop=True)


def load_stored_rankings(engine: Engine, use_cases: Sequence[UseCaseCriteria]) -> dict[str, UseCaseRanking]:
    """The stored rankings of ``use_cases`` (those ranked so far; keyed by subcategory), exactly as the rankings
    step wrote them: nothing is ranked here. Only the configurations, unranked deployments, weights, counts and
    notes are loaded, each use case with the price basis and cost unit it was ranked on; the model-level records
    stay in ``model_rankings``. Rankings stored before those were recorded (migration 0010) count as not stored."""
    by_name = {use_case.subcategory: use_case for use_case in use_cases}
    with engine.connect() as connection:
        summaries = connection.execute(
            select(UseCaseRankingSummary.__table__).where(
                UseCaseRankingSummary.use_case.in_(list(by_name)), UseCaseRankingSummary.price_basis.is_not(None)
            )
        ).mappings()
        summaries = {summary["use_case"]: summary for summary in summaries}
        rows = connection.execute(_stored_deployments_query(list(summaries))).mappings().all()
    per_use_case: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        per_use_case.setdefault(row["use_case"], []).append(dict(row))
    rankings = {}
    for name, summary in summaries.items():
        configurations, unranked = _stored_frames(per_use_case.get(name, []))
        rankings[name] = UseCaseRanking(
            use_case=by_name[name].model_copy(
                update={"price_basis": summary["price_basis"], "cost_unit": summary["cost_unit"]}
            ),
            configurations=configurations,
            weights=dict(summary["weights"]),
            considered=summary["considered"],
            excluded=dict(summary["excluded"]),
            notes=tuple(summary["notes"]),
            model_rankings=(),
            model_use_cases=(),
            unranked=unranked,
            calculated_at=summary["calculated_at"],
            pruning=dict(summary["pruning"]),
        )
    return rankings


def refresh_rankings(
    engine: Engine,
    *,
    since: date | None = None,
    calculated_at: datetime | None = None,
    ttl: timedelta = DEFAULT_RANKING_TTL,
) -> dict[str, UseCaseRanking]:
    """Rank every use case of the taxonomy from the results (dated ``since`` or later) and store the rankings, each
    with what the adaptive planner skipped of its configs (``UseCaseRanking.pruning``)."""
    use_cases = load_use_cases(engine)
    results = load_results_frame(engine, since=since, workload_types=[use_case.subcategory for use_case in use_cases])
    pruning = queue.pruning_by_use_case(engine)
    rankings = {
        name: replace(ranking, pruning=_pruning_record(pruning.get(name, {})))
        for name, ranking in rank_use_cases(results, use_cases, calculated_at=calculated_at, ttl=ttl).items()
    }
    write_rankings(engine, rankings.values())
    return rankings


def _pruning_record(by_version: dict[str, queue.PruningSummary]) -> dict[str, Any]:
    """What ``UseCaseRanking.pruning`` holds: the planner's top-k and, per version that had configs skipped, its
    summary (skipped by reason, GPU-hours saved and still to run)."""
    versions = {key: summary.as_dict() for key, summary in by_version.items() if summary.skipped_by_reason}
    return {"top_k": planner.DEFAULT_SETTINGS.top_k, "versions": versions} if versions else {}


def refresh_daily_stats(engine: Engine, day: date) -> pd.DataFrame:
    """Compute and store ``day``'s daily_model_stats; returns the rows written."""
    frame = daily_model_stats(load_results_frame(engine, day=day), day)
    write_daily_stats(engine, day, frame)
    return frame
