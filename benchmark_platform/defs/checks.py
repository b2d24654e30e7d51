"""Asset checks: the invariants a person would otherwise verify by hand in SQL."""

import dagster as dg

from benchmark_platform import queue
from benchmark_platform.defs.benchmarks import benchmark_config_matrix, benchmark_results
from benchmark_platform.defs.resources import PlatformDatabase
from benchmark_platform.ranking import invariants as ranking_invariants
from benchmark_platform.runners import quality

SHOWN = 10


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
    bad = queue.invariants.duplicate_configs(database.get_engine())
    return _result(bad, "duplicated configs")


@dg.asset_check(asset=benchmark_results, description="Every completed config has exactly one result, others none.")
def one_result_per_completed_config(database: PlatformDatabase) -> dg.AssetCheckResult:
    bad = queue.invariants.result_count_mismatches(database.get_engine())
    return _result(bad, "configs whose result count does not match their status")


@dg.asset_check(asset=benchmark_results, description="Percentiles ordered, throughput positive, no NaN metrics.")
def result_sanity(database: PlatformDatabase) -> dg.AssetCheckResult:
    bad = queue.invariants.insane_results(database.get_engine())
    return _result(bad, "results failing sanity checks")


@dg.asset_check(
    asset=benchmark_results,
    description="Results carrying quality flags, per model version; fails (warning) while any carries a flag that "
    "leaves it out of the rankings (client-bound, over-saturated, prefix cache warm).",
)
def flagged_results_per_version(database: PlatformDatabase) -> dg.AssetCheckResult:
    engine = database.get_engine()
    rows = queue.invariants.flagged_results_per_version(engine, quality.EXCLUDING)
    per_flag = queue.invariants.results_per_flag(engine)
    excluded = sum(row[3] for row in rows)
    table = "\n".join(f"| {key} | {total} | {flagged} | {left_out} |" for key, total, flagged, left_out in rows)
    return dg.AssetCheckResult(
        passed=excluded == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "flagged_results": dg.MetadataValue.int(sum(row[2] for row in rows)),
            "excluded_from_rankings": dg.MetadataValue.int(excluded),
            "per_flag": dg.MetadataValue.json(per_flag),
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
    bad = ranking_invariants.unranked_or_out_of_range(database.get_engine())
    return _result(bad, "use cases without rankings or with scores outside [0, 1]")


@dg.asset_check(asset="model_rankings", description="No ranking is past its expiry (refresh_rankings is overdue).")
def rankings_not_expired(database: PlatformDatabase) -> dg.AssetCheckResult:
    bad = ranking_invariants.expired_rankings(database.get_engine())
    return _result(bad, "expired rankings")


asset_checks = [
    no_duplicate_configs,
    one_result_per_completed_config,
    result_sanity,
    flagged_results_per_version,
    rankings_cover_every_use_case,
    rankings_not_expired,
]
