"""End to end with the real Dagster machinery on a real PostgreSQL: register a model version, the sensor adds its
partition, the benchmark job drains the matrix with parallel replicas, stats and rankings follow, checks pass; a
worker killed mid-run is recovered by the reaper and a re-materialization that finishes only what is left."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import text

from benchmark_platform import catalogs, manifests, queue
from benchmark_platform.definitions import defs, execute_benchmark_run
from benchmark_platform.defs.jobs import BENCHMARK_RUN_TAGS, local_benchmark_run_config, ranking_refresh_job
from benchmark_platform.defs.partitions import model_versions_partitions
from benchmark_platform.defs.sensors import new_model_version_sensor, unfinished_matrix_sensor
from benchmark_platform_tests.factories import seed_with_model, status_counts, worker_command

VERSION = "qwen2.5-7b@int4-awq"  # no speculative draft: the plain matrix, fewer configs to drain
HARDWARE = ("gcp-l4-x1", "gcp-h100-sxm-x1")  # the H100 meets even code completion's 200 ms TTFT SLA


def _sensor(sensor, instance, cursor=None):
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources, cursor=cursor) as ctx:
        result = sensor(ctx)
        return result, ctx.cursor


def _tick(instance, cursor=None) -> tuple[dg.SensorResult, str | None]:
    """Evaluate the new-version sensor and apply its partition requests, as the daemon does."""
    result, _ = _sensor(new_model_version_sensor, instance, cursor)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result, result.cursor


def _run_in_process(instance, version_key: str, run_config: dict) -> dg.ExecuteInProcessResult:
    """The benchmark job for one partition in this process: the graph, resources and tags of a launched run without
    a process per step (``test_register_to_rankings_end_to_end`` covers those)."""
    in_process = {key: value for key, value in run_config.items() if key != "execution"}
    return defs.resolve_job_def("benchmark_model_version").execute_in_process(
        instance=instance, partition_key=version_key, run_config=in_process, tags=BENCHMARK_RUN_TAGS
    )


def _one_result_per_completed_config(engine) -> None:
    with engine.connect() as conn:
        configs = conn.execute(text("SELECT count(*) FROM benchmark_configs WHERE status = 'completed'")).scalar_one()
        results = conn.execute(text("SELECT count(*), count(DISTINCT config_id) FROM benchmark_results")).one()
    assert results[0] == results[1] == configs


@pytest.mark.slow
def test_register_to_rankings_end_to_end(engine, dagster_instance):
    seed_with_model(engine, VERSION)
    result, cursor = _tick(dagster_instance)
    keys = model_versions_partitions.get_partition_keys(dynamic_partitions_store=dagster_instance)
    assert VERSION in keys
    assert {request.partition_key for request in result.run_requests} == set(keys)
    assert all(request.job_name in (None, "benchmark_model_version") for request in result.run_requests)
    again, _ = _tick(dagster_instance, cursor)
    assert not again.run_requests and again.skip_reason, "a repeated tick must request nothing twice"

    run_config = local_benchmark_run_config(hardware=HARDWARE, replicas_per_pool=2, preload=False)
    run = execute_benchmark_run(dagster_instance, VERSION, run_config)
    assert run.success
    drains = [
        step
        for step in dagster_instance.get_run_step_stats(run.run_id)
        if step.step_key.startswith("benchmark_results.drain_")
    ]
    assert len(drains) == 2 * len(HARDWARE), "two replicas for each GPU pool"
    assert all(step.status.value == "SUCCESS" for step in drains)
    matrix_event = dagster_instance.get_latest_materialization_event(dg.AssetKey("benchmark_config_matrix"))
    configs_created = matrix_event.asset_materialization.metadata["configs_created"].value

    # A pool's workers exit once its queue is drained; results that land later from another pool can put one of
    # its skipped configs back to pending (the planner re-evaluates). The unfinished-matrix sensor resumes such a
    # version with another run, as it does after a lost spot node: the matrix converges within a few runs.
    for _ in range(3):
        if "pending" not in status_counts(engine):
            break
        requests, _ = _sensor(unfinished_matrix_sensor, dagster_instance)
        assert [request.partition_key for request in requests] == [VERSION]
        assert execute_benchmark_run(dagster_instance, VERSION, run_config).success
    statuses = status_counts(engine)
    assert set(statuses) == {"completed", "skipped"} and statuses["completed"] > 50  # the planner pruned the rest
    assert configs_created == sum(statuses.values())
    _one_result_per_completed_config(engine)

    results_event = dagster_instance.get_latest_materialization_event(dg.AssetKey("benchmark_results"))
    metadata = results_event.asset_materialization.metadata
    assert metadata["completed"].value == statuses["completed"] and metadata["pending"].value == 0
    assert metadata["simulated_results"].value == statuses["completed"]
    assert "gcp-h100-sxm-x1" in metadata["per_hardware_progress"].value
    assert sum(metadata["skipped_by_reason"].value.values()) == statuses["skipped"]
    assert metadata["gpu_hours_saved_by_pruning"].value > 0

    today = datetime.now(UTC).date().isoformat()
    refreshed = defs.resolve_job_def(ranking_refresh_job.name).execute_in_process(
        instance=dagster_instance, partition_key=today
    )
    assert refreshed.success
    checks = {evaluation.check_name: evaluation.passed for evaluation in refreshed.get_asset_check_evaluations()}
    assert checks == {"rankings_cover_every_use_case": True, "rankings_not_expired": True}
    run_checks = {
        record.event_log_entry.dagster_event.event_specific_data.check_name: (
            record.event_log_entry.dagster_event.event_specific_data.passed
        )
        for record in dagster_instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    }
    assert run_checks == {
        "no_duplicate_configs": True,
        "one_result_per_completed_config": True,
        "result_sanity": True,
        "flagged_results_per_version": True,
    }
    rankings = dagster_instance.get_latest_materialization_event(dg.AssetKey("model_rankings"))
    assert "chatbot" in rankings.asset_materialization.metadata["top_configurations"].value
    report_event = dagster_instance.get_latest_materialization_event(dg.AssetKey("benchmark_report"))
    report = Path(report_event.asset_materialization.metadata["path"].value)
    assert report.is_file() and "SIMULATED" in report.read_text()
    with engine.connect() as conn:
        ranked_use_cases = conn.execute(text("SELECT count(DISTINCT use_case_category) FROM model_rankings")).scalar()
        stats = conn.execute(text("SELECT total_benchmarks FROM daily_model_stats")).scalars().all()
    assert ranked_use_cases == len(catalogs.load_use_cases())
    assert stats == [statuses["completed"]]


def test_new_version_sensor_finds_a_registration_that_committed_behind_its_cursor(engine, dagster_instance):
    seed_with_model(engine, "llama-3.1-8b@int4-awq")  # another model than the late one below
    _, cursor = _tick(dagster_instance)
    late = manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / "qwen2.5-7b.yaml")
    keys = manifests.register_model(engine, late)
    with engine.begin() as conn:  # its transaction started before the last tick's newest version
        conn.execute(
            text(
                "UPDATE model_versions SET created_at = CAST(:cursor AS timestamptz) - interval '1 minute'"
                " WHERE model_id = (SELECT id FROM models WHERE name = 'qwen2.5-7b')"
            ),
            {"cursor": cursor},
        )
    result, _ = _tick(dagster_instance, cursor)
    assert sorted(request.partition_key for request in result.run_requests) == sorted(keys)
    again, _ = _tick(dagster_instance, result.cursor)
    assert not again.run_requests


def _leases_expired(engine, count: int) -> bool:
    with engine.connect() as conn:
        expired = "SELECT count(*) FROM benchmark_configs WHERE status = 'running' AND lease_expires_at < now()"
        return conn.execute(text(expired)).scalar_one() == count


@pytest.mark.slow
def test_killed_worker_is_recovered_by_reaper_and_rematerialization(engine, dagster_instance, database_url):
    version_id = seed_with_model(engine, VERSION)
    _tick(dagster_instance)
    queue.populate_matrix(engine, version_id, hardware=["gcp-l4-x1"])

    worker = subprocess.Popen(
        worker_command(
            "--model-version",
            VERSION,
            "--hardware",
            "gcp-l4-x1",
            "--simulate-seconds",
            "0.02",
            "--lease-seconds",
            "3",
            "--claim-batch",
            "20",
        ),
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60

    def mid_batch() -> bool:  # some results recorded and a batch held (not between two claims)
        counts = status_counts(engine)
        return counts.get("completed", 0) >= 40 and counts.get("running", 0) > 0

    while not mid_batch():
        assert time.monotonic() < deadline and worker.poll() is None, "worker made no progress"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    before = status_counts(engine)
    assert before.get("running", 0) > 0, "the killed worker held claims"
    with engine.connect() as conn:
        first_results = set(conn.execute(text("SELECT id FROM benchmark_results")).scalars())

    deadline = time.monotonic() + 30
    while not _leases_expired(engine, before["running"]):  # the killed worker's (3 s) leases run out
        assert time.monotonic() < deadline, "the killed worker's leases never expired"
        time.sleep(0.1)
    reaped = queue.reap(engine)
    assert reaped.returned_to_pending == before["running"]

    # Its last run ended (here: none yet ran through Dagster, so run one that the sensor then sees as finished).
    resumed = _run_in_process(
        dagster_instance,
        VERSION,
        local_benchmark_run_config(hardware=["gcp-l4-x1"], replicas_per_pool=2),
    )
    assert resumed.success
    after = status_counts(engine)
    assert "completed" in after and set(after) <= {"completed", "skipped"}
    _one_result_per_completed_config(engine)
    with engine.connect() as conn:
        kept = set(conn.execute(text("SELECT id FROM benchmark_results")).scalars())
        retried = conn.execute(text("SELECT count(*) FROM benchmark_configs WHERE preemption_count = 1")).scalar_one()
    assert first_results <= kept, "completed configs are never re-run"
    assert retried == before["running"]


@pytest.mark.slow
def test_unfinished_matrix_sensor_rerequests_after_the_run_ended(engine, dagster_instance):
    seed_with_model(engine, VERSION)
    _tick(dagster_instance)
    run = _run_in_process(
        dagster_instance, VERSION, local_benchmark_run_config(hardware=["gcp-l4-x1"], replicas_per_pool=1)
    )
    assert run.success
    idle, _ = _sensor(unfinished_matrix_sensor, dagster_instance)
    assert isinstance(idle, dg.SkipReason), "a converged matrix is not re-requested"

    with engine.begin() as conn:  # a spot node vanished: the reaper has handed some configs back
        conn.execute(
            text(
                "UPDATE benchmark_configs SET status = 'pending' WHERE id IN "
                "(SELECT id FROM benchmark_configs ORDER BY priority LIMIT 5)"
            )
        )
        conn.execute(
            text(
                "DELETE FROM benchmark_results WHERE config_id IN "
                "(SELECT id FROM benchmark_configs WHERE status = 'pending')"
            )
        )
    requests, _ = _sensor(unfinished_matrix_sensor, dagster_instance)
    assert [(r.partition_key, r.run_key) for r in requests] == [(VERSION, f"resume:{VERSION}:{run.run_id}")]


@pytest.mark.parametrize("executor", ["k8s", "multiprocess"])
def test_executor_is_chosen_by_configuration(executor, monkeypatch):
    from benchmark_platform.defs.executors import EXECUTOR_ENV, benchmark_executor

    monkeypatch.setenv(EXECUTOR_ENV, executor)
    assert benchmark_executor().name == {"k8s": "k8s", "multiprocess": "multiprocess"}[executor]
    monkeypatch.setenv(EXECUTOR_ENV, "threads")
    with pytest.raises(ValueError, match="choose one of"):
        benchmark_executor()


def test_results_materialization_fails_naming_the_configs_that_failed_for_good(engine, dagster_instance):
    version_id = seed_with_model(engine, VERSION)
    _tick(dagster_instance)
    populated = queue.populate_matrix(engine, version_id, hardware=["gcp-l4-x1"])
    with engine.begin() as conn:  # two configs already exhausted their attempts
        conn.execute(
            text(
                "UPDATE benchmark_configs SET status = 'failed', retry_count = 3, error_message = 'server crashed'"
                " WHERE id IN (SELECT id FROM benchmark_configs ORDER BY priority LIMIT 2)"
            )
        )
    run_config = local_benchmark_run_config(hardware=["gcp-l4-x1"], replicas_per_pool=1)
    del run_config["execution"]  # in process: the graph is the same
    result = defs.resolve_job_def("benchmark_model_version").execute_in_process(
        instance=dagster_instance,
        partition_key=VERSION,
        run_config=run_config,
        raise_on_error=False,
        tags=BENCHMARK_RUN_TAGS,
    )
    assert not result.success
    [failure] = [event for event in result.all_events if event.is_step_failure]
    assert failure.step_key == "benchmark_results.report_progress"
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith("2 configs failed for good") and message.count("server crashed") == 2
    assert "gcp-l4-x1 / " in message
    counts = status_counts(engine)
    assert counts["failed"] == 2 and set(counts) <= {"completed", "failed", "skipped"}
    assert counts["completed"] + counts.get("skipped", 0) == populated.created - 2  # the others ran or were pruned
