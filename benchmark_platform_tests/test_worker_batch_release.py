"""The worker's batches on their own: a batch interrupted part-way gives back exactly its unfinished claims at once,
before (and without) the final release that ``run_worker`` does on the way out; a batch's results ride with the next
claim."""

from __future__ import annotations

import math
import threading

from sqlalchemy import Engine, event, text

from benchmark_platform import queue, worker
from benchmark_platform.runners import Measurement, RunInterrupted, RunSpec, get_runner
from benchmark_platform.worker import WorkerOptions, WorkerSummary, _Worker, run_worker
from benchmark_platform_tests.factories import seed_with_model, status_counts


class InterruptedAfter:
    """The simulated runner, interrupted (as by SIGTERM) once it has measured ``count`` configs."""

    name = "simulated"

    def __init__(self, count: int) -> None:
        self.simulated = get_runner("simulated")
        self.left = count

    def run(self, spec: RunSpec) -> Measurement:
        if self.left == 0:
            raise RunInterrupted("stop requested")
        self.left -= 1
        return self.simulated.run(spec)

    def close(self) -> None:
        self.simulated.close()


def test_an_interrupted_batch_gives_back_exactly_its_unfinished_claims(engine: Engine) -> None:
    version_id = seed_with_model(engine)
    populated = queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    queue.claim(engine, "another-worker", limit=3)  # not this worker's: stays running
    summary = WorkerSummary(worker_id="w")
    worker = _Worker(engine, WorkerOptions(model_version_id=version_id, claim_batch=5), summary, threading.Event())

    worker.run(InterruptedAfter(2))

    assert (summary.completed, summary.released) == (2, 3)
    assert status_counts(engine) == {"completed": 2, "running": 3, "pending": populated.created - 5}
    with engine.connect() as connection:
        held = connection.execute(text("SELECT count(*) FROM benchmark_configs WHERE claimed_by = 'w'")).scalar_one()
        retried = connection.execute(text("SELECT count(*) FROM benchmark_configs WHERE retry_count > 0")).scalar_one()
    assert held == 2 and retried == 0  # the two completed keep their holder; released ones count no attempt


class FixedRunner:
    """No benchmark: the same result for every config."""

    name = "fixed"

    def __init__(self, should_stop) -> None:
        self.result = Measurement(
            ttft_p50_ms=80.0, ttft_p90_ms=95.0, ttft_p99_ms=120.0, tpot_p50_ms=12.0, tpot_p90_ms=14.0,
            tpot_p99_ms=18.0, throughput_tokens_sec=900.0, rps_sustained=3.5, runner="simulated",
        )  # fmt: skip

    def run(self, spec: RunSpec) -> Measurement:
        return self.result

    def close(self) -> None:
        pass


def test_a_batch_s_results_ride_with_the_next_claim(engine: Engine, tmp_path, monkeypatch) -> None:
    """One statement per batch: each batch's results are recorded by the statement that claims the next one
    (``queue.complete_and_claim``; the last batch's by the claim that finds nothing left), none on its own."""
    monkeypatch.setattr(worker, "RECORD_EVERY_SECONDS", 3600.0)  # no early recording inside a batch
    version_id = seed_with_model(engine)
    populated = queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    statements: list[str] = []

    def seen(connection, cursor, statement, parameters, context, executemany) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", seen)
    try:
        summary = run_worker(
            engine,
            WorkerOptions(model_version_id=version_id, claim_batch=7, spool_dir=tmp_path, replan_seconds=0),
            runner_factory=FixedRunner,
        )
    finally:
        event.remove(engine, "before_cursor_execute", seen)

    assert summary.completed == populated.created and status_counts(engine) == {"completed": populated.created}
    recordings = [s for s in statements if "INSERT INTO benchmark_results" in s]
    riding = [s for s in recordings if "SET status = 'running'" in s]
    batches = math.ceil(populated.created / 7)
    assert len(recordings) == len(riding) == batches
