"""The benchmark queue: ``benchmark_configs`` rows claimed with ``FOR UPDATE SKIP LOCKED`` and owned through leases.

Every function here is one short transaction of its own (the engine's ``begin()``): no transaction stays open while a
benchmark runs, so ownership is the lease (``claimed_by`` + ``lease_expires_at``), not a row lock. All times come from
the database clock (``now()``), never from a worker's. A claim's ``started_at`` doubles as its fencing token: every
write after the claim names the worker AND the token, so a worker that lost its claim (lease expired, rescued,
cancelled, claimed again, even by itself) can no longer change the row. Each statement's guarantees are written
beside it.

Status moves: pending -> running (claim); running -> completed (complete); running -> pending after a backoff, or
failed (fail: a failed attempt is counted); running -> pending or failed (rescue of an expired lease by a claim or
the reaper: a preemption is counted); running -> pending (release on a clean stop: nothing counted); pending or
running -> cancelled (cancel).

Statements that wait for row locks on several configs (heartbeat, complete_batch, release, cancel) take them in
``id`` order, so that two of them (a worker's heartbeat thread and its main loop, say) can never deadlock; the claim
and the rescue never wait (SKIP LOCKED).

Liveness is the heartbeat alone: a claim is taken back only when its lease expired, never for its age, so a benchmark
that runs for hours but heartbeats is never reaped (the worker itself enforces a maximum run time per config).

Preemptions are counted apart from failures. A lease expires when its worker vanished without a word: a spot node
reclaimed, a pod evicted, a process killed. That is not the config's failure, so it does not spend one of the
``max_attempts`` (3) failed attempts, which are for runs that ended with an error; three spot losses in a row must
not fail a config for good. But a config that kills its own worker (the kernel's OOM killer, a driver crash taking the
node) looks exactly like a preemption, so preemptions have a limit of their own, larger (``max_preemptions``, 5):
past it the config fails for good saying so, instead of taking down node after node forever. A clean stop (SIGTERM,
which releases the claims) counts nothing: the worker lived to hand the config back.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from benchmark_platform import matrix
from benchmark_platform.orm import version_key_sql
from benchmark_platform.runners.base import METRIC_COLUMNS, Measurement

DEFAULT_LEASE_SECONDS = 600.0
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_MAX_PREEMPTIONS = 5
DEFAULT_RETRY_BASE_SECONDS = 30.0
DEFAULT_RETRY_MAX_SECONDS = 900.0
DEFAULT_MAX_RUN_SECONDS = 7200.0
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


@contextmanager
def _transaction(bind: Engine | Connection) -> Iterator[Connection]:
    """One transaction: on an Engine, a pooled connection's (committed at the end); on a caller's Connection, its own
    (committed at the end; in autocommit mode, as a worker holds it, each statement commits by itself: one round trip
    per statement, no pool checkout or pre-ping)."""
    if isinstance(bind, Engine):
        with bind.begin() as connection:
            yield connection
        return
    try:
        yield bind
    except BaseException:
        bind.rollback()
        raise
    bind.commit()


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


@dataclass(frozen=True)
class ClaimToken:
    """What fences a write after the claim: the config and the claim's token. A ``Claim`` carries both too."""

    id: uuid.UUID
    started_at: datetime


def _filters(hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None) -> list[str]:
    """Only the filters given appear in the SQL, so every variant keeps an index-friendly plan (no ``:x IS NULL OR``,
    which a generic prepared plan cannot push into an index)."""
    clauses = []
    if hardware_config_id is not None:
        clauses.append("hardware_config_id = :hardware_config_id")
    if model_version_id is not None:
        clauses.append("model_version_id = :model_version_id")
    return clauses


def _pending_filter(hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None) -> str:
    """Pending and due (its retry backoff, if any, has passed)."""
    return " AND ".join(
        ["status = 'pending'", "(run_after IS NULL OR run_after <= now())"]
        + _filters(hardware_config_id, model_version_id)
    )


def _expired_filter(hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None) -> str:
    """Running with an expired lease: its worker stopped heartbeating (reads idx_benchmark_config_lease)."""
    return " AND ".join(
        ["status = 'running'", "lease_expires_at < now()"] + _filters(hardware_config_id, model_version_id)
    )


def claim_sql(
    *, hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None, preferred_framework: bool
) -> str:
    """The claim statement for these filters (public so the benchmark and the plan test EXPLAIN the very same SQL).

    It first rescues expired claims of the same filters (``rescue_sql``'s CTEs, run to completion by PostgreSQL even
    though the claim does not read them): they are back to pending for the next claim, in the same round trip."""
    ctes = _claim_ctes(
        hardware_config_id=hardware_config_id,
        model_version_id=model_version_id,
        preferred_framework=preferred_framework,
    )
    return f"WITH {ctes}\n{_CLAIM_UPDATE}"


def _claim_ctes(
    *, hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None, preferred_framework: bool
) -> str:
    """The rescue CTEs and ``picked`` (the ids to claim, locked) for these filters."""
    where = _pending_filter(hardware_config_id, model_version_id)
    if preferred_framework:
        # Same order as ORDER BY (framework_id = :preferred) DESC, priority, created_at, written as two index-ordered
        # scans: the preferred framework's configs first, then the others fill what is left of the limit. A sort on
        # the expression would read and sort every pending row of the pool on each claim. The outer LIMIT stops the
        # append once it has :limit rows, so ``others`` is read (and its rows locked) only as far as needed; and it
        # tells the planner the batch is :limit rows, so the UPDATE below joins by primary key (with a computed
        # ``LIMIT :limit - count`` on ``others`` it guessed thousands and hashed a sequential scan of the table).
        if hardware_config_id is not None:  # a pool's pending rows, through idx_benchmark_config_claim
            preferred_where, preferred_order = "framework_id = :preferred_framework_id", "priority, created_at"
        else:
            # Without a pool, start at the preferred framework's first pending row (through migration 0008's
            # idx_benchmark_config_claim_framework) rather than walk the status index past every other framework's
            # pending rows in front of it, a walk that grows with each batch of a drain. Written as "= ANY(array)"
            # and ordered by framework_id first, so that this index is the one plan without a sort (with "= :id" the
            # planner, blind to where the preferred rows lie, keeps the status index).
            preferred_where = "framework_id = ANY(CAST(ARRAY[:preferred_framework_id] AS uuid[]))"
            preferred_order = "framework_id, priority, created_at"
        picked = f"""
            preferred AS MATERIALIZED (
                SELECT id FROM benchmark_configs
                WHERE {where} AND {preferred_where}
                ORDER BY {preferred_order}
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            ),
            others AS MATERIALIZED (
                SELECT id FROM benchmark_configs
                WHERE {where} AND framework_id <> :preferred_framework_id
                ORDER BY priority, created_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            ),
            picked AS MATERIALIZED (
                SELECT id FROM (SELECT id FROM preferred UNION ALL SELECT id FROM others) AS both_scans LIMIT :limit
            )"""
    else:
        picked = f"""
            picked AS MATERIALIZED (
                SELECT id FROM benchmark_configs
                WHERE {where}
                ORDER BY priority, created_at
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )"""
    rescue = _rescue_ctes(hardware_config_id=hardware_config_id, model_version_id=model_version_id, limited=True)
    return f"{rescue},\n{picked}"


_CLAIM_UPDATE = f"""
    UPDATE benchmark_configs AS c
    SET status = 'running', claimed_by = :worker_id, started_at = now(),
        lease_expires_at = now() + make_interval(secs => :lease_seconds), completed_at = NULL, run_after = NULL
    FROM picked
    WHERE c.id = picked.id AND c.status = 'pending'
    RETURNING {", ".join(f"c.{column.strip()}" for column in _CLAIM_COLUMNS.split(","))}
"""


def _rescue_ctes(*, hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None, limited: bool) -> str:
    limit = "LIMIT :rescue_limit" if limited else ""
    return f"""
        expired AS MATERIALIZED (
            SELECT id FROM benchmark_configs
            WHERE {_expired_filter(hardware_config_id, model_version_id)}
            {limit}
            FOR UPDATE SKIP LOCKED
        ),
        rescued AS (
            UPDATE benchmark_configs AS r
            SET preemption_count = r.preemption_count + 1,
                status = CASE WHEN r.preemption_count + 1 >= :max_preemptions THEN 'failed' ELSE 'pending' END,
                error_message = left(format(
                    'lease of worker %s expired (claimed %s, lease until %s): preemption %s of %s',
                    r.claimed_by, r.started_at, r.lease_expires_at, r.preemption_count + 1, :max_preemptions), 1000),
                completed_at = CASE WHEN r.preemption_count + 1 >= :max_preemptions THEN now() END,
                claimed_by = NULL, started_at = NULL, lease_expires_at = NULL, run_after = NULL
            FROM expired
            WHERE r.id = expired.id AND r.status = 'running' AND r.lease_expires_at < now()
            RETURNING r.status
        )"""


def rescue_sql(*, hardware_config_id: uuid.UUID | None, model_version_id: uuid.UUID | None, limited: bool) -> str:
    """Take back expired claims (of these filters): each counts a preemption; back to pending (due at once), or
    failed for good once ``max_preemptions`` preemptions are spent. Public for the plan test.

    Guarantees: only leases already expired on the database clock (a worker that heartbeats is never touched); SKIP
    LOCKED, so concurrent rescuers (claims, the reaper) take disjoint rows, and the WHERE re-checked under the row lock
    makes a row completed or rescued meanwhile a no-op; the claim's token (``started_at``) is cleared, so the old
    holder's complete/fail/heartbeat can no longer match it."""
    ctes = _rescue_ctes(hardware_config_id=hardware_config_id, model_version_id=model_version_id, limited=limited)
    return f"WITH {ctes} SELECT status FROM rescued"


RESCUE_PER_CLAIM = 100


def claim(
    bind: Engine | Connection,
    worker_id: str,
    *,
    limit: int = 10,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    hardware_config_id: uuid.UUID | None = None,
    model_version_id: uuid.UUID | None = None,
    preferred_framework_id: uuid.UUID | None = None,
    max_preemptions: int = DEFAULT_MAX_PREEMPTIONS,
) -> list[Claim]:
    """Claim up to ``limit`` due pending configs, lowest priority value first (then oldest), and commit at once.

    Self-healing: the same statement rescues expired claims of these filters (``rescue_sql``: a preemption counted,
    back to pending or failed past ``max_preemptions``), so a worker lost with its node needs no reaper: any worker's
    next claims on that pool take its configs back (the statement's snapshot predates the rescue, so they are claimed
    by the following claim: ``outstanding`` counts them as due meanwhile).

    Guarantees: a config is handed to one claimer only (the MATERIALIZED CTE is evaluated once and locks what it
    picks; SKIP LOCKED makes concurrent claimers take disjoint rows instead of waiting); only configs of the given
    hardware pool / model version whose backoff (``run_after``) has passed; the preferred framework's configs before
    any other. A short or empty batch does not mean the queue is empty (rows locked by a concurrent claim are
    skipped): see ``outstanding``.
    """
    request = ClaimRequest(
        limit=limit,
        lease_seconds=lease_seconds,
        hardware_config_id=hardware_config_id,
        model_version_id=model_version_id,
        preferred_framework_id=preferred_framework_id,
        max_preemptions=max_preemptions,
    )
    sql = claim_sql(
        hardware_config_id=hardware_config_id,
        model_version_id=model_version_id,
        preferred_framework=preferred_framework_id is not None,
    )
    with _transaction(bind) as connection:
        rows = connection.execute(text(sql), request.params(worker_id)).all()
    return request.in_order([Claim(*row) for row in rows])


@dataclass(frozen=True)
class ClaimRequest:
    """What a claim asks for (``claim``'s arguments), so that ``complete_and_claim`` can ask the same."""

    limit: int = 10
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    hardware_config_id: uuid.UUID | None = None
    model_version_id: uuid.UUID | None = None
    preferred_framework_id: uuid.UUID | None = None
    max_preemptions: int = DEFAULT_MAX_PREEMPTIONS

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"limit must be at least 1, got {self.limit}")

    def ctes(self) -> str:
        return _claim_ctes(
            hardware_config_id=self.hardware_config_id,
            model_version_id=self.model_version_id,
            preferred_framework=self.preferred_framework_id is not None,
        )

    def params(self, worker_id: str) -> dict[str, Any]:
        return {
            "limit": self.limit,
            "worker_id": worker_id,
            "lease_seconds": float(self.lease_seconds),
            "hardware_config_id": self.hardware_config_id,
            "model_version_id": self.model_version_id,
            "preferred_framework_id": self.preferred_framework_id,
            "max_preemptions": self.max_preemptions,
            "rescue_limit": RESCUE_PER_CLAIM,
        }

    def in_order(self, claims: list[Claim]) -> list[Claim]:
        """The preferred framework's configs first, then by priority and age (the order the claim picked them)."""
        return sorted(claims, key=lambda c: (c.framework_id != self.preferred_framework_id, c.priority, c.created_at))


@dataclass(frozen=True)
class Outstanding:
    """What is left for a worker's filters: ``due`` (pending and due, or running with an expired lease: claimable
    now), ``waiting`` (pending in retry backoff) and how long until the first of those is due."""

    due: int
    waiting: int
    next_due_seconds: float | None

    @property
    def drained(self) -> bool:
        return self.due == 0 and self.waiting == 0


def outstanding(
    bind: Engine | Connection, *, hardware_config_id: uuid.UUID | None = None, model_version_id: uuid.UUID | None = None
) -> Outstanding:
    """Counts, locked rows included: a worker is drained only when nothing is due, nothing waits for a retry and no
    expired claim is left for its filters. Read-only."""
    clauses = " AND ".join(["status IN ('pending', 'running')"] + _filters(hardware_config_id, model_version_id))
    with _transaction(bind) as connection:
        row = connection.execute(
            text(
                f"""
                SELECT count(*) FILTER (WHERE (status = 'pending' AND (run_after IS NULL OR run_after <= now()))
                                           OR (status = 'running' AND lease_expires_at < now())) AS due,
                       count(*) FILTER (WHERE status = 'pending' AND run_after > now()) AS waiting,
                       extract(epoch FROM min(run_after) FILTER (WHERE status = 'pending' AND run_after > now())
                                          - now()) AS next_due_seconds
                FROM benchmark_configs WHERE {clauses}
                """
            ),
            {"hardware_config_id": hardware_config_id, "model_version_id": model_version_id},
        ).one()
    return Outstanding(
        due=row.due,
        waiting=row.waiting,
        next_due_seconds=None if row.next_due_seconds is None else float(row.next_due_seconds),
    )


def heartbeat(
    bind: Engine | Connection, worker_id: str, *, lease_seconds: float = DEFAULT_LEASE_SECONDS
) -> set[uuid.UUID]:
    """Push the lease of every config this worker still holds to ``now() + lease_seconds``; returns their ids.

    A config the worker thinks it holds but that is missing from the answer was taken from it (cancelled, or its
    lease expired and it was rescued): the worker stops running it. Guarantees: an already expired lease is not
    revived (a rescuer may be taking it back), so a worker never extends a claim that ``complete`` would refuse; rows
    locked in id order (see the module docstring), the WHERE re-checked under each lock.
    """
    with _transaction(bind) as connection:
        return set(
            connection.execute(
                text(
                    """
                    WITH mine AS MATERIALIZED (
                        SELECT id FROM benchmark_configs
                        WHERE status = 'running' AND claimed_by = :worker_id AND lease_expires_at > now()
                        ORDER BY id
                        FOR UPDATE
                    )
                    UPDATE benchmark_configs AS c
                    SET lease_expires_at = now() + make_interval(secs => :lease_seconds)
                    FROM mine
                    WHERE c.id = mine.id
                    RETURNING c.id
                    """
                ),
                {"worker_id": worker_id, "lease_seconds": float(lease_seconds)},
            ).scalars()
        )


# The config's columns a result copies (so a result stays meaningful if its config is deleted).
_RESULT_CONFIG_COLUMNS = (
    "model_version_id",
    "hardware_config_id",
    "framework_id",
    "workload_type",
    "batch_size",
    "sequence_length",
    "tensor_parallel",
)
_RESULT_VALUE_COLUMNS = (*METRIC_COLUMNS, "detailed_metrics", "runner")
_VALUE_TYPES = {"detailed_metrics": "jsonb", "runner": "text"}


def _unnest_values() -> str:
    """The batch's values as one relation: a parallel array per column, unnested together."""
    arrays = [("config_id", "uuid"), ("claimed_at", "timestamptz")] + [
        (column, _VALUE_TYPES.get(column, "float8")) for column in _RESULT_VALUE_COLUMNS
    ]
    casts = ", ".join(f"CAST(:{name} AS {kind}[])" for name, kind in arrays)
    return f"SELECT * FROM unnest({casts}) AS v({', '.join(name for name, _ in arrays)})"


# A statement that records an outcome commits durably (waits for the WAL flush) even on a session whose
# synchronous_commit is off (a worker's, for cheap claims): set_config(..., true) lasts until this transaction's commit,
# which is when PostgreSQL reads it.
DURABLE_COMMIT = "durable AS MATERIALIZED (SELECT set_config('synchronous_commit', 'on', true) AS setting)"

_COMPLETE_CTES = f"""
    {DURABLE_COMMIT},
    v AS MATERIALIZED ({_unnest_values()}),
    locked AS MATERIALIZED (
        SELECT c.id FROM benchmark_configs AS c JOIN v ON c.id = v.config_id ORDER BY c.id FOR UPDATE OF c
    ),
    done AS (
        UPDATE benchmark_configs AS c
        SET status = 'completed', completed_at = now(), lease_expires_at = NULL, error_message = NULL
        FROM v, durable, locked
        WHERE c.id = v.config_id AND c.id = locked.id AND c.claimed_by = :worker_id AND c.started_at = v.claimed_at
          AND c.status = 'running' AND c.lease_expires_at > now()
        RETURNING c.id, {", ".join(f"c.{column}" for column in _RESULT_CONFIG_COLUMNS)}
    )"""

_RECORD_RESULTS = f"""
    INSERT INTO benchmark_results (config_id, {", ".join(_RESULT_CONFIG_COLUMNS)}, {", ".join(_RESULT_VALUE_COLUMNS)})
    SELECT done.id, {", ".join(f"done.{column}" for column in _RESULT_CONFIG_COLUMNS)},
           {", ".join(f"v.{column}" for column in _RESULT_VALUE_COLUMNS)}
    FROM done JOIN v ON v.config_id = done.id
    RETURNING config_id
"""

_COMPLETE_SQL = f"WITH {_COMPLETE_CTES}\n{_RECORD_RESULTS}"

_COMPLETED_BY_SQL = """
    SELECT c.id FROM benchmark_configs AS c
    JOIN unnest(CAST(:config_ids AS uuid[]), CAST(:claimed_at AS timestamptz[])) AS v(config_id, claimed_at)
      ON c.id = v.config_id AND c.started_at = v.claimed_at
    WHERE c.claimed_by = :worker_id AND c.status = 'completed'
"""


def _value_arrays(finished: Sequence[tuple[Claim | ClaimToken, Measurement]]) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {"config_id": [], "claimed_at": []}
    arrays.update({column: [] for column in _RESULT_VALUE_COLUMNS})
    for held, measurement in finished:
        columns = measurement.result_columns()
        arrays["config_id"].append(held.id)
        arrays["claimed_at"].append(held.started_at)
        for column in METRIC_COLUMNS:
            arrays[column].append(columns[column])
        arrays["detailed_metrics"].append(json.dumps(columns["detailed_metrics"], allow_nan=False))
        arrays["runner"].append(columns["runner"])
    return arrays


def complete_batch(
    bind: Engine | Connection, worker_id: str, finished: Sequence[tuple[Claim | ClaimToken, Measurement]]
) -> set[uuid.UUID]:
    """Record each measurement as its config's result and mark the config completed; returns the configs recorded
    (a config missing from the answer had its claim lost: its measurement is not recorded).

    Guarantees: one statement for the whole batch, so results and status changes commit together or not at all;
    fenced per config (this worker, that claim's token, still running, lease unexpired: otherwise no row for it); the
    unique index on ``benchmark_results(config_id)`` rejects a second result whatever happens. Idempotent for its
    caller: when a retry follows a commit whose acknowledgement was lost (connection dropped), the earlier commit is
    recognised as ours and the config counts as recorded, with still exactly one result row.
    """
    if not finished:
        return set()
    params = _value_arrays(finished) | {"worker_id": worker_id}
    with _transaction(bind) as connection:
        recorded = set(connection.execute(text(_COMPLETE_SQL), params).scalars())
        return recorded | _completed_earlier(connection, worker_id, finished, recorded)


def _completed_earlier(
    connection: Connection,
    worker_id: str,
    finished: Sequence[tuple[Claim | ClaimToken, Measurement]],
    recorded: set[uuid.UUID],
) -> set[uuid.UUID]:
    """Of the configs the recording statement did not record, those an earlier commit of the same claim did (a retry
    after a lost acknowledgement)."""
    missing = [held for held, _ in finished if held.id not in recorded]
    if not missing:
        return set()
    return set(
        connection.execute(
            text(_COMPLETED_BY_SQL),
            {
                "worker_id": worker_id,
                "config_ids": [held.id for held in missing],
                "claimed_at": [held.started_at for held in missing],
            },
        ).scalars()
    )


def complete_and_claim(
    bind: Engine | Connection,
    worker_id: str,
    finished: Sequence[tuple[Claim | ClaimToken, Measurement]],
    request: ClaimRequest,
) -> tuple[set[uuid.UUID], list[Claim]]:
    """``complete_batch(finished)`` and then ``claim(request)`` in one statement: one round trip and one commit
    per batch instead of two. Returns the configs recorded and the new claims.

    Guarantees: each part keeps its own (the recording fenced per config by worker, claim token, status and lease;
    the claim's SKIP LOCKED pick and its rescue of expired leases); they commit together, durably (the recording's
    ``durable`` CTE sets synchronous_commit for the whole transaction), so a new claim is never visible while the
    results before it are not. The parts touch disjoint rows: the recording only this worker's running rows with an
    unexpired lease, the rescue only expired ones, the claim only pending ones; and the only waits (row locks of the
    recording, in id order as everywhere) are the ones ``complete_batch`` takes alone. A retry after a lost
    acknowledgement recognises the recorded results as ``complete_batch`` does; the claims of the lost commit come
    back through their lease like those of any claim whose acknowledgement was lost.
    """
    if not finished:
        return set(), claim(bind, worker_id, **asdict(request))
    claim_columns = ", ".join(f"claimed.{column.strip()}" for column in _CLAIM_COLUMNS.split(","))
    sql = f"""
        WITH {_COMPLETE_CTES},
        recorded AS ({_RECORD_RESULTS}),
        {request.ctes()},
        claimed AS ({_CLAIM_UPDATE})
        SELECT (SELECT array_agg(config_id) FROM recorded) AS recorded_ids, {claim_columns}
        FROM (SELECT 1) AS one LEFT JOIN claimed ON true
    """
    params = _value_arrays(finished) | request.params(worker_id)
    with _transaction(bind) as connection:
        rows = connection.execute(text(sql), params).all()
        recorded = set(rows[0][0] or ())
        recorded |= _completed_earlier(connection, worker_id, finished, recorded)
    claims = [Claim(*row[1:]) for row in rows if row[1] is not None]
    return recorded, request.in_order(claims)


def complete(bind: Engine | Connection, held: Claim | ClaimToken, worker_id: str, measurement: Measurement) -> bool:
    """``complete_batch`` of one: True when recorded, False when the claim was lost."""
    return held.id in complete_batch(bind, worker_id, [(held, measurement)])


_UNLINKED_SQL = f"""
    INSERT INTO benchmark_results (config_id, {", ".join(_RESULT_CONFIG_COLUMNS)}, {", ".join(_RESULT_VALUE_COLUMNS)})
    SELECT NULL, {", ".join(_RESULT_CONFIG_COLUMNS)}, {", ".join(f":{column}" for column in METRIC_COLUMNS)},
           CAST(:detailed_metrics AS jsonb), :runner
    FROM benchmark_configs
    WHERE id = :config_id
      AND NOT EXISTS (SELECT 1 FROM benchmark_results
                      WHERE config_id IS NULL AND detailed_metrics -> 'unlinked' ->> 'spool_id' = :spool_id)
    RETURNING id
"""


def record_unlinked(
    bind: Engine | Connection, config_id: uuid.UUID, measurement: Measurement, *, spool_id: str, reason: str
) -> bool:
    """Keep a measurement whose claim was lost as an unlinked result: ``config_id`` NULL (the config keeps its own
    status and will be, or was, measured again), the config's dimensions copied, and ``detailed_metrics.unlinked``
    saying which config, why, and the spool entry it came from. False when the config no longer exists.

    Guarantees: at most one row per spool entry, even when two workers sharing a platform home record the same entry
    at once (a transaction-scoped advisory lock on the entry orders them; a replay after a crash between commit and the
    spool file's removal inserts nothing); never touches the config, so the fencing of its current holder is
    unaffected. Pass an Engine (the lock needs a transaction of its own).
    """
    columns = measurement.result_columns()
    detail = dict(columns["detailed_metrics"])
    detail["unlinked"] = {"config_id": str(config_id), "spool_id": spool_id, "reason": reason}
    params = {column: columns[column] for column in METRIC_COLUMNS}
    params.update(
        config_id=config_id,
        spool_id=spool_id,
        detailed_metrics=json.dumps(detail, allow_nan=False),
        runner=columns["runner"],
    )
    with _transaction(bind) as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:spool_id))"), {"spool_id": spool_id})
        inserted = connection.execute(text(_UNLINKED_SQL), params).first() is not None
        if inserted:
            return True
        return (
            connection.execute(
                text(
                    "SELECT 1 FROM benchmark_results WHERE config_id IS NULL "
                    "AND detailed_metrics -> 'unlinked' ->> 'spool_id' = :spool_id"
                ),
                {"spool_id": spool_id},
            ).first()
            is not None
        )


@dataclass(frozen=True)
class FailOutcome:
    status: str  # "pending" (will be retried after run_after) or "failed" (attempts used up)
    retry_count: int


def fail(
    bind: Engine | Connection,
    held: Claim | ClaimToken,
    worker_id: str,
    error: str,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    retry_base_seconds: float = DEFAULT_RETRY_BASE_SECONDS,
    retry_max_seconds: float = DEFAULT_RETRY_MAX_SECONDS,
) -> FailOutcome | None:
    """Count a failed attempt: back to pending after a backoff, or failed for good once ``max_attempts`` attempts
    have failed.

    The backoff is exponential with jitter: attempt n waits ``min(retry_max, retry_base * 2**(n-1))`` scaled by a
    random factor in [0.5, 1) (so that configs failing together do not come back together); claims skip the config
    until then. Guarantees: fenced like ``complete`` (None when the claim was lost: nothing changes); the delay is on
    the database clock; the message is kept (first 1000 characters) so a person can see why; ``retry_count`` is the
    number of failed attempts (preemptions are counted apart, in ``preemption_count``).
    """
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
    with _transaction(bind) as connection:
        row = connection.execute(
            text(
                f"""
                WITH {DURABLE_COMMIT}
                UPDATE benchmark_configs
                SET retry_count = retry_count + 1,
                    error_message = :error,
                    status = CASE WHEN retry_count + 1 >= :max_attempts THEN 'failed' ELSE 'pending' END,
                    completed_at = CASE WHEN retry_count + 1 >= :max_attempts THEN now() END,
                    claimed_by = CASE WHEN retry_count + 1 >= :max_attempts THEN claimed_by END,
                    started_at = CASE WHEN retry_count + 1 >= :max_attempts THEN started_at END,
                    run_after = CASE WHEN retry_count + 1 < :max_attempts THEN now() + make_interval(secs =>
                        least(:retry_max, :retry_base * power(2, retry_count)) * (0.5 + random() / 2)) END,
                    lease_expires_at = NULL
                FROM durable
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
                "retry_base": float(retry_base_seconds),
                "retry_max": float(retry_max_seconds),
            },
        ).first()
    return FailOutcome(status=row.status, retry_count=row.retry_count) if row is not None else None


def release(
    bind: Engine | Connection,
    worker_id: str,
    config_ids: Collection[uuid.UUID] | None = None,
    *,
    keep: Collection[uuid.UUID] = (),
) -> int:
    """Give this worker's unfinished claims (all, or those listed; never those in ``keep``) back to pending without
    counting anything.

    For a clean stop (SIGTERM, spot notice, Ctrl-C): the configs can be claimed again at once instead of after the
    lease. A clean stop is never the config's fault (the worker lived to hand it back), so neither an attempt nor a
    preemption is counted. ``keep``: claims whose result waits in the spool stay held, so that the spool can still
    complete them. Guarantee: only rows this worker still holds (claimed_by, running) change; returns how many.
    """
    id_filter = "AND id = ANY(:config_ids)" if config_ids is not None else ""
    with _transaction(bind) as connection:
        return connection.execute(
            text(
                f"""
                WITH mine AS MATERIALIZED (
                    SELECT id FROM benchmark_configs
                    WHERE status = 'running' AND claimed_by = :worker_id {id_filter} AND NOT (id = ANY(:keep))
                    ORDER BY id
                    FOR UPDATE
                )
                UPDATE benchmark_configs AS c
                SET status = 'pending', claimed_by = NULL, started_at = NULL, lease_expires_at = NULL
                FROM mine
                WHERE c.id = mine.id
                """
            ),
            {"worker_id": worker_id, "config_ids": list(config_ids or ()), "keep": list(keep)},
        ).rowcount


@dataclass(frozen=True)
class ReapReport:
    returned_to_pending: int
    failed: int


def reap(bind: Engine | Connection, *, max_preemptions: int = DEFAULT_MAX_PREEMPTIONS) -> ReapReport:
    """Take back every expired claim, whatever its pool (``rescue_sql`` without filters or limit).

    Claims already do this for their own filters; the reaper is for pools no worker is looking at any more. Only
    leases matter: a claim that heartbeats is never reaped, however long its benchmark runs (the worker enforces the
    maximum run time itself). Guarantees: those of ``rescue_sql``; safe to run from several places at once.
    """
    with _transaction(bind) as connection:
        statuses = (
            connection.execute(
                text(rescue_sql(hardware_config_id=None, model_version_id=None, limited=False)),
                {"max_preemptions": max_preemptions},
            )
            .scalars()
            .all()
        )
    return ReapReport(returned_to_pending=statuses.count("pending"), failed=statuses.count("failed"))


def statuses(bind: Engine | Connection, config_ids: Collection[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The current status of each config (missing: deleted). Read-only."""
    with _transaction(bind) as connection:
        rows = connection.execute(
            text("SELECT id, status FROM benchmark_configs WHERE id = ANY(:ids)"), {"ids": list(config_ids)}
        ).all()
    return {row.id: row.status for row in rows}


@dataclass(frozen=True)
class CancelReport:
    pending: int  # pending configs cancelled
    running: int  # running configs cancelled (their workers stop on their next heartbeat)


def cancel(
    bind: Engine | Connection,
    model_version_id: uuid.UUID,
    *,
    hardware_config_ids: Collection[uuid.UUID] | None = None,
    framework_ids: Collection[uuid.UUID] | None = None,
) -> CancelReport:
    """Cancel a version's pending and running configs (optionally only some hardware configs / frameworks).

    Guarantees: one statement; row locks order it with concurrent writes (a config completed or failed just before
    keeps that outcome: the WHERE is re-checked under the lock); a cancelled config is never claimed again, and its
    worker can no longer complete, fail or heartbeat it (they are fenced on status 'running'), so no result is
    recorded for it; its worker learns it from its next heartbeat and stops the run.
    """
    clauses = ["model_version_id = :model_version_id", "status IN ('pending', 'running')"]
    if hardware_config_ids is not None:
        clauses.append("hardware_config_id = ANY(:hardware_config_ids)")
    if framework_ids is not None:
        clauses.append("framework_id = ANY(:framework_ids)")
    with _transaction(bind) as connection:
        before = (
            connection.execute(
                text(
                    f"""
                    WITH target AS MATERIALIZED (
                        SELECT id, status FROM benchmark_configs WHERE {" AND ".join(clauses)} ORDER BY id FOR UPDATE
                    )
                    UPDATE benchmark_configs AS c
                    SET status = 'cancelled', completed_at = now(), lease_expires_at = NULL, run_after = NULL,
                        error_message = 'cancelled'
                    FROM target
                    WHERE c.id = target.id AND c.status IN ('pending', 'running')
                    RETURNING target.status
                    """
                ),
                {
                    "model_version_id": model_version_id,
                    "hardware_config_ids": list(hardware_config_ids or ()),
                    "framework_ids": list(framework_ids or ()),
                },
            )
            .scalars()
            .all()
        )
    return CancelReport(pending=before.count("pending"), running=before.count("running"))


FINISHED_STATUSES = ("completed", "failed", "cancelled", "skipped")  # skipped: by the adaptive planner


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
    unlinked_results: int = 0  # measurements kept without a config (their claim was lost): see record_unlinked
    total: int = field(init=False)
    percent_complete: float = field(init=False)
    eta_seconds: float | None = field(init=False)

    def __post_init__(self) -> None:
        total = sum(self.by_status.values())
        done = sum(self.by_status.get(status, 0) for status in FINISHED_STATUSES)
        remaining = total - done
        rate = self.finished_in_window / (self.window_minutes * 60)
        to_run = total - self.by_status.get("skipped", 0)  # skipped by the planner: not to run
        object.__setattr__(self, "total", total)
        object.__setattr__(
            self, "percent_complete", 100.0 * self.by_status.get("completed", 0) / to_run if to_run else 0
        )
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
            "unlinked_results": self.unlinked_results,
        }


def progress(
    bind: Engine | Connection,
    model_version_id: uuid.UUID | None = None,
    *,
    window_minutes: float = DEFAULT_THROUGHPUT_WINDOW_MINUTES,
) -> Progress:
    """Counts by status (per hardware config and per model version), completion % and an ETA from the configs
    finished (completed, failed for good or cancelled) in the last ``window_minutes``, and the unlinked results.
    Read-only."""
    where = "WHERE c.model_version_id = :model_version_id" if model_version_id is not None else ""
    with _transaction(bind) as connection:
        rows = connection.execute(
            text(
                f"""
                SELECT h.name AS hardware, {VERSION_KEY} AS version_key, c.tensor_parallel, c.status,
                       count(*) AS n,
                       count(*) FILTER (WHERE c.status IN ('completed', 'failed', 'cancelled')
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
        result_filter = "AND model_version_id = :model_version_id" if model_version_id is not None else ""
        unlinked = connection.execute(
            text(f"SELECT count(*) FROM benchmark_results WHERE config_id IS NULL {result_filter}"),
            {"model_version_id": model_version_id},
        ).scalar_one()
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
        unlinked_results=unlinked,
    )


# ------------------------------------------------------------------------------------------------ adaptive planning
# The planner (``planner.py``, pure) decides; these statements read its inputs and apply its decisions. Skipped configs
# stay in the table with their reason and come back with ``requeue_skipped``.

PLAN_LOCK_NAMESPACE = 7_314_015  # pg advisory lock key space of the planner (one lock per model version)


@dataclass(frozen=True)
class PlanRow:
    """A config of the version as the planner reads it, with its committed result when completed."""

    id: uuid.UUID
    hardware: str
    framework: str
    workload_type: str
    batch_size: int
    sequence_length: int
    tensor_parallel: int
    status: str
    pruning_exempt: bool
    prediction: dict[str, Any] | None
    gpu_count: int
    hourly_price_usd: float
    ttft_p90_ms: float | None
    tpot_p90_ms: float | None
    throughput_tokens_sec: float | None


def load_plan_rows(connection: Connection, model_version_id: uuid.UUID) -> list[PlanRow]:
    """Every config of the version with its result (completed ones only).

    Guarantee: run inside one transaction, it sees one committed snapshot (REPEATABLE READ, set by the caller): a
    worker that died mid-run leaves a ``running`` row and no result, never half a result. The hourly price is the
    ranking's (spot where the hardware is spot-available and has a spot price, else on demand)."""
    rows = connection.execute(
        text(
            """
            SELECT c.id, h.name AS hardware, f.name AS framework, c.workload_type, c.batch_size, c.sequence_length,
                   c.tensor_parallel, c.status, c.pruning_exempt, c.prediction, h.gpu_count,
                   CASE WHEN h.spot_available AND h.spot_cost_per_hour_usd IS NOT NULL
                        THEN h.spot_cost_per_hour_usd ELSE h.cost_per_hour_usd END AS hourly_price_usd,
                   r.ttft_p90_ms, r.tpot_p90_ms, r.throughput_tokens_sec
            FROM benchmark_configs c
            JOIN hardware_configs h ON h.id = c.hardware_config_id
            JOIN inference_frameworks f ON f.id = c.framework_id
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
            """
            SELECT id, model_version_id, hardware_config_id, framework_id, workload_type, batch_size, sequence_length,
                   tensor_parallel
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


def pruning_summary(engine: Engine, model_version_id: uuid.UUID | None = None) -> PruningSummary:
    """Read-only: skipped counts and GPU-hours by reason (configs without a prediction count zero hours)."""
    where = "WHERE c.model_version_id = :v" if model_version_id is not None else ""
    with engine.begin() as connection:
        rows = connection.execute(
            text(
                f"""
                SELECT CASE WHEN c.status = 'skipped' THEN c.skip_reason END AS reason, count(*) AS n,
                       coalesce(sum(CAST(c.prediction ->> 'run_seconds' AS double precision) * h.gpu_count), 0)
                           / 3600.0 AS gpu_hours
                FROM benchmark_configs c JOIN hardware_configs h ON h.id = c.hardware_config_id
                {where}
                GROUP BY 1
                """
            ),
            {"v": model_version_id},
        ).all()
    skipped = {row.reason: row.n for row in rows if row.reason is not None}
    saved = {row.reason: float(row.gpu_hours) for row in rows if row.reason is not None}
    to_run = sum(float(row.gpu_hours) for row in rows if row.reason is None)
    return PruningSummary(dict(sorted(skipped.items())), dict(sorted(saved.items())), to_run)


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
