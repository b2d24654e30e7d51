"""Asset checks: the invariants a person would otherwise verify by hand in SQL."""

import dagster as dg
from sqlalchemy import text

from benchmark_platform.defs.benchmarks import benchmark_config_matrix, benchmark_results
from benchmark_platform.defs.resources import PlatformDatabase
from benchmark_platform.runners import quality

SHOWN = 10


def _rows(database: PlatformDatabase, sql: str) -> list:
    with database.get_engine().connect() as conn:
        return conn.execute(text(sql)).all()


def _result(bad: list, what: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not bad,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "violations": dg.MetadataValue.int(len(bad)),
            "examples": dg.MetadataValue.md("\n".join(f"- {tuple(row)}" for row in bad[:SHOWN]) or "none"),
        },
        description=f"{len(bad)} {what}" if bad else None,
    )


@dg.asset_check(asset=benchmark_config_matrix, description="No config appears twice in any model version's matrix.")
def no_duplicate_configs(database: PlatformDatabase) -> dg.AssetCheckResult:
    bad = _rows(
        database,
        "SELECT model_version_id, hardware_config_id, framework_id, workload_type, batch_size, sequence_length,"
        " tensor_parallel, count(*) FROM benchmark_configs GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING count(*) > 1",
    )
    return _result(bad, "duplicated configs")


@dg.asset_check(asset=benchmark_results, description="Every completed config has exactly one result, others none.")
def one_result_per_completed_config(database: PlatformDatabase) -> dg.AssetCheckResult:
    bad = _rows(
        database,
        "SELECT c.id, c.status, count(r.id) FROM benchmark_configs c"
        " LEFT JOIN benchmark_results r ON r.config_id = c.id GROUP BY c.id, c.status"
        " HAVING (c.status = 'completed' AND count(r.id) <> 1) OR (c.status <> 'completed' AND count(r.id) > 0)",
    )
    return _result(bad, "configs whose result count does not match their status")


@dg.asset_check(asset=benchmark_results, description="Percentiles ordered, throughput positive, no NaN metrics.")
def result_sanity(database: PlatformDatabase) -> dg.AssetCheckResult:
    metrics = ["ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms"]
    nan = " OR ".join(f"{m} = 'NaN'::float" for m in [*metrics, "throughput_tokens_sec", "rps_sustained"])
    bad = _rows(
        database,
        "SELECT id, runner FROM benchmark_results WHERE NOT (ttft_p50_ms <= ttft_p90_ms AND ttft_p90_ms <= ttft_p99_ms"
        " AND tpot_p50_ms <= tpot_p90_ms AND tpot_p90_ms <= tpot_p99_ms AND throughput_tokens_sec > 0"
        f" AND rps_sustained > 0) OR {nan} OR ttft_p50_ms IS NULL OR throughput_tokens_sec IS NULL",
    )
    return _result(bad, "results failing sanity checks")


@dg.asset_check(
    asset=benchmark_results,
    description="Results carrying quality flags, per model version; fails (warning) while any carries a flag that "
    "leaves it out of the rankings (client-bound, over-saturated, prefix cache warm).",
)
def flagged_results_per_version(database: PlatformDatabase) -> dg.AssetCheckResult:
    excluding = ", ".join(f"'{name}'" for name in sorted(quality.EXCLUDING))
    rows = _rows(
        database,
        "SELECT m.name || '@' || v.version, count(*),"
        " count(*) FILTER (WHERE r.quality_flags <> '{}'::jsonb),"
        f" count(*) FILTER (WHERE r.quality_flags ?| ARRAY[{excluding}])"
        " FROM benchmark_results r JOIN model_versions v ON v.id = r.model_version_id"
        " JOIN models m ON m.id = v.model_id"
        " GROUP BY 1 HAVING count(*) FILTER (WHERE r.quality_flags <> '{}'::jsonb) > 0 ORDER BY 1",
    )
    flag_rows = _rows(
        database,
        "SELECT flag, count(*) FROM benchmark_results, jsonb_object_keys(quality_flags) AS flag GROUP BY 1 ORDER BY 1",
    )
    excluded = sum(row[3] for row in rows)
    table = "\n".join(f"| {key} | {total} | {flagged} | {left_out} |" for key, total, flagged, left_out in rows)
    return dg.AssetCheckResult(
        passed=excluded == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "flagged_results": dg.MetadataValue.int(sum(row[2] for row in rows)),
            "excluded_from_rankings": dg.MetadataValue.int(excluded),
            "per_flag": dg.MetadataValue.json({flag: count for flag, count in flag_rows}),
            "per_version": dg.MetadataValue.md(
                "| version | results | flagged | left out of rankings |\n| --- | --- | --- | --- |\n" + table
                if rows
                else "none"
            ),
        },
        description=f"{excluded} results left out of rankings by their quality flags" if excluded else None,
    )


@dg.asset_check(asset="model_rankings", description="Every use case is ranked and every score lies in [0, 1].")
def rankings_cover_every_use_case(database: PlatformDatabase) -> dg.AssetCheckResult:
    bad = _rows(
        database,
        "SELECT u.subcategory, count(r.id), min(r.composite_score), max(r.composite_score)"
        " FROM use_case_taxonomy u LEFT JOIN model_rankings r ON r.use_case_category = u.subcategory"
        " GROUP BY u.subcategory"
        " HAVING count(r.id) = 0 OR min(r.composite_score) < 0 OR max(r.composite_score) > 1",
    )
    return _result(bad, "use cases without rankings or with scores outside [0, 1]")


@dg.asset_check(asset="model_rankings", description="No ranking is past its expiry (refresh_rankings is overdue).")
def rankings_not_expired(database: PlatformDatabase) -> dg.AssetCheckResult:
    bad = _rows(
        database, "SELECT use_case_category, model_id, expires_at FROM model_rankings WHERE expires_at <= now()"
    )
    return _result(bad, "expired rankings")


asset_checks = [
    no_duplicate_configs,
    one_result_per_completed_config,
    result_sanity,
    flagged_results_per_version,
    rankings_cover_every_use_case,
    rankings_not_expired,
]
