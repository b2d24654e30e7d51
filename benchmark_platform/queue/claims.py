"""Claims and their outcomes: claim (with the rescue of expired leases), outstanding, live claims, heartbeat,
complete, record unlinked, fail, release, reap, statuses, cancel. The guarantees of each statement are written beside
it; the status moves and the fencing they share are described in the package docstring (``benchmark_platform.queue``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from benchmark_platform.domain import CONFIG_KEY_COLUMNS, ConfigKey
from benchmark_platform.queue.common import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_PREEMPTIONS,
    DEFAULT_RETRY_BASE_SECONDS,
    DEFAULT_RETRY_MAX_SECONDS,
    ERROR_MESSAGE_LIMIT,
    _transaction,
)
from benchmark_platform.runners.base import METRIC_COLUMNS, Measurement


@dataclass(frozen=True)
class Claim(ConfigKey):
    """A config this worker holds: its key (``domain.ConfigKey``), then its id and the claim. ``started_at`` is the
    claim's fencing token (set by the database at claim time)."""

    id: uuid.UUID
    priority: int
    created_at: datetime
    retry_count: int
    started_at: datetime
    lease_expires_at: datetime


_CLAIM_COLUMNS = ", ".join(field.name for field in fields(Claim))  # what a claim returns, in Claim's order


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
    now), ``waiting`` (pending in retry backoff) and how long until the first of those is due, ``running`` (running
    under a live lease, whoever holds it) and how long until the first of those leases expires."""

    due: int
    waiting: int
    next_due_seconds: float | None
    running: int = 0
    next_expiry_seconds: float | None = None

    @property
    def drained(self) -> bool:
        """Nothing of the filters is pending, due for a retry or running under anyone's lease: every config has
        reached completed, failed or cancelled (or been skipped), so no other worker's claim can still come back."""
        return self.due == 0 and self.waiting == 0 and self.running == 0


def outstanding(
    bind: Engine | Connection, *, hardware_config_id: uuid.UUID | None = None, model_version_id: uuid.UUID | None = None
) -> Outstanding:
    """Counts, locked rows included, on the database's clock: what a worker must wait for before it may say the
    queue is drained (see ``Outstanding.drained``). Read-only."""
    clauses = " AND ".join(["status IN ('pending', 'running')"] + _filters(hardware_config_id, model_version_id))
    with _transaction(bind) as connection:
        row = connection.execute(
            text(
                f"""
                SELECT count(*) FILTER (WHERE (status = 'pending' AND (run_after IS NULL OR run_after <= now()))
                                           OR (status = 'running' AND lease_expires_at < now())) AS due,
                       count(*) FILTER (WHERE status = 'pending' AND run_after > now()) AS waiting,
                       extract(epoch FROM min(run_after) FILTER (WHERE status = 'pending' AND run_after > now())
                                          - now()) AS next_due_seconds,
                       count(*) FILTER (WHERE status = 'running' AND lease_expires_at >= now()) AS running,
                       extract(epoch FROM min(lease_expires_at) FILTER (WHERE status = 'running'
                                                                        AND lease_expires_at >= now())
                                          - now()) AS next_expiry_seconds
                FROM benchmark_configs WHERE {clauses}
                """
            ),
            {"hardware_config_id": hardware_config_id, "model_version_id": model_version_id},
        ).one()
    return Outstanding(
        due=row.due,
        waiting=row.waiting,
        next_due_seconds=None if row.next_due_seconds is None else float(row.next_due_seconds),
        running=row.running,
        next_expiry_seconds=None if row.next_expiry_seconds is None else float(row.next_expiry_seconds),
    )


def live_claims(bind: Engine | Connection, worker_id: str) -> int:
    """How many configs ``worker_id`` holds under a live lease: before a worker starts, its id must hold none, or
    another process with the same id is alive (or died less than a lease ago) and its claims are not ours to
    heartbeat or release. Read-only."""
    with _transaction(bind) as connection:
        return connection.execute(
            text(
                "SELECT count(*) FROM benchmark_configs"
                " WHERE status = 'running' AND claimed_by = :worker_id AND lease_expires_at >= now()"
            ),
            {"worker_id": worker_id},
        ).scalar_one()


def heartbeat(
    bind: Engine | Connection,
    worker_id: str,
    *,
    lease_seconds: float = DEFAULT_LEASE_SECONDS,
    config_ids: Collection[uuid.UUID] | None = None,
) -> set[uuid.UUID]:
    """Push the lease of every config this worker still holds (all, or those listed: a worker lists the claims it
    made itself, so it never keeps alive another process's claims under the same id) to ``now() + lease_seconds``;
    returns their ids.

    A config the worker thinks it holds but that is missing from the answer was taken from it (cancelled, or its
    lease expired and it was rescued): the worker stops running it. Guarantees: an already expired lease is not
    revived (a rescuer may be taking it back), so a worker never extends a claim that ``complete`` would refuse; rows
    locked in id order (see the module docstring), the WHERE re-checked under each lock.
    """
    id_filter = "AND id = ANY(:config_ids)" if config_ids is not None else ""
    with _transaction(bind) as connection:
        return set(
            connection.execute(
                text(
                    f"""
                    WITH mine AS MATERIALIZED (
                        SELECT id FROM benchmark_configs
                        WHERE status = 'running' AND claimed_by = :worker_id AND lease_expires_at > now()
                              {id_filter}
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
                {"worker_id": worker_id, "lease_seconds": float(lease_seconds), "config_ids": list(config_ids or ())},
            ).scalars()
        )


# The config's columns a result copies (so a result stays meaningful if its config is deleted).
_RESULT_CONFIG_COLUMNS = CONFIG_KEY_COLUMNS
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
