"""The benchmark worker: claim a batch of configs, run each, record the results or the failures, until none is left.

``run_worker`` is what both ``benchmark-platform worker`` and Dagster ops call. A background thread heartbeats the
leases; the heartbeat's answer (the claims still held) is also how the worker learns that a config was cancelled or
taken from it, and it stops that run. Liveness is the heartbeat only: the worker itself stops a run longer than its
``max_run_seconds`` and fails that attempt saying so. Failed attempts come back after an exponential backoff; the
worker waits for them. A worker is done ("queue drained") only when nothing of its filters is pending, waits for a
retry or runs under anyone's lease: it waits for other workers' live claims, at most ``drain_wait_seconds`` (default:
the lease; exit status 4 when the wait ends first), and claims rescue expired leases themselves, so a worker killed
with ``kill -9`` is recovered by the next claim, no reaper needed. A worker id that already holds live claims is
refused (another process owns them); a worker heartbeats and releases only the claims it made (docs/reliability.md).

It stops on its ``stop_event`` (the CLI sets it on SIGTERM/SIGINT): it starts nothing new, the runner aborts the config
in flight (``RunInterrupted``), results already measured are recorded, and every unfinished claim goes back to
pending without counting anything. A batch's results are recorded by the statement that claims the next batch (one
round trip and one commit per batch), or by one of their own at most ``RECORD_EVERY_SECONDS`` after they finish
when the batch is still running; a slow run's result is recorded as soon as it ends. Database errors (a
server restart, a dropped connection) are retried with exponential backoff on fresh pooled connections; when the
database stays away longer than the retry budget, finished results go to the local spool (``spool``) and are recorded
by the next worker started with the same platform home, so a measured result is never dropped.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from benchmark_platform import queue, spool
from benchmark_platform.domain import serving_options
from benchmark_platform.runners import (
    Measurement,
    RunInterrupted,
    RunnerError,
    RunSpec,
    get_runner,
    runner_entry,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_RESULTS_LOST = 3
EXIT_NOT_DRAINED = 4

MAX_HEARTBEAT_SECONDS = 30.0
RECORD_EVERY_SECONDS = 1.0  # results of fast runs wait at most this long to be recorded together
MAX_IDLE_WAIT_SECONDS = 5.0  # while only retries in backoff are left, look again at least this often


class DatabaseUnavailable(RuntimeError):
    """The database stayed unreachable for longer than the worker's retry budget."""


class WorkerIdInUse(ValueError):
    """The worker id already holds claims under a live lease: another process with this id owns them."""


class WorkerOptions(BaseModel):
    """What a worker takes from the queue and how. Validated so that a bad flag fails before anything is claimed."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    model_version_id: uuid.UUID | None = None
    hardware: str | None = Field(
        default=None, description="Hardware config name: only claim that pool's configs (e.g. aws-h100-sxm-x8)."
    )
    claim_batch: int | None = Field(
        default=None, ge=1, le=1000, description="Configs claimed per round trip [default: the runner's claim batch]."
    )
    lease_seconds: float = Field(
        default=queue.DEFAULT_LEASE_SECONDS, ge=1, description="Lease on claimed configs, renewed by heartbeats."
    )
    heartbeat_seconds: float | None = Field(default=None, gt=0, description="default: a third of the lease")
    max_attempts: int = Field(
        default=queue.DEFAULT_MAX_ATTEMPTS, ge=1, description="Failed attempts before a config fails for good."
    )
    max_preemptions: int = Field(default=queue.DEFAULT_MAX_PREEMPTIONS, ge=1)
    retry_base_seconds: float = Field(
        default=queue.DEFAULT_RETRY_BASE_SECONDS,
        ge=0,
        le=86_400,
        description="Backoff before the first retry of a failed config; doubled for each further attempt, with jitter.",
    )
    retry_max_seconds: float = Field(default=queue.DEFAULT_RETRY_MAX_SECONDS, ge=0, le=86_400)
    max_run_seconds: float = Field(
        default=queue.DEFAULT_MAX_RUN_SECONDS,
        gt=0,
        le=7 * 86_400,
        description="A config's run is stopped after this long and the attempt fails (liveness is the heartbeat).",
    )
    spool_dir: Path | None = Field(default=None, description="default: the platform home's spool folder")
    runner: str = Field(default="simulated", description="The registered runner that runs each config.")
    runner_options: dict[str, Any] = Field(default_factory=dict)
    max_configs: int | None = Field(default=None, ge=1, description="Stop after this many configs.")
    worker_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Name recorded in claimed_by [default: host-pid-random]; refused while it holds live claims.",
    )
    db_retry_seconds: float = Field(
        default=120.0, ge=0, description="How long to keep retrying while the database is unreachable."
    )
    drain_wait_seconds: float | None = Field(
        default=None,
        ge=0,
        le=7 * 86_400,
        description="When only other workers' running claims are left, wait this long for them [default: the lease].",
    )
    replan_seconds: float = Field(
        default=5.0,
        ge=0,
        le=86_400,
        description="Re-run the adaptive planner between claims, at most this often; 0: never. A version benchmarked "
        "exhaustively (populate-matrix --exhaustive) is never re-planned.",
    )
    stop_event: threading.Event | None = None
    # Called between two claims (after a batch is recorded); database errors in it are retried like the queue's own
    # calls. Left out, it is the adaptive planner every ``replan_seconds`` (``adaptive.replanner_for``).
    between_batches: Callable[[], object] | None = None

    @model_validator(mode="after")
    def _runner_claim_batch_by_default(self) -> WorkerOptions:
        if self.claim_batch is None:
            object.__setattr__(self, "claim_batch", runner_entry(self.runner).claim_batch)
        return self

    @model_validator(mode="after")
    def _heartbeat_inside_lease(self) -> WorkerOptions:
        if self.heartbeat_seconds is not None and self.heartbeat_seconds >= self.lease_seconds:
            raise ValueError("heartbeat_seconds must be shorter than lease_seconds, or every lease expires")
        return self

    def heartbeat_interval(self) -> float:
        """A third of the lease (two beats may fail before it expires), at most ``MAX_HEARTBEAT_SECONDS`` so that a
        cancellation reaches the worker quickly."""
        if self.heartbeat_seconds is not None:
            return self.heartbeat_seconds
        return min(self.lease_seconds / 3, MAX_HEARTBEAT_SECONDS)


@dataclass
class WorkerSummary:
    worker_id: str
    completed: int = 0
    failed_attempts: int = 0
    failed_for_good: int = 0
    released: int = 0
    lost_claims: int = 0  # claims taken back (lease expired) before this worker could record them
    cancelled: int = 0  # configs cancelled while this worker held them (runs stopped, results not recorded)
    timed_out: int = 0  # runs stopped at max_run_seconds (each a failed attempt)
    spooled_results: int = 0  # results written to the local spool (the database stayed unreachable)
    recorded_from_spool: int = 0  # spooled results (of this or an earlier worker) recorded at start
    unlinked_from_spool: int = 0  # spooled results kept as unlinked results: their claim had been lost
    rejected_from_spool: int = 0  # spool files that were not valid signed entries: moved to spool/rejected/
    not_drained: int = 0  # configs still running under other workers' live leases when the drain wait ended
    database_retries: int = 0
    stopped: bool = False
    reached_max: bool = False
    error: str | None = None
    elapsed_seconds: float = 0.0
    framework_switches: int = 0  # a real runner restarts its inference server on each switch

    @property
    def exit_code(self) -> int:
        if self.error is not None:
            return EXIT_FAILURE
        if self.lost_claims:
            return EXIT_RESULTS_LOST
        if self.not_drained:
            return EXIT_NOT_DRAINED
        return EXIT_OK

    def line(self) -> str:
        if self.error is not None:
            ending = f"error: {self.error}"
        else:
            ending = "stopped" if self.stopped else "max configs reached" if self.reached_max else "queue drained"
            if self.not_drained and not self.stopped:
                ending = (
                    f"not drained: {self.not_drained} configs still running under other workers' live leases "
                    "when the drain wait ended"
                )
        return (
            f"worker {self.worker_id}: {self.completed} completed, {self.failed_attempts} failed attempts "
            f"({self.failed_for_good} failed for good, {self.timed_out} over the maximum run time), "
            f"{self.released} released, {self.lost_claims} lost claims, {self.cancelled} cancelled, "
            f"{self.spooled_results} spooled, {self.recorded_from_spool + self.unlinked_from_spool} recorded from "
            f"the spool ({self.unlinked_from_spool} unlinked, {self.rejected_from_spool} rejected), "
            f"{self.database_retries} database retries, "
            f"{self.framework_switches} framework switches in {self.elapsed_seconds:.1f} s ({ending})"
        )


def default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


_TRANSIENT_ERRORS = (OperationalError, InterfaceError)


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, _TRANSIENT_ERRORS) or (isinstance(error, DBAPIError) and error.connection_invalidated)


class _Database:
    """Runs one queue call at a time on the worker's own connection, retrying transient errors with capped
    exponential backoff and jitter. Once the worker is told to stop, a call gets at most ``STOP_RETRY_SECONDS`` more,
    so that a stop is quick even while the database is away (unreleased claims then come back through their lease).

    The connection stays checked out in autocommit mode: every queue statement is its own transaction and costs one
    round trip (no pool checkout, pre-ping or separate COMMIT). After a transient error it is dropped and the next
    attempt opens a fresh one."""

    STOP_RETRY_SECONDS = 5.0

    def __init__(self, engine: Engine, summary: WorkerSummary, retry_seconds: float, stop: threading.Event) -> None:
        self.engine = engine
        self.summary = summary
        self.retry_seconds = retry_seconds
        self.stop = stop
        self._connection: Connection | None = None

    def connection(self) -> Connection:
        if self._connection is None:
            connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            # Claims, releases and reads need not wait for the WAL flush (see queue.DURABLE_COMMIT): a claim lost in a
            # server crash is claimed again, its result fenced out. Results and failures still wait for it.
            connection.exec_driver_sql("SET synchronous_commit = off")
            self._connection = connection
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            except DBAPIError:
                pass  # already broken: the pool discards it
            self._connection = None

    def call(self, action: Callable[[], T], *, retry_seconds: float | None = None) -> T:
        budget = self.retry_seconds if retry_seconds is None else retry_seconds
        deadline = time.monotonic() + budget
        stop_deadline = None
        delay = 0.05
        while True:
            try:
                return action()
            except DBAPIError as error:
                if not _is_transient(error):
                    raise
                self.close()
                if self.stop.is_set() and stop_deadline is None:
                    stop_deadline = time.monotonic() + self.STOP_RETRY_SECONDS
                    deadline = min(deadline, stop_deadline)
                if time.monotonic() + delay > deadline:
                    raise DatabaseUnavailable(f"database unreachable, gave up retrying: {error.orig}") from error
                self.summary.database_retries += 1
                log.warning("database error, retrying in %.2f s: %s", delay, error.orig)
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, 5.0)


class _Leases:
    """The claims this worker holds and those taken from it, as its heartbeats see them (shared with the loop)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.held: set[uuid.UUID] = set()
        self.taken: set[uuid.UUID] = set()

    def add(self, ids: list[uuid.UUID]) -> None:
        with self._lock:
            self.held.update(ids)

    def drop(self, ids: list[uuid.UUID]) -> None:
        with self._lock:
            self.held.difference_update(ids)

    def beat(self, extend: Callable[[set[uuid.UUID]], set[uuid.UUID]]) -> None:
        """Extend the leases of the claims held (only those: never another process's under the same id); one held
        before the beat and missing from its answer was taken (cancelled, or rescued after its lease expired).
        Claims added during the beat are not judged by it."""
        with self._lock:
            before = set(self.held)
        alive = extend(before) if before else set()
        with self._lock:
            self.taken |= (before & self.held) - alive


class _Heartbeat(threading.Thread):
    """Extends this worker's leases every ``interval`` seconds until stopped; after any error the next beat retries
    (the thread never dies while the worker runs)."""

    def __init__(self, engine: Engine, worker_id: str, leases: _Leases, lease_seconds: float, interval: float) -> None:
        super().__init__(name=f"heartbeat-{worker_id}", daemon=True)
        self.engine, self.worker_id, self.lease_seconds, self.interval = engine, worker_id, lease_seconds, interval
        self.leases = leases
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                self.leases.beat(
                    lambda held: queue.heartbeat(
                        self.engine, self.worker_id, lease_seconds=self.lease_seconds, config_ids=held
                    )
                )
            except DBAPIError as error:
                log.warning("heartbeat failed (will retry): %s", error.orig)
            except Exception:  # any other error must not end the beats silently while the worker goes on
                log.exception("heartbeat failed (will retry)")


# ---------------------------------------------------------------------------------------------------- run specs


def _config_value(config_row: Any, name: str) -> Any:
    return config_row[name] if isinstance(config_row, Mapping) else getattr(config_row, name)


def _spec_from_facts(facts: queue.ConfigFacts, config_row: Any) -> RunSpec:
    return RunSpec(
        config_id=_config_value(config_row, "id"),
        model=facts.model,
        hardware=facts.hardware,
        framework=facts.framework,
        workload=facts.workload,
        batch_size=_config_value(config_row, "batch_size"),
        sequence_length=_config_value(config_row, "sequence_length"),
        tensor_parallel=_config_value(config_row, "tensor_parallel"),
        options=serving_options(config_row),
    )


def _facts_key(config_row: Any) -> tuple[Any, ...]:
    return tuple(
        _config_value(config_row, name)
        for name in ("model_version_id", "hardware_config_id", "framework_id", "workload_type")
    )


def build_run_spec(connection: Connection, config_row: Any) -> RunSpec:
    """Resolve a ``benchmark_configs`` row (a ``queue.Claim``, a Row or a mapping with its columns) into the
    ``RunSpec`` a runner needs, joining the model version, hardware, framework and use case catalogs."""
    return _spec_from_facts(queue.load_config_facts(connection, *_facts_key(config_row)), config_row)


# ---------------------------------------------------------------------------------------------------- the loop


class _Worker:
    def __init__(self, engine: Engine, options: WorkerOptions, summary: WorkerSummary, stop: threading.Event) -> None:
        self.engine = engine
        self.options = options
        self.summary = summary
        self.stop = stop
        self.db = _Database(engine, summary, options.db_retry_seconds, stop)
        self.leases = _Leases()
        self.facts: dict[tuple[Any, ...], queue.ConfigFacts] = {}
        self.loaded_framework_id: uuid.UUID | None = None
        self.hardware_config_id: uuid.UUID | None = None
        self.spool_dir = options.spool_dir or spool.default_directory()
        self.finished: list[tuple[queue.Claim, Measurement]] = []  # measured, not yet recorded
        self.spooled: list[uuid.UUID] = []  # configs whose result went to the spool: their claims stay held
        self.first_finished_at = 0.0
        self.running: uuid.UUID | None = None  # the config whose run is in flight
        self.run_deadline = math.inf
        self.drain_wait_since: float | None = None  # when only other workers' live claims were left
        self.between_batches = options.between_batches

    @property
    def worker_id(self) -> str:
        return self.summary.worker_id

    def should_stop(self) -> bool:
        """What the runner polls: stop the run in flight on a stop request, when its config was taken from this
        worker (cancelled, lease lost) or once it ran for ``max_run_seconds``."""
        return (
            self.stop.is_set()
            or (self.running is not None and self.running in self.leases.taken)
            or time.monotonic() > self.run_deadline
        )

    def record_spool(self) -> None:
        report = self.db.call(lambda: spool.record(self.engine, self.spool_dir))
        self.summary.recorded_from_spool += report.recorded
        self.summary.unlinked_from_spool += report.unlinked
        self.summary.rejected_from_spool += report.rejected

    def refuse_a_reused_id(self) -> None:
        """A worker id that already holds live claims belongs to another process (alive, or dead less than a lease
        ago): this one refuses to start rather than heartbeat, run or release what it did not claim."""
        held = self.db.call(lambda: queue.live_claims(self.db.connection(), self.worker_id))
        if held:
            raise WorkerIdInUse(
                f"--worker-id {self.worker_id!r} already holds {held} running configs under a live lease (another "
                "worker with this id is running, or died less than a lease ago): give another id, or wait for "
                "those leases to expire"
            )

    def run(self, runner: Any) -> None:
        processed = 0
        while not self.stop.is_set():
            wanted = self.options.claim_batch
            if self.options.max_configs is not None:
                wanted = min(wanted, self.options.max_configs - processed)
                if wanted <= 0:
                    self.summary.reached_max = True
                    return
            batch = self._record_and_claim(wanted)
            if not batch:
                if not self._wait_for_work():
                    return
                continue
            self.drain_wait_since = None
            self.leases.add([held.id for held in batch])
            for position, held in enumerate(batch):
                if self.stop.is_set() or not self._run_one(runner, held):
                    self.record_finished()
                    self._release(batch[position:])
                    return
                processed += 1
            if self.between_batches is not None and not self.stop.is_set():
                self.record_finished()  # the planner sees this batch's results
                self.db.call(self.between_batches)
        # the last batch's results (still in ``finished``) are recorded by run_worker

    def _record_and_claim(self, limit: int) -> list[queue.Claim]:
        """Claim the next batch; the results of the last one, if any are still unrecorded, go in the same statement
        (``queue.complete_and_claim``: one round trip and one commit). Like ``record_finished``, if the database stays
        away the results stay in ``finished`` and DatabaseUnavailable propagates."""
        if not self.finished:
            return self.db.call(self._claim(limit))
        finished = list(self.finished)
        recorded, batch = self.db.call(
            lambda: queue.complete_and_claim(self.db.connection(), self.worker_id, finished, self._request(limit))
        )
        self._recorded(finished, recorded)
        return batch

    def _wait_for_work(self) -> bool:
        """After an empty claim: False when this worker is done (drained, or the drain wait ran out); else wait a
        moment and True. While other workers hold live claims of its filters, it waits for them to finish or for
        their leases to expire (the next claim then rescues those configs), at most ``drain_wait_seconds``."""
        left = self.db.call(
            lambda: queue.outstanding(
                self.db.connection(),
                hardware_config_id=self.hardware_config_id,
                model_version_id=self.options.model_version_id,
            )
        )
        if left.drained:
            return False
        if left.due:  # locked by a concurrent claim (about to be running), or expired and rescued by the next claim
            self.stop.wait(random.uniform(0.02, 0.1))
            return True
        if left.waiting:  # retries in backoff: wait until the first is due
            self.stop.wait(min(max(left.next_due_seconds or 0.0, 0.01), MAX_IDLE_WAIT_SECONDS))
            return True
        now = time.monotonic()
        if self.drain_wait_since is None:
            self.drain_wait_since = now
        bound = self.options.drain_wait_seconds
        if now - self.drain_wait_since >= (self.options.lease_seconds if bound is None else bound):
            self.summary.not_drained = left.running
            return False
        self.stop.wait(min(max(left.next_expiry_seconds or 0.0, 0.01), MAX_IDLE_WAIT_SECONDS))
        return True

    def _request(self, limit: int) -> queue.ClaimRequest:
        return queue.ClaimRequest(
            limit=limit,
            lease_seconds=self.options.lease_seconds,
            hardware_config_id=self.hardware_config_id,
            model_version_id=self.options.model_version_id,
            preferred_framework_id=self.loaded_framework_id,
            max_preemptions=self.options.max_preemptions,
        )

    def _claim(self, limit: int) -> Callable[[], list[queue.Claim]]:
        return lambda: queue.claim(self.db.connection(), self.worker_id, **dataclasses.asdict(self._request(limit)))

    def _spec(self, held: queue.Claim) -> RunSpec:
        key = _facts_key(held)
        facts = self.facts.get(key)
        if facts is None:  # on the worker's own connection: one round trip, no pool checkout or pre-ping
            facts = self.facts[key] = queue.load_config_facts(self.db.connection(), *key)
        return _spec_from_facts(facts, held)

    def _run_one(self, runner: Any, held: queue.Claim) -> bool:
        """Run one claimed config and keep or record the outcome; False when stopped (the claim is still held)."""
        if held.id in self.leases.taken:  # cancelled (or lost) while it waited in the batch: never started
            self._taken_from_us([held])
            return True
        try:
            spec = self.db.call(lambda: self._spec(held))
            if self.loaded_framework_id not in (None, held.framework_id):
                self.summary.framework_switches += 1
            self.loaded_framework_id = held.framework_id
            deadline = time.monotonic() + self.options.max_run_seconds
            self.running, self.run_deadline = held.id, deadline
            try:
                measurement = runner.run(spec)
            finally:
                self.running, self.run_deadline = None, math.inf
        except RunInterrupted:
            if held.id in self.leases.taken and not self.stop.is_set():
                self._taken_from_us([held])
                return True
            if self.stop.is_set() or time.monotonic() <= deadline:
                return False  # asked to stop (or the runner stopped by itself): the claim goes back, nothing counted
            self.summary.timed_out += 1
            self._record_failure(
                held,
                f"ran longer than the maximum run time of {self.options.max_run_seconds:g} s: stopped by worker "
                f"{self.worker_id}",
            )
            return True
        except (RunnerError, LookupError, ValueError) as error:
            self._record_failure(held, f"{type(error).__name__}: {error}")
            return True
        except Exception as error:  # a runner bug must not kill the worker: the config fails with the reason
            log.exception("runner crashed on config %s", held.id)
            self._record_failure(held, f"runner crashed: {type(error).__name__}: {error}")
            return True
        if not self.finished:
            self.first_finished_at = time.monotonic()
        self.finished.append((held, measurement))
        if time.monotonic() - self.first_finished_at >= RECORD_EVERY_SECONDS:
            self.record_finished()
        return True

    def record_finished(self) -> None:
        """Record the measured results in one statement. If the database stays away past the retry budget they stay
        in ``finished`` (``run_worker`` spools them) and DatabaseUnavailable propagates."""
        if not self.finished:
            return
        finished = list(self.finished)
        recorded = self.db.call(lambda: queue.complete_batch(self.db.connection(), self.worker_id, finished))
        self._recorded(finished, recorded)

    def _recorded(self, finished: list[tuple[queue.Claim, Measurement]], recorded: set[uuid.UUID]) -> None:
        """Account for a recording of ``finished``: those missing from ``recorded`` had their claims taken."""
        self.finished.clear()
        self.summary.completed += len(recorded)
        self.leases.drop([held.id for held, _ in finished])
        lost = [held for held, _ in finished if held.id not in recorded]
        if lost:
            self._taken_from_us(lost)

    def spool_finished(self) -> None:
        """Write the results the database would not take to the local spool (recorded by a later worker)."""
        for held, measurement in self.finished:
            path = spool.write(self.spool_dir, self.worker_id, held, measurement)
            self.spooled.append(held.id)
            log.warning("database unreachable: result of config %s spooled to %s", held.id, path)
        self.summary.spooled_results += len(self.finished)
        self.finished.clear()

    def _taken_from_us(self, configs: list[queue.Claim]) -> None:
        """Claims this worker no longer holds: cancelled ones are counted as such, the others as lost claims."""
        ids = [held.id for held in configs]
        self.leases.drop(ids)
        statuses = self.db.call(lambda: queue.statuses(self.db.connection(), ids))
        cancelled = sum(statuses.get(config_id) == "cancelled" for config_id in ids)
        self.summary.cancelled += cancelled
        self.summary.lost_claims += len(ids) - cancelled
        if len(ids) > cancelled:
            log.warning("%d claims were taken from this worker (lease expired); their results are discarded", len(ids))

    def _record_failure(self, held: queue.Claim, message: str) -> None:
        outcome = self.db.call(
            lambda: queue.fail(
                self.db.connection(),
                held,
                self.worker_id,
                message,
                max_attempts=self.options.max_attempts,
                retry_base_seconds=self.options.retry_base_seconds,
                retry_max_seconds=self.options.retry_max_seconds,
            )
        )
        self.leases.drop([held.id])
        if outcome is None:
            self._taken_from_us([held])
            return
        self.summary.failed_attempts += 1
        if outcome.status == "failed":
            self.summary.failed_for_good += 1

    def _release(self, unfinished: list[queue.Claim]) -> None:
        if unfinished:
            ids = [held.id for held in unfinished]
            self.summary.released += self.db.call(lambda: queue.release(self.db.connection(), self.worker_id, ids))
            self.leases.drop(ids)


RunnerFactory = Callable[[Callable[[], bool]], Any]


def run_worker(engine: Engine, options: WorkerOptions, *, runner_factory: RunnerFactory | None = None) -> WorkerSummary:
    """Work the queue until it is drained for this worker, ``max_configs`` are done, or ``stop_event`` is set.

    Results spooled by an earlier worker with the same platform home are recorded first. ``runner_factory`` (given
    the ``should_stop`` callable) replaces the runner named in the options, for runners defined elsewhere.
    Never raises for database trouble or runner failures: the summary says what happened (``exit_code``, ``error``).
    Bad options (unknown hardware or runner) raise LookupError/ValueError before anything is claimed.
    """
    started = time.monotonic()
    stop = options.stop_event or threading.Event()
    summary = WorkerSummary(worker_id=options.worker_id or default_worker_id())
    worker = _Worker(engine, options, summary, stop)
    if options.hardware is not None:
        worker.hardware_config_id = worker.db.call(lambda: _resolve_hardware_id(engine, options.hardware))
    if worker.between_batches is None and options.model_version_id is not None and options.replan_seconds > 0:
        worker.between_batches = worker.db.call(lambda: _replanner(engine, options))
    if runner_factory is not None:
        runner = runner_factory(worker.should_stop)
    else:
        runner = get_runner(options.runner, should_stop=worker.should_stop, **options.runner_options)
    heartbeat = _Heartbeat(
        engine, summary.worker_id, worker.leases, options.lease_seconds, options.heartbeat_interval()
    )
    try:
        worker.record_spool()  # first: its results complete claims that may still hold this worker id
        worker.refuse_a_reused_id()
        heartbeat.start()
        worker.run(runner)
    except DatabaseUnavailable as error:
        summary.error = str(error)
    finally:
        try:
            worker.record_finished()  # results measured before an error elsewhere (a no-op after a clean run)
        except (DatabaseUnavailable, DBAPIError) as error:
            summary.error = summary.error or str(error)
        if worker.finished:
            worker.spool_finished()
        heartbeat.done.set()
        if heartbeat.is_alive():
            heartbeat.join()
        try:
            # What this process still holds (a stop, or an error mid-batch) goes back now rather than after its
            # lease; only its own claims, never another process's that share the id.
            held = list(worker.leases.held)
            summary.released += worker.db.call(
                lambda: queue.release(engine, summary.worker_id, held, keep=worker.spooled), retry_seconds=10
            )
        except (DatabaseUnavailable, DBAPIError) as error:
            log.warning("could not release claims (their leases will expire): %s", error)
        worker.db.close()
        runner.close()
        summary.stopped = stop.is_set()
        summary.elapsed_seconds = time.monotonic() - started
    return summary


def _replanner(engine: Engine, options: WorkerOptions) -> Callable[[], object] | None:
    """The adaptive planner between claims (imported only when wanted: it pulls in pandas)."""
    from benchmark_platform import adaptive

    assert options.model_version_id is not None
    return adaptive.replanner_for(engine, options.model_version_id, options.replan_seconds)


def option_field(name: str) -> Any:
    """A ``WorkerOptions`` field (default and description): the one declaration the worker command's flags and the
    Dagster ``benchmark_runner`` resource read theirs from."""
    return WorkerOptions.model_fields[name]


def _resolve_hardware_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as connection:
        return queue.resolve_hardware(connection, name)
