"""The queue's invariant queries (``queue.invariants``) and the asset checks that run them: silent on a queue the
statements wrote, and naming the rows once an invariant is broken behind their back."""

from __future__ import annotations

from sqlalchemy import text

from benchmark_platform import queue
from benchmark_platform.defs.checks import one_result_per_completed_config, result_sanity
from benchmark_platform.defs.resources import PlatformDatabase
from benchmark_platform.runners import Measurement
from benchmark_platform_tests.factories import seed_with_model

MEASURED = Measurement(
    ttft_p50_ms=80.0, ttft_p90_ms=95.0, ttft_p99_ms=120.0, tpot_p50_ms=12.0, tpot_p90_ms=14.0, tpot_p99_ms=18.0,
    throughput_tokens_sec=900.0, rps_sustained=3.5, runner="simulated",
)  # fmt: skip


def test_invariants_hold_on_what_the_queue_wrote_and_name_what_breaks_them(engine, database_url):
    version_id = seed_with_model(engine)
    queue.populate_matrix(engine, version_id, hardware=("aws-l4-x1",), frameworks=("vllm",))
    done, other = queue.claim(engine, "w1", limit=2)
    assert queue.complete(engine, done, "w1", MEASURED)
    database = PlatformDatabase(url=database_url)
    assert queue.invariants.duplicate_configs(engine) == []
    assert queue.invariants.result_count_mismatches(engine) == []
    assert queue.invariants.insane_results(engine) == []
    assert one_result_per_completed_config(database=database).passed
    assert result_sanity(database=database).passed

    with engine.begin() as connection:  # a config marked completed without its result; a result out of order
        connection.execute(text("UPDATE benchmark_configs SET status = 'completed' WHERE id = :id"), {"id": other.id})
        result_id = connection.execute(
            text("UPDATE benchmark_results SET ttft_p50_ms = 500 WHERE config_id = :id RETURNING id"), {"id": done.id}
        ).scalar_one()
    assert [tuple(row) for row in queue.invariants.result_count_mismatches(engine)] == [(other.id, "completed", 0)]
    assert [row.id for row in queue.invariants.insane_results(engine)] == [result_id]
    mismatch = one_result_per_completed_config(database=database)
    assert not mismatch.passed and mismatch.metadata["violations"].value == 1
    assert str(other.id) in mismatch.metadata["examples"].value
    sanity = result_sanity(database=database)
    assert not sanity.passed and str(result_id) in sanity.metadata["examples"].value
