"""Where the queue stands: counts by status, hardware, version and tensor-parallel degree, completion and an ETA."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, text

from benchmark_platform.queue.common import DEFAULT_THROUGHPUT_WINDOW_MINUTES, VERSION_KEY, _transaction

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


@dataclass(frozen=True)
class ResultCounts:
    """A version's results: all, the simulated ones, and those recorded since a run started."""

    total: int
    simulated: int
    recorded_since: int


def result_counts(bind: Engine | Connection, model_version_id: uuid.UUID, *, since_epoch: float) -> ResultCounts:
    """How many results the version has, how many are simulated (``runner = 'simulated'``) and how many were
    recorded at or after ``since_epoch`` (seconds since the epoch, on the database clock's time zone). Read-only."""
    with _transaction(bind) as connection:
        row = connection.execute(
            text(
                "SELECT count(*) AS total, count(*) FILTER (WHERE runner = 'simulated') AS simulated,"
                " count(*) FILTER (WHERE created_at >= to_timestamp(:started)) AS this_run"
                " FROM benchmark_results WHERE model_version_id = :v"
            ),
            {"v": model_version_id, "started": since_epoch},
        ).one()
    return ResultCounts(total=row.total, simulated=row.simulated, recorded_since=row.this_run)


def failed_configs(bind: Engine | Connection, model_version_id: uuid.UUID, *, limit: int) -> list[str]:
    """The version's configs that failed for good, each named ``hardware / framework / tpN / workload / bsN / seqN:
    error``, in name order, at most ``limit``. Read-only."""
    with _transaction(bind) as connection:
        return list(
            connection.execute(
                text(
                    "SELECT h.name || ' / ' || f.name || ' / tp' || c.tensor_parallel || ' / ' || c.workload_type"
                    " || ' / bs' || c.batch_size"
                    " || ' / seq' || c.sequence_length || ': ' || coalesce(c.error_message, '') AS config"
                    " FROM benchmark_configs c JOIN hardware_configs h ON h.id = c.hardware_config_id"
                    " JOIN inference_frameworks f ON f.id = c.framework_id"
                    " WHERE c.model_version_id = :v AND c.status = 'failed' ORDER BY 1 LIMIT :n"
                ),
                {"v": model_version_id, "n": limit},
            )
            .scalars()
            .all()
        )
