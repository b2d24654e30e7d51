"""The invariants of the queue's tables, as queries returning the rows that break them (none: the invariant holds).

The asset checks (``defs/checks.py``) run them; each names what it guarantees. Read-only, one snapshot each.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import Connection, Engine, text

from benchmark_platform.domain import CONFIG_KEY_COLUMNS
from benchmark_platform.queue.common import VERSION_KEY, _transaction


def _rows(bind: Engine | Connection, sql: str) -> list[Any]:
    with _transaction(bind) as connection:
        return connection.execute(text(sql)).all()


def duplicate_configs(bind: Engine | Connection) -> list[Any]:
    """Configs that appear more than once in a version's matrix (the ``unique_config`` constraint forbids it):
    the config's dimensions and how often."""
    return _rows(
        bind,
        f"SELECT {', '.join(CONFIG_KEY_COLUMNS)}, count(*) FROM benchmark_configs"
        f" GROUP BY {', '.join(CONFIG_KEY_COLUMNS)} HAVING count(*) > 1",
    )


def result_count_mismatches(bind: Engine | Connection) -> list[Any]:
    """Configs whose result count does not match their status: a completed config has exactly one result (the
    fenced complete writes it with the status, in one statement), any other none. (id, status, results)."""
    return _rows(
        bind,
        "SELECT c.id, c.status, count(r.id) FROM benchmark_configs c"
        " LEFT JOIN benchmark_results r ON r.config_id = c.id GROUP BY c.id, c.status"
        " HAVING (c.status = 'completed' AND count(r.id) <> 1) OR (c.status <> 'completed' AND count(r.id) > 0)",
    )


def insane_results(bind: Engine | Connection) -> list[Any]:
    """Results whose percentiles are out of order, whose throughput is not positive, or that hold NaN or a missing
    headline metric. (id, runner)."""
    metrics = ["ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p90_ms", "tpot_p99_ms"]
    nan = " OR ".join(f"{m} = 'NaN'::float" for m in [*metrics, "throughput_tokens_sec", "rps_sustained"])
    return _rows(
        bind,
        "SELECT id, runner FROM benchmark_results WHERE NOT (ttft_p50_ms <= ttft_p90_ms AND ttft_p90_ms <= ttft_p99_ms"
        " AND tpot_p50_ms <= tpot_p90_ms AND tpot_p90_ms <= tpot_p99_ms AND throughput_tokens_sec > 0"
        f" AND rps_sustained > 0) OR {nan} OR ttft_p50_ms IS NULL OR throughput_tokens_sec IS NULL",
    )


def flagged_results_per_version(bind: Engine | Connection, excluding: Collection[str]) -> list[Any]:
    """Per model version with any flagged result: (version key, results, flagged, flagged with one of
    ``excluding``: the flags that leave a result out of the rankings), by version key."""
    with _transaction(bind) as connection:
        return connection.execute(
            text(
                f"SELECT {VERSION_KEY}, count(*),"
                " count(*) FILTER (WHERE r.quality_flags <> '{}'::jsonb),"
                " count(*) FILTER (WHERE r.quality_flags ?| CAST(:excluding AS text[]))"
                " FROM benchmark_results r JOIN model_versions v ON v.id = r.model_version_id"
                " JOIN models m ON m.id = v.model_id"
                " GROUP BY 1 HAVING count(*) FILTER (WHERE r.quality_flags <> '{}'::jsonb) > 0 ORDER BY 1"
            ),
            {"excluding": sorted(excluding)},
        ).all()


def results_per_flag(bind: Engine | Connection) -> dict[str, int]:
    """How many results carry each quality flag."""
    rows = _rows(
        bind,
        "SELECT flag, count(*) FROM benchmark_results, jsonb_object_keys(quality_flags) AS flag GROUP BY 1 ORDER BY 1",
    )
    return {flag: count for flag, count in rows}
