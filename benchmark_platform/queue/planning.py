"""Adaptive planning: the planner (``planner.py``, pure) decides; these statements read its inputs and apply its
decisions. Skipped configs stay in the table with their reason and come back with ``requeue_skipped``."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from benchmark_platform.domain import CONFIG_DIMENSIONS, CONFIG_KEY_COLUMNS
from benchmark_platform.queue.common import VERSION_KEY

PLAN_LOCK_NAMESPACE = 7_314_015  # pg advisory lock key space of the planner (one lock per model version)


_DIMENSIONS = ", ".join(f"c.{column}" for column in CONFIG_DIMENSIONS)


@dataclass(frozen=True)
class PlanRow:
    """A config of the version as the planner reads it, with its committed result when completed (after the
    hardware and framework names, the config's dimensions: ``domain.CONFIG_DIMENSIONS``, in that order)."""

    id: uuid.UUID
    hardware: str
    framework: str
    workload_type: str
    batch_size: int
    sequence_length: int
    tensor_parallel: int
    expert_parallel: int
    data_parallel_attention: bool
    speculative_method: str
    kv_cache_dtype: str
    prefix_caching: bool
    status: str
    pruning_exempt: bool
    prediction: dict[str, Any] | None
    gpu_count: int
    hourly_price_usd: float | None
    ttft_p90_ms: float | None
    tpot_p90_ms: float | None
    throughput_tokens_sec: float | None


def load_plan_rows(connection: Connection, model_version_id: uuid.UUID) -> list[PlanRow]:
    """Every config of the version with its result (completed ones only).

    Guarantee: run inside one transaction, it sees one committed snapshot (REPEATABLE READ, set by the caller): a
    worker that died mid-run leaves a ``running`` row and no result, never half a result. The hourly price is the
    ranking's: on the price basis of the config's use case (on demand where it names none; null where the hardware
    has no price on that basis, as the ranking leaves it out)."""
    rows = connection.execute(
        text(
            f"""
            SELECT c.id, h.name AS hardware, f.name AS framework, {_DIMENSIONS}, c.status, c.pruning_exempt,
                   c.prediction, h.gpu_count,
                   CASE COALESCE(u.characteristics->>'price_basis', 'on-demand')
                        WHEN 'spot' THEN CASE WHEN h.spot_available THEN h.spot_cost_per_hour_usd END
                        WHEN 'reserved' THEN h.reserved_cost_per_hour_usd
                        ELSE h.cost_per_hour_usd END AS hourly_price_usd,
                   r.ttft_p90_ms, r.tpot_p90_ms, r.throughput_tokens_sec
            FROM benchmark_configs c
            JOIN hardware_configs h ON h.id = c.hardware_config_id
            JOIN inference_frameworks f ON f.id = c.framework_id
            LEFT JOIN use_case_taxonomy u ON u.subcategory = c.workload_type
            LEFT JOIN benchmark_results r ON r.config_id = c.id AND c.status = 'completed'
            WHERE c.model_version_id = :v
            """
        ),
        {"v": model_version_id},
    ).all()
    return [PlanRow(*row) for row in rows]


def configs_without_prediction(connection: Connection, model_version_id: uuid.UUID) -> list[Any]:
    """Not-yet-run configs the simulator has not predicted yet (rows with the columns ``build_run_spec`` reads)."""
    return connection.execute(
        text(
            f"""
            SELECT id, {", ".join(CONFIG_KEY_COLUMNS)}
            FROM benchmark_configs
            WHERE model_version_id = :v AND prediction IS NULL
            ORDER BY hardware_config_id, framework_id, workload_type
            """
        ),
        {"v": model_version_id},
    ).all()


def store_predictions(connection: Connection, predictions: dict[uuid.UUID, dict[str, Any]]) -> int:
    """Write the simulator's prediction of each config (one statement for all)."""
    if not predictions:
        return 0
    return connection.execute(
        text(
            """
            UPDATE benchmark_configs c SET prediction = CAST(p.prediction AS jsonb)
            FROM unnest(CAST(:ids AS uuid[]), CAST(:predictions AS text[])) AS p(id, prediction)
            WHERE c.id = p.id
            """
        ),
        {"ids": list(predictions), "predictions": [json.dumps(p, allow_nan=False) for p in predictions.values()]},
    ).rowcount


def try_lock_plan(connection: Connection, model_version_id: uuid.UUID) -> bool:
    """Take the version's planner lock for this transaction, without waiting: False when another planner holds it
    (two drain replicas finishing a batch together plan once, not twice)."""
    return connection.execute(
        text("SELECT pg_try_advisory_xact_lock(:namespace, hashtext(CAST(:v AS text)))"),
        {"namespace": PLAN_LOCK_NAMESPACE, "v": str(model_version_id)},
    ).scalar_one()


@dataclass(frozen=True)
class PlanApplied:
    skipped: int  # pending -> skipped
    unskipped: int  # skipped -> pending (the evidence changed)
    reprioritised: int
    predictions_stamped: int  # results that received their simulator prediction


def apply_plan(
    connection: Connection,
    model_version_id: uuid.UUID,
    skips: dict[uuid.UUID, str],
    priorities: dict[uuid.UUID, int],
) -> PlanApplied:
    """Apply the planner's decisions to the version's not-yet-run configs.

    Guarantees: only ``pending`` rows are skipped or re-prioritised and only ``skipped`` rows un-skipped (a row
    claimed since the planner read it is left alone: the ``status`` test is re-checked under the row lock); exempt
    rows are never skipped; a row already in the decided state is not written (re-applying the same plan writes
    nothing). Results of the version get the prediction of their config in ``detailed_metrics.simulator_prediction``
    (once), so every result carries what the simulator expected of it."""
    skipped = connection.execute(
        text(
            """
            UPDATE benchmark_configs c SET status = 'skipped', skip_reason = s.reason
            FROM unnest(CAST(:ids AS uuid[]), CAST(:reasons AS text[])) AS s(id, reason)
            WHERE c.id = s.id AND c.status = 'pending' AND NOT c.pruning_exempt
            """
        ),
        {"ids": list(skips), "reasons": list(skips.values())},
    ).rowcount
    unskipped = connection.execute(
        text(
            """
            UPDATE benchmark_configs c SET status = 'pending', skip_reason = NULL, priority = p.priority
            FROM unnest(CAST(:ids AS uuid[]), CAST(:priorities AS int[])) AS p(id, priority)
            WHERE c.id = p.id AND c.status = 'skipped'
            """
        ),
        {"ids": list(priorities), "priorities": list(priorities.values())},
    ).rowcount
    reprioritised = connection.execute(
        text(
            """
            UPDATE benchmark_configs c SET priority = p.priority
            FROM unnest(CAST(:ids AS uuid[]), CAST(:priorities AS int[])) AS p(id, priority)
            WHERE c.id = p.id AND c.status = 'pending' AND c.priority <> p.priority
            """
        ),
        {"ids": list(priorities), "priorities": list(priorities.values())},
    ).rowcount
    stamped = connection.execute(
        text(
            """
            UPDATE benchmark_results r
            SET detailed_metrics = r.detailed_metrics || jsonb_build_object('simulator_prediction', c.prediction)
            FROM benchmark_configs c
            WHERE r.config_id = c.id AND c.model_version_id = :v AND c.prediction IS NOT NULL
              AND NOT r.detailed_metrics ? 'simulator_prediction'
            """
        ),
        {"v": model_version_id},
    ).rowcount
    return PlanApplied(skipped, unskipped, reprioritised, stamped)


def requeue_skipped(engine: Engine, model_version_id: uuid.UUID, reason: str | None = None) -> int:
    """Put the version's skipped configs (all, or those skipped for ``reason``) back to pending, exempt from further
    pruning so the planner does not skip them again; returns how many."""
    reason_filter = "AND skip_reason = :reason" if reason is not None else ""
    with engine.begin() as connection:
        return connection.execute(
            text(
                f"""
                UPDATE benchmark_configs SET status = 'pending', skip_reason = NULL, pruning_exempt = true
                WHERE model_version_id = :v AND status = 'skipped' {reason_filter}
                """
            ),
            {"v": model_version_id, "reason": reason},
        ).rowcount


def exempt_from_pruning(engine: Engine, model_version_id: uuid.UUID) -> int:
    """Turn pruning off for a version (benchmark it exhaustively): every config becomes exempt and skipped ones go back
    to pending. Returns how many configs were skipped before."""
    with engine.begin() as connection:
        requeued = connection.execute(
            text(
                "UPDATE benchmark_configs SET status = 'pending', skip_reason = NULL"
                " WHERE model_version_id = :v AND status = 'skipped'"
            ),
            {"v": model_version_id},
        ).rowcount
        connection.execute(
            text("UPDATE benchmark_configs SET pruning_exempt = true WHERE model_version_id = :v"),
            {"v": model_version_id},
        )
    return requeued


def is_exhaustive(engine: Engine, model_version_id: uuid.UUID) -> bool:
    """Whether the version is benchmarked exhaustively (``exempt_from_pruning``): it has configs and every one is
    exempt, so the planner may only re-order it. A plain read; no lock."""
    with engine.connect() as connection:
        return bool(
            connection.execute(
                text("SELECT bool_and(pruning_exempt) FROM benchmark_configs WHERE model_version_id = :v"),
                {"v": model_version_id},
            ).scalar()
        )


@dataclass(frozen=True)
class PruningSummary:
    """What pruning saved on a version: skipped configs by reason and the GPU-hours their benchmarks would take
    (from the predicted run time of each, times its node's GPU count)."""

    skipped_by_reason: dict[str, int]
    gpu_hours_saved_by_reason: dict[str, float]
    gpu_hours_to_run: float  # predicted GPU-hours of every config not skipped (completed, running or pending)

    @property
    def gpu_hours_saved(self) -> float:
        return sum(self.gpu_hours_saved_by_reason.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "skipped_by_reason": self.skipped_by_reason,
            "gpu_hours_saved": round(self.gpu_hours_saved, 2),
            "gpu_hours_saved_by_reason": {k: round(v, 2) for k, v in self.gpu_hours_saved_by_reason.items()},
            "gpu_hours_to_run": round(self.gpu_hours_to_run, 2),
        }


_PRUNING_SQL = """
SELECT {keys} CASE WHEN c.status = 'skipped' THEN c.skip_reason END AS reason, count(*) AS n,
       coalesce(sum(CAST(c.prediction ->> 'run_seconds' AS double precision) * h.gpu_count), 0) / 3600.0 AS gpu_hours
FROM benchmark_configs c JOIN hardware_configs h ON h.id = c.hardware_config_id
     JOIN model_versions v ON v.id = c.model_version_id JOIN models m ON m.id = v.model_id
{where}
GROUP BY {group}
"""


def _pruning(rows: list[Any]) -> PruningSummary:
    skipped = {row.reason: row.n for row in rows if row.reason is not None}
    saved = {row.reason: float(row.gpu_hours) for row in rows if row.reason is not None}
    to_run = sum(float(row.gpu_hours) for row in rows if row.reason is None)
    return PruningSummary(dict(sorted(skipped.items())), dict(sorted(saved.items())), to_run)


def pruning_summary(engine: Engine, model_version_id: uuid.UUID | None = None) -> PruningSummary:
    """Read-only: skipped counts and GPU-hours by reason (configs without a prediction count zero hours)."""
    where = "WHERE c.model_version_id = :v" if model_version_id is not None else ""
    with engine.begin() as connection:
        rows = connection.execute(
            text(_PRUNING_SQL.format(keys="", where=where, group="1")), {"v": model_version_id}
        ).all()
    return _pruning(rows)


def pruning_by_use_case(engine: Engine) -> dict[str, dict[str, PruningSummary]]:
    """Read-only: ``pruning_summary`` per use case (``workload_type``) and version key, in one snapshot; what the
    rankings store beside each use case's ranking so that the report says what was skipped without the queue."""
    query = _PRUNING_SQL.format(keys=f"c.workload_type, {VERSION_KEY} AS version_key,", where="", group="1, 2, 3")
    with engine.begin() as connection:
        rows = connection.execute(text(query)).all()
    grouped: dict[str, dict[str, list[Any]]] = {}
    for row in rows:
        grouped.setdefault(row.workload_type, {}).setdefault(row.version_key, []).append(row)
    return {
        workload: {version: _pruning(version_rows) for version, version_rows in sorted(versions.items())}
        for workload, versions in sorted(grouped.items())
    }


def residual_rows(engine: Engine) -> list[Any]:
    """Every result that carries its simulator prediction: hardware, framework, runner, predicted and measured p90
    latencies and throughput (the simulator's residuals, across versions)."""
    with engine.begin() as connection:
        return connection.execute(
            text(
                """
                SELECT h.name AS hardware, f.name AS framework, r.runner,
                       CAST(r.detailed_metrics -> 'simulator_prediction' ->> 'ttft_p90_ms' AS double precision)
                           AS predicted_ttft_p90_ms,
                       CAST(r.detailed_metrics -> 'simulator_prediction' ->> 'tpot_p90_ms' AS double precision)
                           AS predicted_tpot_p90_ms,
                       CAST(r.detailed_metrics -> 'simulator_prediction' ->> 'throughput_tokens_sec'
                            AS double precision) AS predicted_throughput_tokens_sec,
                       r.ttft_p90_ms, r.tpot_p90_ms, r.throughput_tokens_sec
                FROM benchmark_results r
                JOIN hardware_configs h ON h.id = r.hardware_config_id
                JOIN inference_frameworks f ON f.id = r.framework_id
                WHERE r.detailed_metrics ? 'simulator_prediction'
                """
            )
        ).all()


def skipped_for_workload(engine: Engine, workload_type: str) -> dict[str, int]:
    """Configs of a use case (any version) the planner skipped, by reason: what a recommendation did not measure."""
    with engine.begin() as connection:
        rows = connection.execute(
            text(
                "SELECT skip_reason, count(*) FROM benchmark_configs"
                " WHERE workload_type = :w AND status = 'skipped' GROUP BY 1 ORDER BY 1"
            ),
            {"w": workload_type},
        ).all()
    return {reason: count for reason, count in rows}
