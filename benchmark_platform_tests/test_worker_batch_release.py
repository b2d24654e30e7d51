"""The worker's per-batch release on its own: a batch interrupted part-way gives back exactly its unfinished claims
at once, before (and without) the final release that ``run_worker`` does on the way out."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text

from benchmark_platform import queue
from benchmark_platform.runners import Measurement, RunInterrupted, RunSpec, get_runner
from benchmark_platform.worker import WorkerOptions, WorkerSummary, _Worker
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
    worker = _Worker(engine, WorkerOptions(model_version_id=version_id, batch_size=5), summary, threading.Event())

    worker.run(InterruptedAfter(2))

    assert (summary.completed, summary.released) == (2, 3)
    assert status_counts(engine) == {"completed": 2, "running": 3, "pending": populated.created - 5}
    with engine.connect() as connection:
        held = connection.execute(text("SELECT count(*) FROM benchmark_configs WHERE claimed_by = 'w'")).scalar_one()
        retried = connection.execute(text("SELECT count(*) FROM benchmark_configs WHERE retry_count > 0")).scalar_one()
    assert held == 2 and retried == 0  # the two completed keep their holder; released ones count no attempt
