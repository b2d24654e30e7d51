"""The benchmark queue: ``benchmark_configs`` rows claimed with ``FOR UPDATE SKIP LOCKED`` and owned through leases.

Every function here is one short transaction of its own (the engine's ``begin()``): no transaction stays open while a
benchmark runs, so ownership is the lease (``claimed_by`` + ``lease_expires_at``), not a row lock. All times come from
the database clock (``now()``), never from a worker's. A claim's ``started_at`` doubles as its fencing token: every
write after the claim names the worker AND the token, so a worker that lost its claim (lease expired, reaped, claimed
again, even by itself) can no longer change the row.

Status moves: pending -> running (claim); running -> completed (complete); running -> pending or failed (fail, reap:
an attempt is counted); running -> pending (release: no attempt counted).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from benchmark_platform import matrix
from benchmark_platform.orm import version_key_sql
from benchmark_platform.runners.base import METRIC_COLUMNS, Measurement

DEFAULT_LEASE_SECONDS = 600.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_STALE_MINUTES = 120.0
DEFAULT_THROUGHPUT_WINDOW_MINUTES = 15.0
ERROR_MESSAGE_LIMIT = 1000
VERSION_KEY = version_key_sql()  # over tables aliased m (models) and v (model_versions)

# ------------------------------------------------------------------------------------------------ filling the queue


@dataclass(frozen=True)
class PopulateReport:
    """What ``populate_matrix`` did: configs created, already there, left out (and why), per hardware × framework."""

    model_version_id: uuid.UUID
    version_key: str
    created: int
    existing: int
    excluded: dict[str, int]
    by_hardware_framework: dict[str, int]
    excluded_by_hardware_framework: dict[str, dict[str, int]]
    seconds: float
    by_tensor_parallel: dict[int, int] = field(default_factory=dict)

    @property
    def matrix_size(self) -> int:
        return self.created + self.existing

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version_id": str(self.model_version_id),
            "version_key": self.version_key,
            "matrix_size": self.matrix_size,
            "created": self.created,
            "existing": self.existing,
            "excluded": self.excluded,
            "by_hardware_framework": self.by_hardware_framework,
            "excluded_by_hardware_framework": self.excluded_by_hardware_framework,
            "by_tensor_parallel": {str(tp): count for tp, count in self.by_tensor_parallel.items()},
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class MatrixInputs:
    """A version and the catalogs as the pure matrix sees them, plus name -> id maps to write the result back."""

    version_key: str
    version: matrix.VersionSpec
    hardware: list[matrix.HardwareOption]
    frameworks: list[matrix.FrameworkOption]
    workloads: list[matrix.WorkloadOption]
    hardware_ids: dict[str, uuid.UUID]
    framework_ids: dict[str, uuid.UUID]


def load_matrix_inputs(connection: Connection, model_version_id: uuid.UUID) -> MatrixInputs:
    """Read what ``matrix.build_matrix`` needs from the database; LookupError when the version is unknown."""
    row = connection.execute(
        text(
            f"""
            SELECT {VERSION_KEY} AS version_key, m.parameters, v.quantization, v.quantization_bits,
                   v.format, v.model_config
            FROM model_versions v JOIN models m ON m.id = v.model_id
            WHERE v.id = :id
            """
        ),
        {"id": model_version_id},
    ).first()
    if row is None:
        raise LookupError(f"no model version with id {model_version_id}")
    facts = row.model_config
    try:
        version = matrix.VersionSpec(
            parameters=row.parameters,
            quantization=row.quantization,
            quantization_bits=row.quantization_bits,
            format=row.format,
            num_layers=facts["num_layers"],
            num_kv_heads=facts["num_kv_heads"],
            head_dim=facts["head_dim"],
            max_position_embeddings=facts.get("max_position_embeddings"),
        )
    except KeyError as missing:
        raise LookupError(f"{row.version_key} lacks architecture fact {missing} in model_config") from None
    hardware_rows = connection.execute(
        text("SELECT id, name, specs, gpu_count, vram_per_gpu_gb, cost_per_hour_usd FROM hardware_configs")
    ).all()
    framework_rows = connection.execute(text("SELECT id, name, capabilities FROM inference_frameworks")).all()
    workload_rows = connection.execute(text("SELECT subcategory, characteristics FROM use_case_taxonomy")).all()
    return MatrixInputs(
        version_key=row.version_key,
        version=version,
        hardware=[
            matrix.HardwareOption(
                name=hw.name,
                vendor=hw.specs["vendor"],
                gpu_count=hw.gpu_count,
                vram_per_gpu_gb=hw.vram_per_gpu_gb,
                cost_per_hour_usd=hw.cost_per_hour_usd,
            )
            for hw in hardware_rows
        ],
        frameworks=[
            matrix.FrameworkOption(
                name=fw.name,
                supports_quantizations=frozenset(fw.capabilities.get("supports_quantizations", ())),
                supports_formats=frozenset(fw.capabilities.get("supports_formats", ())),
                vendors=frozenset(fw.capabilities.get("vendors", ())),
                benchmark_by_default=fw.capabilities.get("benchmark_by_default", True),
            )
            for fw in framework_rows
        ],
        workloads=[
            matrix.WorkloadOption(
                name=use_case.subcategory,
                typical_input_tokens=use_case.characteristics["typical_input_tokens"],
                typical_output_tokens=use_case.characteristics["typical_output_tokens"],
                sequence_lengths=tuple(use_case.characteristics.get("sequence_lengths", matrix.SEQUENCE_LENGTHS)),
                batch_sizes=tuple(use_case.characteristics.get("concurrency", matrix.BATCH_SIZES)),
            )
            for use_case in workload_rows
        ],
        hardware_ids={hw.name: hw.id for hw in hardware_rows},
        framework_ids={fw.name: fw.id for fw in framework_rows},
    )


def _copy_text(value: str) -> str:
    """``value`` escaped for a column of COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def populate_matrix(
    engine: Engine,
    model_version_id: uuid.UUID,
    *,
    frameworks: Collection[str] | None = None,
    hardware: Collection[str] | None = None,
) -> PopulateReport:
    """Write the version's config matrix into ``benchmark_configs``; idempotent (existing configs, whatever their
    status, are left alone).

    ``frameworks`` / ``hardware`` restrict the matrix to those names (naming a framework that is not benchmarked by
    default, such as the local emulator, includes it). Bulk path: COPY into a temporary table, then one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING`` against the unique_config constraint, all in one transaction (a
    failure leaves the queue as it was).
    """
    started = time.perf_counter()
    with engine.begin() as connection:
        inputs = load_matrix_inputs(connection, model_version_id)
        hardware_ids, framework_ids = inputs.hardware_ids, inputs.framework_ids
        for kind, wanted, known in (("framework", frameworks, framework_ids), ("hardware", hardware, hardware_ids)):
            unknown = sorted(set(wanted or ()) - set(known))
            if unknown:
                raise LookupError(f"unknown {kind} {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        built = matrix.build_matrix(
            inputs.version,
            [h for h in inputs.hardware if hardware is None or h.name in hardware],
            [f for f in inputs.frameworks if frameworks is None or f.name in frameworks],
            inputs.workloads,
            include_frameworks=frameworks or (),
        )
        connection.execute(
            text(
                """
                CREATE TEMPORARY TABLE matrix_load (
                    hardware_config_id uuid, framework_id uuid, workload_type text,
                    batch_size integer, sequence_length integer, tensor_parallel integer, priority integer
                ) ON COMMIT DROP
                """
            )
        )
        copy_sql = (
            "COPY matrix_load (hardware_config_id, framework_id, workload_type, batch_size, sequence_length,"
            " tensor_parallel, priority) FROM STDIN"
        )
        hardware_text = {name: str(value) for name, value in hardware_ids.items()}
        framework_text = {name: str(value) for name, value in framework_ids.items()}
        workload_text = {workload.name: _copy_text(workload.name) for workload in inputs.workloads}
        rows = "".join(
            f"{hardware_text[c.hardware]}\t{framework_text[c.framework]}\t{workload_text[c.workload_type]}\t"
            f"{c.batch_size}\t{c.sequence_length}\t{c.tensor_parallel}\t{c.priority}\n"
            for c in built.configs
        )
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.write(rows)  # one buffer in COPY's text format: no per-row adaptation in Python
        created = connection.execute(
            text(
                """
                INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type,
                                               batch_size, sequence_length, tensor_parallel, priority)
                SELECT :model_version_id, hardware_config_id, framework_id, workload_type, batch_size,
                       sequence_length, tensor_parallel, priority
                FROM matrix_load
                ON CONFLICT ON CONSTRAINT unique_config DO NOTHING
                """
            ),
            {"model_version_id": model_version_id},
        ).rowcount
    by_pair: dict[str, int] = {}
    for config in built.configs:
        key = f"{config.hardware}/{config.framework}"
        by_pair[key] = by_pair.get(key, 0) + 1
    return PopulateReport(
        model_version_id=model_version_id,
        version_key=inputs.version_key,
        created=created,
        existing=len(built.configs) - created,
        excluded=built.excluded,
        by_hardware_framework=by_pair,
        excluded_by_hardware_framework={f"{h}/{f}": counts for (h, f), counts in built.excluded_by_pair.items()},
        seconds=time.perf_counter() - started,
        by_tensor_parallel=dict(sorted(Counter(config.tensor_parallel for config in built.configs).items())),
    )


# ------------------------------------------------------------------------------------------------ the queue proper

_CLAIM_COLUMNS = (
    "id, model_version_id, hardware_config_id, framework_id, workload_type, batch_size, sequence_length, "
    "tensor_parallel, priority, created_at, retry_count, started_at, lease_expires_at"
)


@dataclass(frozen=True)
class Claim:
    """A config this worker holds. ``started_at`` is the claim's fencing token (set by the database at claim time)."""

    id: uuid.UUID
    model_version_id: uuid.UUID
    hardware_config_id: uuid.UUID
    framework_id: uuid.UUID
    workload_type: str
    batch_size: int
    sequence_length: int
    tensor_parallel: int
    priority: int
    created_at: datetime
    retry_count: int
    started_at: datetime
    lease_expires_at: datetime


def _pending_filter(hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None) -> str:
    """Only the filters given appear in the SQL, so every variant keeps an index-friendly plan (no ``:x IS NULL OR``,
    which a generic prepared plan cannot push into an index)."""
    clauses = ["status = 'pending'"]
    if hardware_config_id is not None:
        clauses.append("hardware_config_id = :hardware_config_id")
    if model_version_id is not None:
        clauses.append("model_version_id = :model_version_id")
    return " AND ".join(clauses)


def claim_sql(
    *, hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None, preferred_framework: bool
) -> str:
    """The claim statement for these filters (public so the benchmark and the plan test EXPLAIN the very same SQL)."""
    where = _pending_filter(hardware_config_id, model_version_id)
    if preferred_framework:
        # Same order as ORDER BY (framework_id = :preferred) DESC, priority, created_at, written as two index-ordered
        # scans: the preferred framework's configs first, then the others fill what is left of the limit. A sort on
        # the expression would read and sort every pending row of the pool on each claim.
        picked = f"""
            preferred AS MATERIALIZED (
                SELECT id FROM benchmark_configs
                WHERE {where} AND framework_id = :preferred_framework_id
                ORDER BY priority, created_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            ),
            others AS MATERIALIZED (
                SELECT id FROM benchmark_configs
                WHERE {where} AND framework_id <> :preferred_framework_id
                ORDER BY priority, created_at
                LIMIT :limit - (SELECT count(*) FROM preferred)
                FOR UPDATE SKIP LOCKED
            ),
            picked AS (SELECT id FROM preferred UNION ALL SELECT id FROM others)"""
    else:
        picked = f"""
            picked AS MATERIALIZED (
                SELECT id FROM benchmark_configs
                WHERE {where}
                ORDER BY priority, created_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )"""
    return f"""
        WITH {picked}
        UPDATE benchmark_configs AS c
        SET status = 'running', claimed_by = :worker_id, started_at = now(),
            lease_expires_at = now() + make_interval(secs => :lease_seconds), completed_at = NULL
        FROM picked
        WHERE c.id = picked.id AND c.status = 'pending'
        RETURNING {", ".join(f"c.{column.strip()}" for column in _CLAIM_COLUMNS.split(","))}
    """


def claim(
    engine: Engine,
    worker_id: str,
    *,
    limit: int = 10,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    hardware_config_id: uuid.UUID | None = None,
    model_version_id: uuid.UUID | None = None,
    preferred_framework_id: uuid.UUID | None = None,
) -> list[Claim]:
    """Claim up to ``limit`` pending configs, lowest priority value first (then oldest), and commit at once.

    Guarantees: a config is handed to one claimer only (the MATERIALIZED CTE is evaluated once and locks what it
    picks; SKIP LOCKED makes concurrent claimers take disjoint rows instead of waiting); only configs of the given
    hardware pool / model version; the preferred framework's configs before any other. A short or empty batch does
    not mean the queue is empty (rows locked by a concurrent claim are skipped): see ``count_claimable``.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    sql = claim_sql(
        hardware_config_id=hardware_config_id,
        model_version_id=model_version_id,
        preferred_framework=preferred_framework_id is not None,
    )
    params: dict[str, Any] = {
        "limit": limit,
        "worker_id": worker_id,
        "lease_seconds": float(lease_seconds),
        "hardware_config_id": hardware_config_id,
        "model_version_id": model_version_id,
        "preferred_framework_id": preferred_framework_id,
    }
    with engine.begin() as connection:
        rows = connection.execute(text(sql), params).all()
    claims = [Claim(*row) for row in rows]
    claims.sort(key=lambda c: (c.framework_id != preferred_framework_id, c.priority, c.created_at))
    return claims


def count_claimable(
    engine: Engine, *, hardware_config_id: uuid.UUID | None = None, model_version_id: uuid.UUID | None = None
) -> int:
    """Pending configs matching a worker's filters, locked or not: zero means the queue is drained for it."""
    sql = f"SELECT count(*) FROM benchmark_configs WHERE {_pending_filter(hardware_config_id, model_version_id)}"
    with engine.begin() as connection:
        return connection.execute(
            text(sql), {"hardware_config_id": hardware_config_id, "model_version_id": model_version_id}
        ).scalar_one()


def heartbeat(engine: Engine, worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS) -> int:
    """Push the lease of every config this worker still holds to ``now() + lease_seconds``; returns how many it holds.

    Guarantee: an already expired lease is not revived (the reaper may be taking it back), so a worker never extends a
    claim that ``complete`` would refuse.
    """
    with engine.begin() as connection:
        return connection.execute(
            text(
                """
                UPDATE benchmark_configs
                SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
                WHERE status = 'running' AND claimed_by = :worker_id AND lease_expires_at > now()
                """
            ),
            {"worker_id": worker_id, "lease_seconds": float(lease_seconds)},
        ).rowcount


_RESULT_INSERT_COLUMNS = (
    "config_id, model_version_id, hardware_config_id, framework_id, workload_type, batch_size, sequence_length, "
    "tensor_parallel, " + ", ".join(METRIC_COLUMNS) + ", detailed_metrics, runner"
)
_COMPLETE_SQL = f"""
    WITH done AS (
        UPDATE benchmark_configs
        SET status = 'completed', completed_at = now(), lease_expires_at = NULL, error_message = NULL
        WHERE id = :config_id AND claimed_by = :worker_id AND started_at = :claimed_at
          AND status = 'running' AND lease_expires_at > now()
        RETURNING id, model_version_id, hardware_config_id, framework_id, workload_type, batch_size, sequence_length,
                  tensor_parallel
    )
    INSERT INTO benchmark_results ({_RESULT_INSERT_COLUMNS})
    SELECT done.id, done.model_version_id, done.hardware_config_id, done.framework_id, done.workload_type,
           done.batch_size, done.sequence_length, done.tensor_parallel,
           {", ".join(f":{column}" for column in METRIC_COLUMNS)},
           CAST(:detailed_metrics AS jsonb), :runner
    FROM done
    RETURNING id
"""


def complete(engine: Engine, held: Claim, worker_id: str, measurement: Measurement) -> bool:
    """Record ``measurement`` as the config's result and mark it completed; False when the claim was lost.

    Guarantees: one statement, so the result row and the status change commit together or not at all; fenced (this
    worker, this claim's token, still running, lease unexpired: otherwise nothing is inserted); the unique index on
    ``benchmark_results(config_id)`` rejects a second result whatever happens. Idempotent for its caller: when a retry
    follows a commit whose acknowledgement was lost (connection dropped), the earlier commit is recognised as ours and
    True is returned, with still exactly one result row.
    """
    columns = measurement.result_columns()
    params = {column: columns[column] for column in METRIC_COLUMNS}
    params.update(
        config_id=held.id,
        worker_id=worker_id,
        claimed_at=held.started_at,
        detailed_metrics=json.dumps(columns["detailed_metrics"], allow_nan=False),
        runner=columns["runner"],
    )
    with engine.begin() as connection:
        if connection.execute(text(_COMPLETE_SQL), params).first() is not None:
            return True
        return _completed_by(connection, held, worker_id)


def _completed_by(connection: Any, held: Claim, worker_id: str) -> bool:
    return (
        connection.execute(
            text(
                """
                SELECT 1 FROM benchmark_configs
                WHERE id = :config_id AND claimed_by = :worker_id AND started_at = :claimed_at AND status = 'completed'
                """
            ),
            {"config_id": held.id, "worker_id": worker_id, "claimed_at": held.started_at},
        ).first()
        is not None
    )


@dataclass(frozen=True)
class FailOutcome:
    status: str  # "pending" (will be retried) or "failed" (attempts used up)
    retry_count: int


def fail(
    engine: Engine, held: Claim, worker_id: str, error: str, *, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> FailOutcome | None:
    """Count a failed attempt: back to pending, or failed for good once ``max_attempts`` attempts have failed.

    Guarantees: fenced like ``complete`` (None when the claim was lost: nothing changes); the message is kept (first
    1000 characters) so a person can see why; ``retry_count`` is the number of failed attempts.
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    with engine.begin() as connection:
        row = connection.execute(
            text(
                """
                UPDATE benchmark_configs
                SET retry_count = retry_count + 1,
                    error_message = :error,
                    status = CASE WHEN retry_count + 1 >= :max_attempts THEN 'failed' ELSE 'pending' END,
                    completed_at = CASE WHEN retry_count + 1 >= :max_attempts THEN now() END,
                    claimed_by = CASE WHEN retry_count + 1 >= :max_attempts THEN claimed_by END,
                    started_at = CASE WHEN retry_count + 1 >= :max_attempts THEN started_at END,
                    lease_expires_at = NULL
                WHERE id = :config_id AND claimed_by = :worker_id AND started_at = :claimed_at
                  AND status = 'running' AND lease_expires_at > now()
                RETURNING status, retry_count
                """
            ),
            {
                "config_id": held.id,
                "worker_id": worker_id,
                "claimed_at": held.started_at,
                "error": (error or "unknown error")[:ERROR_MESSAGE_LIMIT],
                "max_attempts": max_attempts,
            },
        ).first()
    return FailOutcome(status=row.status, retry_count=row.retry_count) if row is not None else None


def release(engine: Engine, worker_id: str, config_ids: list[uuid.UUID] | None = None) -> int:
    """Give this worker's unfinished claims (all, or those listed) back to pending without counting an attempt.

    For a clean stop (SIGTERM, spot notice): the configs can be claimed again at once instead of after the lease.
    Guarantee: only rows this worker still holds (claimed_by, running) change; returns how many.
    """
    id_filter = "AND id = ANY(:config_ids)" if config_ids is not None else ""
    with engine.begin() as connection:
        return connection.execute(
            text(
                f"""
                UPDATE benchmark_configs
                SET status = 'pending', claimed_by = NULL, started_at = NULL, lease_expires_at = NULL
                WHERE status = 'running' AND claimed_by = :worker_id {id_filter}
                """
            ),
            {"worker_id": worker_id, "config_ids": config_ids},
        ).rowcount


@dataclass(frozen=True)
class ReapReport:
    returned_to_pending: int
    failed: int


def reap(
    engine: Engine, *, timeout_minutes: float = DEFAULT_STALE_MINUTES, max_attempts: int = DEFAULT_MAX_ATTEMPTS
) -> ReapReport:
    """Take back claims whose worker vanished: lease expired, or running for longer than ``timeout_minutes``.

    Each counts an attempt (back to pending), and past ``max_attempts`` the config fails for good with a message
    saying its lease expired. Guarantees: safe to run from several places at once (a row already reaped no longer
    matches ``status = 'running'`` when the second reaper gets its lock); races with ``complete`` resolve by row lock,
    and the loser's fence (lease check) makes it a no-op.
    """
    with engine.begin() as connection:
        statuses = (
            connection.execute(
                text(
                    """
                UPDATE benchmark_configs
                SET retry_count = retry_count + 1,
                    status = CASE WHEN retry_count + 1 >= :max_attempts THEN 'failed' ELSE 'pending' END,
                    error_message = left(format(
                        'lease of worker %s expired (claimed %s, lease until %s); attempt %s of %s',
                        claimed_by, started_at, lease_expires_at, retry_count + 1, :max_attempts), 1000),
                    completed_at = CASE WHEN retry_count + 1 >= :max_attempts THEN now() END,
                    claimed_by = NULL, started_at = NULL, lease_expires_at = NULL
                WHERE status = 'running'
                  AND (lease_expires_at < now() OR started_at < now() - make_interval(secs => :timeout_minutes * 60))
                RETURNING status
                """
                ),
                {"max_attempts": max_attempts, "timeout_minutes": float(timeout_minutes)},
            )
            .scalars()
            .all()
        )
    return ReapReport(returned_to_pending=statuses.count("pending"), failed=statuses.count("failed"))


@dataclass(frozen=True)
class Progress:
    """Where a model version's (or every version's) queue stands."""

    model_version_id: uuid.UUID | None
    by_status: dict[str, int]
    by_hardware: dict[str, dict[str, int]]
    by_model_version: dict[str, dict[str, int]]
    finished_in_window: int
    window_minutes: float
    by_tensor_parallel: dict[str, dict[int, dict[str, int]]] = field(default_factory=dict)  # hardware -> TP -> status
    total: int = field(init=False)
    percent_complete: float = field(init=False)
    eta_seconds: float | None = field(init=False)

    def __post_init__(self) -> None:
        total = sum(self.by_status.values())
        done = self.by_status.get("completed", 0) + self.by_status.get("failed", 0)
        remaining = total - done
        rate = self.finished_in_window / (self.window_minutes * 60)
        object.__setattr__(self, "total", total)
        object.__setattr__(self, "percent_complete", 100.0 * self.by_status.get("completed", 0) / total if total else 0)
        object.__setattr__(self, "eta_seconds", remaining / rate if rate > 0 else (0.0 if remaining == 0 else None))

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version_id": str(self.model_version_id) if self.model_version_id else None,
            "total": self.total,
            "by_status": self.by_status,
            "percent_complete": round(self.percent_complete, 2),
            "finished_in_window": self.finished_in_window,
            "window_minutes": self.window_minutes,
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds, 1),
            "by_hardware": self.by_hardware,
            "by_model_version": self.by_model_version,
            "by_hardware_tensor_parallel": {
                hardware: {str(tp): counts for tp, counts in degrees.items()}
                for hardware, degrees in self.by_tensor_parallel.items()
            },
        }


def progress(
    engine: Engine,
    model_version_id: uuid.UUID | None = None,
    *,
    window_minutes: float = DEFAULT_THROUGHPUT_WINDOW_MINUTES,
) -> Progress:
    """Counts by status (per hardware config and per model version), completion % and an ETA from the configs
    finished (completed or failed for good) in the last ``window_minutes``. Read-only."""
    where = "WHERE c.model_version_id = :model_version_id" if model_version_id is not None else ""
    with engine.begin() as connection:
        rows = connection.execute(
            text(
                f"""
                SELECT h.name AS hardware, {VERSION_KEY} AS version_key, c.tensor_parallel, c.status,
                       count(*) AS n,
                       count(*) FILTER (WHERE c.status IN ('completed', 'failed')
                                          AND c.completed_at > now() - make_interval(secs => :window * 60)) AS recent
                FROM benchmark_configs c
                JOIN hardware_configs h ON h.id = c.hardware_config_id
                JOIN model_versions v ON v.id = c.model_version_id
                JOIN models m ON m.id = v.model_id
                {where}
                GROUP BY 1, 2, 3, 4
                """
            ),
            {"model_version_id": model_version_id, "window": float(window_minutes)},
        ).all()
    by_status: dict[str, int] = {}
    by_hardware: dict[str, dict[str, int]] = {}
    by_version: dict[str, dict[str, int]] = {}
    by_tp: dict[str, dict[int, dict[str, int]]] = {}
    for row in rows:
        degree = by_tp.setdefault(row.hardware, {}).setdefault(row.tensor_parallel, {})
        degree[row.status] = degree.get(row.status, 0) + row.n
        by_status[row.status] = by_status.get(row.status, 0) + row.n
        hardware = by_hardware.setdefault(row.hardware, {})
        hardware[row.status] = hardware.get(row.status, 0) + row.n
        version = by_version.setdefault(row.version_key, {})
        version[row.status] = version.get(row.status, 0) + row.n
    return Progress(
        model_version_id=model_version_id,
        by_status=by_status,
        by_hardware=dict(sorted(by_hardware.items())),
        by_model_version=dict(sorted(by_version.items())),
        finished_in_window=sum(row.recent for row in rows),
        window_minutes=window_minutes,
        by_tensor_parallel={hardware: dict(sorted(by_tp[hardware].items())) for hardware in sorted(by_tp)},
    )
