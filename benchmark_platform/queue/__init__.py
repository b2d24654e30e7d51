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

The package owns every statement on ``benchmark_configs`` and ``benchmark_results`` except the analytics reads of
``ranking/store.py`` and the export of ``export-results``; each statement is a named function with its guarantees in
its docstring:

- ``common``: the defaults above and ``_transaction`` (one transaction per call, on an Engine or a worker's
  connection); the version key over aliases ``m`` and ``v``.
- ``facts``: the one loader of ``domain``'s facts from the database (``load_matrix_inputs`` for the matrix,
  ``load_config_facts`` for a claimed config's run, ``load_model_version``) and the catalog lookups by name
  (``resolve_hardware``, ``resolve_framework``).
- ``populate``: ``populate_matrix`` (COPY + ``INSERT … ON CONFLICT DO NOTHING``).
- ``claims``: ``claim`` (with ``rescue_sql``), ``outstanding``, ``live_claims``, ``heartbeat``,
  ``complete_batch``/``complete``, ``complete_and_claim`` (a batch's results and the next claim in one statement),
  ``record_unlinked``, ``fail``, ``release``, ``reap``, ``statuses``, ``cancel``.
- ``results``: ``record_imported`` (a result no claim produced), ``record_public_results`` (public measurements,
  idempotent by import key).
- ``progress``: ``progress``, ``result_counts``, ``failed_configs``.
- ``planning``: the adaptive planner's reads and writes (``load_plan_rows``, ``apply_plan``, ``requeue_skipped``,
  ``is_exhaustive``, ``pruning_summary``, ``pruning_by_use_case``, ...).
- ``invariants``: queries returning the rows that break an invariant (the asset checks run them).

Importers use ``from benchmark_platform import queue`` and ``queue.NAME``: every public name is re-exported here.
"""

from benchmark_platform.orm import CONFIG_STATUSES
from benchmark_platform.queue import invariants
from benchmark_platform.queue.claims import (
    DURABLE_COMMIT,
    RESCUE_PER_CLAIM,
    CancelReport,
    Claim,
    ClaimRequest,
    ClaimToken,
    FailOutcome,
    Outstanding,
    ReapReport,
    cancel,
    claim,
    claim_sql,
    complete,
    complete_and_claim,
    complete_batch,
    fail,
    heartbeat,
    live_claims,
    outstanding,
    reap,
    record_unlinked,
    release,
    rescue_sql,
    statuses,
)
from benchmark_platform.queue.common import (
    DEFAULT_LEASE_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_PREEMPTIONS,
    DEFAULT_MAX_RUN_SECONDS,
    DEFAULT_RETRY_BASE_SECONDS,
    DEFAULT_RETRY_MAX_SECONDS,
    DEFAULT_THROUGHPUT_WINDOW_MINUTES,
    ERROR_MESSAGE_LIMIT,
    VERSION_KEY,
)
from benchmark_platform.queue.facts import (
    ConfigFacts,
    MatrixInputs,
    load_config_facts,
    load_matrix_inputs,
    load_model_version,
    resolve_framework,
    resolve_hardware,
)
from benchmark_platform.queue.planning import (
    PLAN_LOCK_NAMESPACE,
    PlanApplied,
    PlanRow,
    PruningSummary,
    apply_plan,
    configs_without_prediction,
    exempt_from_pruning,
    is_exhaustive,
    load_plan_rows,
    pruning_by_use_case,
    pruning_summary,
    requeue_skipped,
    residual_rows,
    skipped_for_workload,
    store_predictions,
    try_lock_plan,
)
from benchmark_platform.queue.populate import (
    PopulateReport,
    populate_matrix,
)
from benchmark_platform.queue.progress import (
    FINISHED_STATUSES,
    Progress,
    ResultCounts,
    failed_configs,
    progress,
    result_counts,
)
from benchmark_platform.queue.results import (
    record_imported,
    record_public_results,
)

__all__ = [
    "CONFIG_STATUSES",
    "CancelReport",
    "ConfigFacts",
    "Claim",
    "ClaimRequest",
    "ClaimToken",
    "DEFAULT_LEASE_SECONDS",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_PREEMPTIONS",
    "DEFAULT_MAX_RUN_SECONDS",
    "DEFAULT_RETRY_BASE_SECONDS",
    "DEFAULT_RETRY_MAX_SECONDS",
    "DEFAULT_THROUGHPUT_WINDOW_MINUTES",
    "DURABLE_COMMIT",
    "ERROR_MESSAGE_LIMIT",
    "FINISHED_STATUSES",
    "FailOutcome",
    "MatrixInputs",
    "Outstanding",
    "PLAN_LOCK_NAMESPACE",
    "PlanApplied",
    "PlanRow",
    "PopulateReport",
    "Progress",
    "PruningSummary",
    "RESCUE_PER_CLAIM",
    "ReapReport",
    "ResultCounts",
    "VERSION_KEY",
    "apply_plan",
    "cancel",
    "claim",
    "claim_sql",
    "complete",
    "complete_and_claim",
    "complete_batch",
    "configs_without_prediction",
    "exempt_from_pruning",
    "is_exhaustive",
    "fail",
    "failed_configs",
    "heartbeat",
    "invariants",
    "load_config_facts",
    "load_matrix_inputs",
    "load_model_version",
    "load_plan_rows",
    "live_claims",
    "outstanding",
    "populate_matrix",
    "progress",
    "pruning_by_use_case",
    "pruning_summary",
    "reap",
    "record_imported",
    "record_public_results",
    "record_unlinked",
    "release",
    "requeue_skipped",
    "resolve_framework",
    "resolve_hardware",
    "rescue_sql",
    "residual_rows",
    "result_counts",
    "skipped_for_workload",
    "statuses",
    "store_predictions",
    "try_lock_plan",
]
