"""Daily stats and TOPSIS rankings: the answers users come for (the report that draws them is ``defs/report.py``).

``daily_model_stats`` is kept per UTC day (a partition rewrites only its day). The rankings are one current snapshot,
not partitioned: each materialization ranks the results once and replaces the stored rankings (model and deployment
level, with what the adaptive planner skipped). The daily schedule and every new benchmark result refresh them, so a
backfill of old days rewrites those days' stats and never today's rankings."""

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd

from benchmark_platform.defs.partitions import daily_partitions
from benchmark_platform.defs.resources import PlatformDatabase
from benchmark_platform.ranking import criteria, store
from benchmark_platform.ranking.rankings import with_shapes

GROUP = "analytics"
TOP_SHOWN = 5
DEPLOYMENT_COLUMNS = ["rank", "score", "version_key", "hardware_name", "framework_name", "shape"]  # TP and options
SHAPE_COLUMNS = ["replicas", "batch_size"]


@dg.asset(
    partitions_def=daily_partitions,
    group_name=GROUP,
    kinds={"postgres", "pandas"},
    deps=[dg.AssetDep("benchmark_results", partition_mapping=dg.AllPartitionMapping())],
    description="Per model and UTC day: averages, p95 latency, benchmark counts, per-hardware/framework breakdowns.",
)
def daily_model_stats(context: dg.AssetExecutionContext, database: PlatformDatabase) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    frame = store.refresh_daily_stats(database.get_engine(), day)
    shown = frame.drop(columns=["aggregated_metrics", "model_id"], errors="ignore")
    if len(frame):  # say how many of each model's benchmarks are roofline estimates, not measurements
        shown["simulated"] = [metrics["runners"]["simulated"] for metrics in frame["aggregated_metrics"]]
    return dg.MaterializeResult(
        metadata={
            "models": dg.MetadataValue.int(len(frame)),
            "benchmarks": dg.MetadataValue.int(int(frame["total_benchmarks"].sum()) if len(frame) else 0),
            "stats": dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "no results that day"),
        }
    )


class RankingConfig(dg.Config):
    """Which results to rank (``lookback_days``: only the last days') and how long the rankings stay valid."""

    lookback_days: int | None = None
    ttl_hours: float = 48.0


def top_columns(registry: Mapping[str, criteria.Criterion] | None = None) -> list[str]:
    """The metadata table's columns: the deployment, every criterion's metric as the use case ranks on it
    (``registry``: cost in its unit), interactivity, flags."""
    metrics = [criterion.column for criterion in (registry or criteria.CRITERIA).values()]
    return list(
        dict.fromkeys(
            [*DEPLOYMENT_COLUMNS, *SHAPE_COLUMNS, *metrics, "interactivity_tokens_sec", "pareto", "simulated", "source"]
        )
    )


def top_table(configurations: pd.DataFrame, registry: Mapping[str, criteria.Criterion], top: int = TOP_SHOWN) -> str:
    shown = with_shapes(configurations.head(top))[top_columns(registry)].copy()
    shown["score"] = shown["score"].astype(float).round(3)
    shown["interactivity_tokens_sec"] = shown["interactivity_tokens_sec"].astype(float).round(1)
    for criterion in registry.values():  # each in its registered format; "-" where unmeasured
        shown[criterion.column] = [
            format(value, criterion.format) if pd.notna(value) else "-" for value in shown[criterion.column]
        ]
    return shown.to_markdown(index=False)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            "model_rankings",
            group_name=GROUP,
            kinds={"postgres"},
            deps=[dg.AssetDep("benchmark_results", partition_mapping=dg.AllPartitionMapping())],
            description="Current TOPSIS rank of every model per use case (its best deployable configuration).",
        ),
        dg.AssetSpec(
            "model_use_cases",
            group_name=GROUP,
            kinds={"postgres"},
            deps=["model_rankings"],
            description="Suitability of each model for each use case, with the recommended models flagged.",
        ),
    ],
)
def rankings(
    config: RankingConfig,
    database: PlatformDatabase,
):
    since = datetime.now(UTC).date() - timedelta(days=config.lookback_days) if config.lookback_days else None
    engine = database.get_engine()
    ranked = store.refresh_rankings(engine, since=since, ttl=timedelta(hours=config.ttl_hours))
    sections, pareto_sizes = [], {}
    for name, ranking in sorted(ranked.items()):
        pareto_sizes[name] = int(ranking.configurations["pareto"].sum()) if len(ranking.configurations) else 0
        body = (
            top_table(ranking.configurations, ranking.use_case.registry)
            if len(ranking.configurations)
            else "_no configuration meets the SLA_"
        )
        excluded = ", ".join(f"{reason}: {n}" for reason, n in ranking.excluded.items() if n) or "none"
        sections.append(
            f"### {name}\ncosts: {ranking.use_case.cost_statement}; considered {ranking.considered}, "
            f"excluded {excluded}\n\n{body}"
        )
    simulated = sum(int(r.configurations["simulated"].sum()) for r in ranked.values() if len(r.configurations))
    sources = Counter(source for r in ranked.values() if len(r.configurations) for source in r.configurations["source"])
    yield dg.MaterializeResult(
        asset_key="model_rankings",
        metadata={
            "use_cases": dg.MetadataValue.int(len(ranked)),
            "models_ranked": dg.MetadataValue.int(sum(len(r.model_rankings) for r in ranked.values())),
            "pareto_front_sizes": dg.MetadataValue.json(pareto_sizes),
            "simulated_configurations": dg.MetadataValue.int(simulated),
            "configurations_by_source": dg.MetadataValue.json(dict(sorted(sources.items()))),
            "top_configurations": dg.MetadataValue.md("\n\n".join(sections)),
        },
    )
    recommended = [
        {
            "use_case": name,
            "model_version": record.performance_summary["best_configuration"]["version_key"],
            "simulated": record.performance_summary["configurations_simulated"] > 0,
        }
        for name, ranking in sorted(ranked.items())
        for record in ranking.model_use_cases
        if record.recommended
    ]
    yield dg.MaterializeResult(
        asset_key="model_use_cases",
        metadata={
            "rows": dg.MetadataValue.int(sum(len(r.model_use_cases) for r in ranked.values())),
            "recommended": dg.MetadataValue.md(
                pd.DataFrame(recommended, columns=["use_case", "model_version", "simulated"]).to_markdown(index=False)
            ),
        },
    )
