"""Drain means drained: a worker says "queue drained" only when nothing of its filter is pending, due for a retry or
running under anyone's lease; it waits for a dead worker's live leases and rescues them, within a bound. A reused
--worker-id that holds live claims is refused, and a worker never heartbeats or releases claims it did not make."""

from __future__ import annotations

import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from benchmark_platform import queue
from benchmark_platform.cli import main
from benchmark_platform.worker import EXIT_NOT_DRAINED, WorkerIdInUse, WorkerOptions, run_worker
from benchmark_platform_tests.factories import DEFAULT_VERSION_KEY, seed_with_model, status_counts


@pytest.fixture
def version_id(engine: Engine) -> uuid.UUID:
    version_id = seed_with_model(engine)
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    return version_id


def _leases(engine: Engine, worker_id: str) -> dict[uuid.UUID, object]:
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT id, lease_expires_at FROM benchmark_configs WHERE claimed_by = :w AND status = 'running'"),
            {"w": worker_id},
        ).all()
    return {row.id: row.lease_expires_at for row in rows}


def test_a_worker_waits_for_a_dead_workers_live_leases_and_rescues_them(engine, version_id) -> None:
    dead = queue.claim(engine, "dead", limit=3, lease_seconds=2)  # killed with -9: its leases run out in 2 s
    summary = run_worker(
        engine, WorkerOptions(model_version_id=version_id, claim_batch=50, replan_seconds=0, drain_wait_seconds=30)
    )
    assert summary.exit_code == 0 and "queue drained" in summary.line(), summary.line()
    counts = status_counts(engine)
    assert counts == {"completed": counts["completed"]}, "nothing is left running or pending behind the drain"
    assert summary.completed == counts["completed"] and summary.not_drained == 0
    assert not _leases(engine, "dead") and len(dead) == 3


def test_the_drain_wait_is_bounded_and_says_so_with_its_own_exit_status(engine, version_id) -> None:
    queue.claim(engine, "alive-elsewhere", limit=2, lease_seconds=600)
    summary = run_worker(
        engine, WorkerOptions(model_version_id=version_id, claim_batch=50, replan_seconds=0, drain_wait_seconds=0.5)
    )
    assert (summary.exit_code, summary.not_drained) == (EXIT_NOT_DRAINED, 2)
    assert "not drained: 2 configs still running under other workers' live leases" in summary.line()
    assert status_counts(engine)["running"] == 2 and "pending" not in status_counts(engine)


def test_a_reused_worker_id_holding_live_claims_is_refused_and_touches_nothing(engine, version_id) -> None:
    queue.claim(engine, "w-reused", limit=4, lease_seconds=600)
    before = _leases(engine, "w-reused")
    with pytest.raises(WorkerIdInUse, match="w-reused.*4 running configs"):
        run_worker(engine, WorkerOptions(model_version_id=version_id, worker_id="w-reused", heartbeat_seconds=0.05))
    assert _leases(engine, "w-reused") == before, "not heartbeated, not released"
    result = CliRunner().invoke(main, ["worker", "--model-version", DEFAULT_VERSION_KEY, "--worker-id", "w-reused"])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()[-1:]
    assert line.startswith("error: --worker-id 'w-reused' already holds 4 running configs")
    assert _leases(engine, "w-reused") == before


def test_a_reused_worker_id_whose_claims_expired_starts_and_rescues_them(engine, version_id) -> None:
    queue.claim(engine, "w-again", limit=2, lease_seconds=600)
    with engine.begin() as connection:
        connection.execute(text("UPDATE benchmark_configs SET lease_expires_at = now() - interval '1 second'"))
    summary = run_worker(
        engine, WorkerOptions(model_version_id=version_id, worker_id="w-again", claim_batch=50, replan_seconds=0)
    )
    assert summary.exit_code == 0 and set(status_counts(engine)) == {"completed"}, summary.line()


def test_heartbeat_and_release_touch_only_the_claims_listed(engine, version_id) -> None:
    mine, other = queue.claim(engine, "same-id", limit=2, lease_seconds=60)
    before = _leases(engine, "same-id")
    assert queue.heartbeat(engine, "same-id", lease_seconds=600, config_ids=[mine.id]) == {mine.id}
    after = _leases(engine, "same-id")
    assert after[mine.id] > before[mine.id] and after[other.id] == before[other.id]
    assert queue.release(engine, "same-id", [mine.id]) == 1
    assert set(_leases(engine, "same-id")) == {other.id}
