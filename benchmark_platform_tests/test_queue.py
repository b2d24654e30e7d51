"""The queue's SQL on real PostgreSQL: populating the matrix, claiming, leases, fencing, retries, reaping, progress."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text

from benchmark_platform import matrix, queue
from benchmark_platform.catalogs import load_use_cases
from benchmark_platform.cli import main
from benchmark_platform.runners import Measurement
from benchmark_platform.worker import build_run_spec
from benchmark_platform_tests.factories import framework_id, hardware_id, seed_with_model, status_counts

SMALL_POOLS = ("aws-l4-x1", "gcp-l4-x1")


def _measurement(**overrides) -> Measurement:
    values = dict(
        ttft_p50_ms=80.0, ttft_p90_ms=95.0, ttft_p99_ms=120.0, tpot_p50_ms=12.0, tpot_p90_ms=14.0, tpot_p99_ms=18.0,
        throughput_tokens_sec=900.0, rps_sustained=3.5, gpu_utilization_pct=71.0, memory_used_gb=9.5,
        detailed_metrics={"seed": 7, "load": {"mode": "closed-loop"}}, runner="simulated",
    )  # fmt: skip
    values.update(overrides)
    return Measurement(**values)


@pytest.fixture
def version_id(engine: Engine) -> uuid.UUID:
    return seed_with_model(engine)


@pytest.fixture
def small_queue(engine: Engine, version_id: uuid.UUID) -> queue.PopulateReport:
    """Two single-L4 pools, vLLM and SGLang only: a few hundred configs."""
    return queue.populate_matrix(engine, version_id, hardware=SMALL_POOLS, frameworks=("vllm", "sglang"))


def _config(engine: Engine, config_id: uuid.UUID):
    with engine.connect() as connection:
        return connection.execute(text("SELECT * FROM benchmark_configs WHERE id = :id"), {"id": config_id}).one()


def _results(engine: Engine, config_id: uuid.UUID) -> list:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM benchmark_results WHERE config_id = :id"), {"id": config_id}
        ).all()


def _put_first(engine: Engine, config_id: uuid.UUID) -> None:
    """Give one config the lowest priority value, so that the next claim takes it (priorities tie otherwise)."""
    with engine.begin() as connection:
        connection.execute(text("UPDATE benchmark_configs SET priority = 1 WHERE id = :id"), {"id": config_id})


def _expire_leases(engine: Engine, worker_id: str | None = None) -> None:
    """Move leases into the past, as if the worker had stopped heartbeating long ago."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE benchmark_configs SET lease_expires_at = now() - interval '1 second' "
                "WHERE status = 'running' AND (CAST(:w AS text) IS NULL OR claimed_by = :w)"
            ),
            {"w": worker_id},
        )


# ------------------------------------------------------------------------------------------------ populate


def test_populate_writes_the_matrix_and_reports_why_configs_are_missing(engine, version_id):
    report = queue.populate_matrix(engine, version_id)
    assert report.created > 20_000 and report.existing == 0
    assert report.version_key == "llama-3.1-8b@int4-awq"
    assert report.excluded[matrix.NOT_BENCHMARKED_BY_DEFAULT] > 0  # the emulator
    assert report.excluded[matrix.VENDOR_UNSUPPORTED] > 0  # LMDeploy on MI300X
    assert "azure-mi300x-x8/lmdeploy" not in report.by_hardware_framework
    assert sum(report.by_hardware_framework.values()) == report.created
    assert status_counts(engine) == {"pending": report.created}
    with engine.connect() as connection:
        priorities = dict(
            connection.execute(
                text(
                    "SELECT workload_type = 'chatbot' AND batch_size = 1, array_agg(DISTINCT priority) "
                    "FROM benchmark_configs GROUP BY 1"
                )
            ).all()
        )
    assert priorities[True] == [100]
    assert min(priorities[False]) >= 200 and max(priorities[False]) <= 1000


def test_populate_twice_adds_nothing_and_changes_no_status(engine, version_id, small_queue):
    held = queue.claim(engine, "w1", limit=3)
    queue.complete(engine, held[0], "w1", _measurement())
    before = status_counts(engine)
    again = queue.populate_matrix(engine, version_id, hardware=SMALL_POOLS, frameworks=("vllm", "sglang"))
    assert again.created == 0 and again.existing == small_queue.created
    assert status_counts(engine) == before == {"pending": small_queue.created - 3, "running": 2, "completed": 1}


def test_populate_can_include_the_emulator_when_asked(engine, version_id):
    report = queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["emulator"])
    assert set(report.by_hardware_framework) == {"aws-l4-x1/emulator"}
    # each use case's concurrency sweep × its representative sequence lengths, at TP 1 (the node's only degree)
    cells = sum(len(u.characteristics.concurrency) * len(u.characteristics.sequence_lengths) for u in load_use_cases())
    assert report.created == cells and report.by_tensor_parallel == {1: cells}
    assert report.excluded == {}  # one full-length sequence fits next to 4 GB of weights; concurrency excludes nothing


def test_populate_with_an_unknown_name_writes_nothing(engine, version_id):
    with pytest.raises(LookupError, match="unknown hardware no-such-gpu"):
        queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1", "no-such-gpu"])
    assert status_counts(engine) == {}


# ------------------------------------------------------------------------------------------------ claim


def test_claim_takes_the_lowest_priority_first_and_marks_it_running(engine, small_queue):
    held = queue.claim(engine, "w1", limit=5, lease_seconds=300)
    assert len(held) == 5
    assert [c.priority for c in held] == sorted(c.priority for c in held)
    assert held[0].priority == 100
    with engine.connect() as connection:
        lowest_left = connection.execute(
            text("SELECT min(priority) FROM benchmark_configs WHERE status = 'pending'")
        ).scalar()
        lease_left = connection.execute(
            text("SELECT extract(epoch FROM lease_expires_at - now()) FROM benchmark_configs WHERE id = :id"),
            {"id": held[0].id},
        ).scalar()
    assert lowest_left >= held[-1].priority
    assert 290 < lease_left <= 300
    row = _config(engine, held[0].id)
    assert (row.status, row.claimed_by, row.started_at) == ("running", "w1", held[0].started_at)


def test_concurrent_claims_never_share_a_config(engine, small_queue):
    """The first claim's transaction stays open (its rows locked, its update not yet visible) while a second worker
    claims: SKIP LOCKED passes over the locked rows at once instead of waiting for them or taking them too."""
    sql = queue.claim_sql(hardware_config_id=None, model_version_id=None, preferred_framework=False)
    params = {"limit": 50, "worker_id": "w1", "lease_seconds": 60.0, "max_preemptions": 5, "rescue_limit": 100}
    second: list[queue.Claim] = []
    with engine.connect() as holding:
        first = holding.execute(text(sql), params).all()
        claimer = threading.Thread(target=lambda: second.extend(queue.claim(engine, "w2", limit=50)))
        claimer.start()
        claimer.join(timeout=20)
        assert not claimer.is_alive(), "the second claim waited for the first transaction's locks"
        holding.commit()
    assert len(first) == len(second) == 50
    assert not {row.id for row in first} & {c.id for c in second}
    assert status_counts(engine)["running"] == 100


def test_claim_filters_by_hardware_pool_and_model_version(engine, version_id, small_queue):
    pool = hardware_id(engine, "gcp-l4-x1")
    held = queue.claim(engine, "w1", limit=1000, hardware_config_id=pool, model_version_id=version_id)
    assert len(held) == small_queue.created // 2
    assert {c.hardware_config_id for c in held} == {pool}
    assert queue.claim(engine, "w1", limit=10, hardware_config_id=pool) == []
    assert queue.claim(engine, "w1", limit=10, model_version_id=uuid.uuid4()) == []


def test_claim_prefers_the_framework_already_loaded(engine, small_queue):
    sglang = framework_id(engine, "sglang")
    held = queue.claim(engine, "w1", limit=20, preferred_framework_id=sglang)
    assert {c.framework_id for c in held} == {sglang}
    assert [c.priority for c in held] == sorted(c.priority for c in held)
    # when the preferred framework runs out, the others fill the batch, preferred ones first
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE benchmark_configs SET status = 'completed' WHERE framework_id = :f AND status = 'pending' "
                "AND id NOT IN (SELECT id FROM benchmark_configs WHERE framework_id = :f AND status = 'pending' "
                "LIMIT 3)"
            ),
            {"f": sglang},
        )
    mixed = queue.claim(engine, "w2", limit=10, preferred_framework_id=sglang)
    assert [c.framework_id == sglang for c in mixed] == [True] * 3 + [False] * 7


def test_outstanding_counts_what_is_left_locked_or_not(engine, small_queue):
    queue.claim(engine, "w1", limit=7)
    left = queue.outstanding(engine)
    assert (left.due, left.waiting, left.next_due_seconds, left.running) == (small_queue.created - 7, 0, None, 7)
    assert 0 < left.next_expiry_seconds <= queue.DEFAULT_LEASE_SECONDS and not left.drained


# ------------------------------------------------------------------------------------------------ heartbeat, complete


def test_heartbeat_extends_only_unexpired_leases_of_the_worker(engine, small_queue):
    queue.claim(engine, "w1", limit=4, lease_seconds=5)
    queue.claim(engine, "w2", limit=2, lease_seconds=5)
    assert len(queue.heartbeat(engine, "w1", lease_seconds=600)) == 4
    with engine.connect() as connection:
        leases = dict(
            connection.execute(
                text(
                    "SELECT claimed_by, min(extract(epoch FROM lease_expires_at - now())) FROM benchmark_configs "
                    "WHERE status = 'running' GROUP BY claimed_by"
                )
            ).all()
        )
    assert leases["w1"] > 590 and leases["w2"] <= 5
    _expire_leases(engine, "w2")
    assert queue.heartbeat(engine, "w2") == set()


def test_complete_records_one_result_and_marks_the_config_completed(engine, small_queue):
    held = queue.claim(engine, "w1", limit=1)[0]
    assert queue.complete(engine, held, "w1", _measurement(accuracy_score=0.69))
    row = _config(engine, held.id)
    assert (row.status, row.lease_expires_at, row.claimed_by) == ("completed", None, "w1")
    assert row.completed_at is not None
    [result] = _results(engine, held.id)
    assert result.runner == "simulated"
    assert (result.ttft_p90_ms, result.throughput_tokens_sec, result.accuracy_score) == (95.0, 900.0, 0.69)
    assert result.detailed_metrics == {"seed": 7, "load": {"mode": "closed-loop"}}
    assert (result.model_version_id, result.hardware_config_id, result.framework_id) == (
        held.model_version_id,
        held.hardware_config_id,
        held.framework_id,
    )
    assert (result.workload_type, result.batch_size, result.sequence_length) == (
        held.workload_type,
        held.batch_size,
        held.sequence_length,
    )
    # a retry after a lost acknowledgement is recognised, and still only one result exists
    assert queue.complete(engine, held, "w1", _measurement())
    assert len(_results(engine, held.id)) == 1


def test_a_lost_claim_cannot_complete(engine, small_queue):
    held = queue.claim(engine, "w1", limit=1, lease_seconds=600)[0]
    assert not queue.complete(engine, held, "someone-else", _measurement())  # not the holder
    _expire_leases(engine)
    assert not queue.complete(engine, held, "w1", _measurement())  # lease expired, not yet reaped
    assert queue.reap(engine) == queue.ReapReport(returned_to_pending=1, failed=0)
    _put_first(engine, held.id)
    again = queue.claim(engine, "w1", limit=1)[0]  # the same worker claims it again: a new token
    assert again.id == held.id and again.started_at != held.started_at
    assert not queue.complete(engine, held, "w1", _measurement())  # the old claim's token is stale
    assert _results(engine, held.id) == []
    assert queue.complete(engine, again, "w1", _measurement())
    assert len(_results(engine, held.id)) == 1


def test_the_unique_index_refuses_a_second_result_for_a_config(engine, small_queue):
    held = queue.claim(engine, "w1", limit=1)[0]
    queue.complete(engine, held, "w1", _measurement())
    with engine.begin() as connection:  # force the config back to running under a fresh claim
        connection.execute(
            text(
                "UPDATE benchmark_configs SET status = 'running', started_at = now(), "
                "lease_expires_at = now() + interval '1 minute' WHERE id = :id"
            ),
            {"id": held.id},
        )
        token = connection.execute(text("SELECT started_at FROM benchmark_configs WHERE id = :id"), {"id": held.id})
        fresh = queue.Claim(**{**held.__dict__, "started_at": token.scalar_one()})
    with pytest.raises(Exception, match="uq_benchmark_results_config_id"):
        queue.complete(engine, fresh, "w1", _measurement())
    assert _config(engine, held.id).status == "running"  # the whole statement rolled back
    assert len(_results(engine, held.id)) == 1


# ------------------------------------------------------------------------------------------------ fail, release, reap


def test_fail_retries_until_max_attempts_then_fails_for_good(engine, small_queue):
    no_backoff = {"max_attempts": 3, "retry_base_seconds": 0}
    first = queue.claim(engine, "w1", limit=1)[0]
    _put_first(engine, first.id)
    assert queue.fail(engine, first, "w1", "boom 1", **no_backoff) == queue.FailOutcome("pending", 1)
    row = _config(engine, first.id)
    assert (row.status, row.claimed_by, row.error_message, row.retry_count) == ("pending", None, "boom 1", 1)
    second = queue.claim(engine, "w2", limit=1)[0]
    assert second.id == first.id
    assert queue.fail(engine, second, "w2", "boom 2", **no_backoff) == queue.FailOutcome("pending", 2)
    third = queue.claim(engine, "w3", limit=1)[0]
    assert queue.fail(engine, third, "w3", "x" * 5000, **no_backoff) == queue.FailOutcome("failed", 3)
    row = _config(engine, first.id)
    assert (row.status, row.retry_count, len(row.error_message)) == ("failed", 3, 1000)
    assert row.completed_at is not None
    assert queue.claim(engine, "w4", limit=1)[0].id != first.id  # failed for good: never claimed again


def test_fail_is_fenced(engine, small_queue):
    held = queue.claim(engine, "w1", limit=1)[0]
    assert queue.fail(engine, held, "intruder", "nope") is None
    _expire_leases(engine)
    assert queue.fail(engine, held, "w1", "too late") is None
    assert _config(engine, held.id).retry_count == 0


def test_release_returns_claims_without_counting_an_attempt(engine, small_queue):
    held = queue.claim(engine, "w1", limit=6)
    queue.claim(engine, "w2", limit=2)
    assert queue.release(engine, "w1", [held[0].id, held[1].id]) == 2
    assert queue.release(engine, "w1") == 4
    assert queue.release(engine, "w1") == 0
    rows = [_config(engine, c.id) for c in held]
    assert {(r.status, r.retry_count, r.claimed_by, r.started_at) for r in rows} == {("pending", 0, None, None)}
    assert status_counts(engine)["running"] == 2  # w2 keeps its own


def test_a_failed_attempt_waits_out_an_exponential_backoff_with_jitter(engine, version_id, small_queue):
    held = queue.claim(engine, "w1", limit=1)[0]
    _put_first(engine, held.id)
    assert queue.fail(engine, held, "w1", "flaky", retry_base_seconds=60, retry_max_seconds=3600).status == "pending"
    with engine.connect() as connection:
        delay = connection.execute(
            text("SELECT extract(epoch FROM run_after - now()) FROM benchmark_configs WHERE id = :id"), {"id": held.id}
        ).scalar_one()
    assert 29 < delay <= 60  # attempt 1: 60 s × [0.5, 1)
    assert held.id not in {c.id for c in queue.claim(engine, "w2", limit=1000)}  # not due: skipped
    left = queue.outstanding(engine, model_version_id=version_id)
    assert (left.due, left.waiting, left.drained) == (0, 1, False) and 29 < left.next_due_seconds <= 60
    with engine.begin() as connection:  # time passes
        connection.execute(
            text("UPDATE benchmark_configs SET run_after = now() - interval '1 second' WHERE id = :id"), {"id": held.id}
        )
    again = queue.claim(engine, "w3", limit=1)[0]
    assert again.id == held.id
    queue.fail(engine, again, "w3", "flaky", retry_base_seconds=60, retry_max_seconds=90)
    with engine.connect() as connection:
        delay = connection.execute(
            text("SELECT extract(epoch FROM run_after - now()) FROM benchmark_configs WHERE id = :id"), {"id": held.id}
        ).scalar_one()
    assert 44 < delay <= 90  # attempt 2: min(90, 120) × [0.5, 1)


def test_reap_takes_back_expired_leases_as_preemptions_and_fails_past_their_limit(engine, small_queue):
    held = queue.claim(engine, "w1", limit=3)
    queue.claim(engine, "alive", limit=2)
    with engine.begin() as connection:
        connection.execute(text("UPDATE benchmark_configs SET preemption_count = 2 WHERE id = :id"), {"id": held[0].id})
    _expire_leases(engine, "w1")
    assert queue.reap(engine, max_preemptions=3) == queue.ReapReport(returned_to_pending=2, failed=1)
    assert queue.reap(engine, max_preemptions=3) == queue.ReapReport(0, 0)
    failed = _config(engine, held[0].id)
    assert (failed.status, failed.preemption_count, failed.retry_count) == ("failed", 3, 0)
    assert "lease of worker w1 expired" in failed.error_message and "preemption 3 of 3" in failed.error_message
    rows = [_config(engine, c.id) for c in held[1:]]
    assert {(r.status, r.preemption_count, r.retry_count, r.claimed_by, r.run_after) for r in rows} == {
        ("pending", 1, 0, None, None)  # a preemption spends no failed attempt and is due at once
    }
    assert status_counts(engine)["running"] == 2


def test_a_live_claim_is_never_reaped_however_long_it_runs(engine, small_queue):
    held = queue.claim(engine, "w1", limit=2, lease_seconds=60)
    with engine.begin() as connection:  # claimed three hours ago (past the old 120-minute rule), still heartbeating
        connection.execute(text("UPDATE benchmark_configs SET started_at = now() - interval '3 hours'"))
    assert queue.reap(engine) == queue.ReapReport(returned_to_pending=0, failed=0)
    assert queue.claim(engine, "w2", limit=1000) and status_counts(engine)["running"] > 2
    assert {_config(engine, c.id).claimed_by for c in held} == {"w1"}


def test_a_claim_rescues_expired_leases_of_its_pool_itself(engine, version_id, small_queue):
    pool = hardware_id(engine, "aws-l4-x1")
    other_pool = hardware_id(engine, "gcp-l4-x1")
    dead = queue.claim(engine, "dead", limit=3, hardware_config_id=pool)
    dead_elsewhere = queue.claim(engine, "dead", limit=2, hardware_config_id=other_pool)
    _expire_leases(engine, "dead")
    left = queue.outstanding(engine, hardware_config_id=pool)
    assert left.due == small_queue.created // 2  # pending of the pool (minus the 3) + the 3 expired claims
    with engine.begin() as connection:  # the dead worker's configs come first by priority
        connection.execute(
            text("UPDATE benchmark_configs SET priority = 1 WHERE id = ANY(:ids)"), {"ids": [c.id for c in dead]}
        )
    first = queue.claim(engine, "rescuer", limit=3, hardware_config_id=pool)  # rescues them as it claims others
    assert not {c.id for c in first} & {c.id for c in dead}
    rows = [_config(engine, c.id) for c in dead]
    assert {(r.status, r.preemption_count, r.retry_count, r.claimed_by) for r in rows} == {("pending", 1, 0, None)}
    rescuer = queue.claim(engine, "rescuer", limit=3, hardware_config_id=pool)  # the next claim takes them
    assert {c.id for c in rescuer} == {c.id for c in dead}
    assert not queue.complete(engine, dead[0], "dead", _measurement())  # the old token is fenced out
    assert {_config(engine, c.id).status for c in dead_elsewhere} == {"running"}  # another pool: not this claim's


def test_complete_batch_records_a_batch_in_one_statement_fenced_per_config(engine, small_queue):
    held = queue.claim(engine, "w1", limit=4)
    with engine.begin() as connection:  # the third claim was lost meanwhile (rescued and claimed again)
        connection.execute(
            text("UPDATE benchmark_configs SET claimed_by = 'w2', started_at = now() WHERE id = :id"),
            {"id": held[2].id},
        )
    finished = [(c, _measurement(throughput_tokens_sec=100.0 + i)) for i, c in enumerate(held)]
    recorded = queue.complete_batch(engine, "w1", finished)
    assert recorded == {held[0].id, held[1].id, held[3].id}
    assert [_results(engine, c.id)[0].throughput_tokens_sec for c in (held[0], held[1], held[3])] == [
        100.0,
        101.0,
        103.0,
    ]
    assert _results(engine, held[2].id) == [] and _config(engine, held[2].id).status == "running"
    assert queue.complete_batch(engine, "w1", finished) == recorded  # a replay: recognised, nothing added
    assert sum(len(_results(engine, c.id)) for c in held) == 3


def test_complete_and_claim_records_a_batch_and_claims_the_next_in_one_statement(engine, small_queue):
    """The recording keeps complete_batch's fencing per config, the claim its preference, SKIP LOCKED pick and rescue
    of expired leases; what it claims is disjoint from what it records; a replay records nothing twice."""
    sglang = framework_id(engine, "sglang")
    held = queue.claim(engine, "w1", limit=4, preferred_framework_id=sglang)
    dead = queue.claim(engine, "dead", limit=2)
    with engine.begin() as connection:  # a claim of w1 lost meanwhile; the dead worker's leases expired
        connection.execute(
            text("UPDATE benchmark_configs SET claimed_by = 'w2', started_at = now() WHERE id = :id"),
            {"id": held[2].id},
        )
        connection.execute(
            text("UPDATE benchmark_configs SET lease_expires_at = now() - interval '1 s' WHERE claimed_by = 'dead'")
        )
    finished = [(c, _measurement(throughput_tokens_sec=100.0 + i)) for i, c in enumerate(held)]
    request = queue.ClaimRequest(limit=5, lease_seconds=300, preferred_framework_id=sglang)

    recorded, claims = queue.complete_and_claim(engine, "w1", finished, request)

    assert recorded == {held[0].id, held[1].id, held[3].id}
    assert [_results(engine, c.id)[0].throughput_tokens_sec for c in held if c.id in recorded] == [100.0, 101.0, 103.0]
    assert _results(engine, held[2].id) == [] and _config(engine, held[2].id).status == "running"
    assert len(claims) == 5 and {c.framework_id for c in claims} == {sglang}
    assert not {c.id for c in claims} & {c.id for c in held + dead}
    assert {(_config(engine, c.id).status, _config(engine, c.id).claimed_by) for c in claims} == {("running", "w1")}
    assert {(_config(engine, c.id).status, _config(engine, c.id).preemption_count) for c in dead} == {("pending", 1)}
    again, more = queue.complete_and_claim(engine, "w1", finished, request)  # a retry after a lost acknowledgement
    assert again == recorded and sum(len(_results(engine, c.id)) for c in held) == 3
    assert len(more) == 5 and not {c.id for c in more} & {c.id for c in claims}
    assert queue.complete_and_claim(engine, "w1", [], queue.ClaimRequest(limit=1))[0] == set()


def test_cancel_stops_pending_and_running_configs_and_fences_their_workers(engine, version_id, small_queue):
    pool = hardware_id(engine, "aws-l4-x1")
    running = queue.claim(engine, "w1", limit=2, hardware_config_id=pool)
    elsewhere = queue.claim(engine, "w2", limit=1, hardware_config_id=hardware_id(engine, "gcp-l4-x1"))
    report = queue.cancel(engine, version_id, hardware_config_ids=[pool])
    assert report == queue.CancelReport(pending=small_queue.created // 2 - 2, running=2)
    assert queue.heartbeat(engine, "w1") == set()  # how the worker learns it
    assert not queue.complete(engine, running[0], "w1", _measurement())
    assert queue.fail(engine, running[1], "w1", "boom") is None
    assert _results(engine, running[0].id) == []
    assert {c.hardware_config_id for c in queue.claim(engine, "w3", limit=1000)} == {elsewhere[0].hardware_config_id}
    assert queue.cancel(engine, version_id, hardware_config_ids=[pool]) == queue.CancelReport(0, 0)
    assert status_counts(engine)["cancelled"] == small_queue.created // 2
    assert queue.progress(engine, version_id).by_status["cancelled"] == small_queue.created // 2


# ------------------------------------------------------------------------------------------------ progress, plan


def test_progress_counts_statuses_and_estimates_the_rest(engine, version_id, small_queue):
    held = queue.claim(engine, "w1", limit=10)
    for claim in held[:6]:
        queue.complete(engine, claim, "w1", _measurement())
    queue.fail(engine, held[6], "w1", "boom", max_attempts=1)
    report = queue.progress(engine, version_id, window_minutes=10)
    total = small_queue.created
    assert report.by_status == {"completed": 6, "failed": 1, "running": 3, "pending": total - 10}
    assert report.total == total
    assert report.percent_complete == pytest.approx(100 * 6 / total)
    assert report.finished_in_window == 7
    assert report.eta_seconds == pytest.approx((total - 7) / (7 / 600))
    assert set(report.by_hardware) == set(SMALL_POOLS)
    assert report.by_model_version == {"llama-3.1-8b@int4-awq": report.by_status}
    assert queue.progress(engine, uuid.uuid4()).total == 0


def test_claim_plan_reads_the_partial_claim_index(engine, version_id):
    """On a table of about 65,000 configs (two versions, every pool) whose front of the queue is finished, after
    ANALYZE, a pool's claim is an index scan of idx_benchmark_config_claim in priority order over pending rows only:
    it reads only the rows it returns (an index over every row would walk past the finished ones, filtering them).
    Every claim updates what it picked through the primary key."""
    queue.populate_matrix(engine, version_id)
    queue.populate_matrix(engine, seed_with_model(engine, "llama-3.1-8b@fp8"))
    # a worker without --hardware, everything pending: a model version's claim, preferring the framework it has
    # loaded, starts at that framework's first pending row and updates the claimed rows through the primary key (not a
    # hash join over a sequential scan)
    sql = queue.claim_sql(hardware_config_id=None, model_version_id=version_id, preferred_framework=True)
    params = {"limit": 10, "worker_id": "explain", "lease_seconds": 60.0, "model_version_id": version_id}
    params |= {"preferred_framework_id": framework_id(engine, "vllm"), "max_preemptions": 5, "rescue_limit": 100}
    with engine.begin() as connection:
        connection.execute(text("ANALYZE benchmark_configs"))
    with engine.begin() as connection:
        plan = "\n".join(connection.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}"), params).scalars())
        connection.rollback()
    assert "Seq Scan" not in plan and "Index Scan using pk_benchmark_configs" in plan, plan
    assert "Index Scan using idx_benchmark_config_claim_framework" in plan and "Sort" not in plan, plan
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE benchmark_configs SET status = 'completed' WHERE priority < "
                "(SELECT percentile_disc(0.9) WITHIN GROUP (ORDER BY priority) FROM benchmark_configs)"
            )
        )
        connection.execute(text("ANALYZE benchmark_configs"))
        definition = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_benchmark_config_claim'")
        ).scalar_one()
    assert definition.endswith("WHERE ((status)::text = 'pending'::text)"), definition
    pool = hardware_id(engine, "aws-h100-sxm-x8")
    for preferred in (None, framework_id(engine, "vllm")):
        sql = queue.claim_sql(hardware_config_id=pool, model_version_id=None, preferred_framework=preferred is not None)
        params = {"limit": 10, "worker_id": "explain", "lease_seconds": 60.0, "hardware_config_id": pool}
        params |= {"preferred_framework_id": preferred, "max_preemptions": 5, "rescue_limit": 100}
        with engine.begin() as connection:
            plan = "\n".join(connection.execute(text(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}"), params).scalars())
            connection.rollback()
        assert "Index Scan using idx_benchmark_config_claim" in plan, plan
        assert "Sort" not in plan, plan
        # the claimed rows are updated through the primary key: the planner knows the batch is :limit rows
        assert "Seq Scan" not in plan and "Index Scan using pk_benchmark_configs" in plan, plan
        if preferred is None:  # (the preferred-framework scan does skip the pool's other frameworks)
            assert "Rows Removed by Filter" not in plan, plan
    rescue = queue.rescue_sql(hardware_config_id=pool, model_version_id=None, limited=True)
    with engine.begin() as connection:
        params = {"hardware_config_id": pool, "max_preemptions": 5, "rescue_limit": 100}
        plan = "\n".join(connection.execute(text(f"EXPLAIN {rescue}"), params).scalars())
        connection.rollback()
    # expired leases: read through a partial index holding running rows (the lease index, or the pending/running
    # status index when running rows are few), never a scan of the table
    assert "idx_benchmark_config_lease" in plan or "idx_benchmark_config_status_priority" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_build_run_spec_joins_the_catalogs(engine, small_queue):
    with engine.connect() as connection:
        row = connection.execute(
            text(
                "SELECT c.* FROM benchmark_configs c JOIN inference_frameworks f ON f.id = c.framework_id "
                "WHERE f.name = 'sglang' AND c.workload_type = 'summarization' AND c.batch_size = 4 "
                "AND c.sequence_length = 2048 ORDER BY c.id LIMIT 1"
            )
        ).one()
        spec = build_run_spec(connection, row)
        assert build_run_spec(connection, row._mapping) == spec
    assert spec.config_id == row.id
    assert (spec.batch_size, spec.sequence_length) == (4, 2048)
    assert spec.model.version_key == "llama-3.1-8b@int4-awq"
    assert (spec.model.quantization, spec.model.format, spec.model.num_kv_heads) == ("int4", "awq", 8)
    assert spec.hardware.name in SMALL_POOLS and spec.hardware.gpu_type == "L4" and spec.hardware.vendor == "nvidia"
    assert spec.framework.name == "sglang" and "{port}" in spec.framework.launch_command
    assert 0 < spec.framework.decode_efficiency <= 1
    assert spec.workload.name == "summarization" and spec.workload.typical_output_tokens > 0


# ------------------------------------------------------------------------------------------------ commands


def test_populate_matrix_command_reports_json_and_is_idempotent(database_url, engine, version_id):
    runner = CliRunner()
    first = runner.invoke(main, ["populate-matrix", "llama-3.1-8b@int4-awq", "--hardware", "aws-l4-x1", "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["created"] == report["matrix_size"] > 0
    second = runner.invoke(main, ["populate-matrix", str(version_id), "--hardware", "aws-l4-x1", "--json"])
    assert json.loads(second.output)["created"] == 0
    text_output = runner.invoke(main, ["populate-matrix", "llama-3.1-8b@int4-awq", "--hardware", "aws-l4-x1"]).output
    assert "0 created" in text_output and "aws-l4-x1/vllm" in text_output


def test_commands_reject_an_unknown_model_version_with_exit_2(database_url, engine, version_id):
    runner = CliRunner()
    for command in (
        ["populate-matrix", "llama-3.1-8b@int5"],
        ["progress", "nope@x"],
        ["worker", "--model-version", "x@y"],
        ["cancel", "x@y"],
    ):
        result = runner.invoke(main, command)
        assert result.exit_code == 2, result.output
        assert "unknown model version" in result.output
    assert status_counts(engine) == {}
    bad_hardware = runner.invoke(main, ["populate-matrix", "llama-3.1-8b@int4-awq", "--hardware", "tpu-v9"])
    assert bad_hardware.exit_code == 2 and "unknown hardware tpu-v9" in bad_hardware.output
    bad_pool = runner.invoke(main, ["worker", "--model-version", "llama-3.1-8b@int4-awq", "--hardware", "tpu-v9"])
    assert bad_pool.exit_code == 2 and "unknown hardware 'tpu-v9'" in bad_pool.output
    bad_framework = runner.invoke(main, ["cancel", "llama-3.1-8b@int4-awq", "--framework", "nope"])
    assert bad_framework.exit_code == 2 and "unknown framework 'nope'" in bad_framework.output


def test_progress_and_reap_stale_commands(database_url, engine, version_id, small_queue):
    queue.claim(engine, "gone", limit=4)
    _expire_leases(engine)
    runner = CliRunner()
    reaped = runner.invoke(main, ["reap-stale"])
    assert reaped.exit_code == 0 and "4 back to pending" in reaped.output
    progress = json.loads(runner.invoke(main, ["progress", "llama-3.1-8b@int4-awq", "--json"]).output)
    assert progress["by_status"] == {"pending": small_queue.created}
    started = time.monotonic()
    summary = runner.invoke(main, ["worker", "--model-version", "llama-3.1-8b@int4-awq", "--max-configs", "5"])
    assert summary.exit_code == 0, summary.output
    assert "5 completed" in summary.output and time.monotonic() - started < 30
    assert "completed 5" in runner.invoke(main, ["progress", "llama-3.1-8b@int4-awq"]).output
