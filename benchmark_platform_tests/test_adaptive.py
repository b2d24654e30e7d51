"""Adaptive benchmarking on real PostgreSQL: the queue honours the planner (skipped status with its reason, claims,
re-queue, exhaustive), the worker re-plans between claims, re-planning is idempotent, a dead worker is harmless."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ProcessPoolExecutor

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from benchmark_platform import adaptive, planner, queue
from benchmark_platform.cli import main
from benchmark_platform.ranking.store import refresh_rankings
from benchmark_platform.report import write_report
from benchmark_platform.worker import WorkerOptions, run_worker
from benchmark_platform_tests.factories import DEFAULT_VERSION_KEY, make_spec, seed_with_model, status_counts

POOLS = ("aws-l4-x1", "gcp-l4-x1", "gcp-a100-80gb-x1", "gcp-h100-sxm-x1")
WORKLOADS = ("chatbot", "summarization")


@pytest.fixture
def version_id(engine: Engine) -> uuid.UUID:
    """Four single-GPU pools, two frameworks, two use cases: about 200 configs, so that draining stays quick."""
    version = seed_with_model(engine)
    queue.populate_matrix(engine, version, hardware=POOLS, frameworks=("vllm", "sglang"))
    _keep_workloads(engine)
    return version


def _keep_workloads(engine: Engine) -> None:
    """The two workloads' plain deployments (the EAGLE-3 twins of the low concurrencies are the options' concern)."""
    with engine.begin() as connection:
        connection.execute(
            text("DELETE FROM benchmark_configs WHERE workload_type <> ALL(:w) OR speculative_method <> 'none'"),
            {"w": list(WORKLOADS)},
        )


def _skipped(engine: Engine) -> list:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT id, skip_reason, pruning_exempt FROM benchmark_configs WHERE status = 'skipped'")
        ).all()


def _drain(engine: Engine, version_id: uuid.UUID, **options) -> None:
    replanner = adaptive.Replanner(engine, version_id, min_interval_seconds=0)
    summary = run_worker(
        engine,
        WorkerOptions(model_version_id=version_id, claim_batch=10, between_batches=replanner, **options),
    )
    assert summary.error is None and replanner.reports


def test_the_worker_replans_between_claims_and_skips_with_reasons_nothing_lost(engine: Engine, version_id):
    total = sum(status_counts(engine).values())
    _drain(engine, version_id)
    counts = status_counts(engine)
    assert set(counts) == {"completed", "skipped"} and sum(counts.values()) == total
    reasons = {row.skip_reason for row in _skipped(engine)}
    assert len(reasons) >= 2 and reasons <= set(planner.SKIP_REASONS)
    # about half of this matrix (98-102 of 200 skipped, by when the replans fall between claims): well above 40 %
    assert counts["skipped"] >= 0.4 * total, "pruning should save a large share of the matrix"
    with engine.connect() as connection:
        unstamped = connection.execute(
            text("SELECT count(*) FROM benchmark_results WHERE NOT detailed_metrics ? 'simulator_prediction'")
        ).scalar_one()
    assert unstamped <= 10, "every result but the last batch's carries its prediction"
    again = adaptive.replan(engine, version_id)
    assert (again.applied.skipped, again.applied.unskipped, again.applied.reprioritised) == (0, 0, 0)
    assert status_counts(engine) == counts, "re-planning over the same results changes nothing"


def test_claims_never_return_skipped_configs(engine: Engine, version_id):
    adaptive.replan(engine, version_id)
    skipped = {row.id for row in _skipped(engine)}
    assert skipped, "the optimistic bound already rules out some configs before any measurement"
    claimed = queue.claim(engine, "w", limit=1000, model_version_id=version_id)
    assert claimed and not skipped & {c.id for c in claimed}
    left = queue.outstanding(engine, model_version_id=version_id)
    assert (left.due, left.waiting) == (0, 0), "nothing claimable is left: the rest is skipped"


def test_requeue_by_reason_restores_skipped_configs_and_the_planner_leaves_them_alone(engine: Engine, version_id):
    _drain(engine, version_id)
    reason = planner.CANNOT_MEET_SLA
    chosen = [row.id for row in _skipped(engine) if row.skip_reason == reason]
    others = len(_skipped(engine)) - len(chosen)
    assert chosen and others
    result = CliRunner().invoke(main, ["requeue", "llama-3.1-8b@int4-awq", "--reason", reason])
    assert result.exit_code == 0, result.output
    assert f"{len(chosen)} skipped configs back to pending" in result.output
    assert len(_skipped(engine)) == others and reason not in {row.skip_reason for row in _skipped(engine)}
    adaptive.replan(engine, version_id)
    with engine.connect() as connection:
        statuses = connection.execute(
            text("SELECT DISTINCT status FROM benchmark_configs WHERE id = ANY(:ids)"), {"ids": chosen}
        ).scalars()
        assert set(statuses) == {"pending"}
    everything = CliRunner().invoke(main, ["requeue", "llama-3.1-8b@int4-awq"])
    assert f"{others} skipped configs back to pending" in everything.output and not _skipped(engine)
    bad = CliRunner().invoke(main, ["requeue", "llama-3.1-8b@int4-awq", "--reason", "bored"])
    assert bad.exit_code == 2 and "--reason" in bad.output


def test_exhaustive_turns_pruning_off_for_the_version(engine: Engine, version_id):
    adaptive.replan(engine, version_id)
    assert _skipped(engine)
    pools = [argument for pool in POOLS for argument in ("--hardware", pool)]
    frameworks = ["--framework", "vllm", "--framework", "sglang"]
    result = CliRunner().invoke(main, ["populate-matrix", "llama-3.1-8b@int4-awq", "--exhaustive", *pools, *frameworks])
    assert result.exit_code == 0 and "pruning off" in result.output, result.output
    _keep_workloads(engine)
    assert not _skipped(engine)
    _drain(engine, version_id)
    assert set(status_counts(engine)) == {"completed"}


def test_a_worker_dying_mid_run_leaves_the_plan_consistent(engine: Engine, version_id):
    adaptive.replan(engine, version_id)
    held = queue.claim(engine, "doomed", limit=3, model_version_id=version_id)
    first = adaptive.replan(engine, version_id)
    with engine.connect() as connection:
        siblings = connection.execute(
            text(
                """
                SELECT count(*) FROM benchmark_configs c JOIN benchmark_configs h
                  ON (h.hardware_config_id, h.framework_id, h.workload_type, h.batch_size)
                   = (c.hardware_config_id, c.framework_id, c.workload_type, c.batch_size)
                WHERE h.id = ANY(:held) AND c.id <> h.id AND c.status = 'skipped'
                  AND c.skip_reason IN ('dominated', 'dominated_by_planned', 'cannot_meet_sla')
                """
            ),
            {"held": [c.id for c in held]},
        ).scalar_one()
    assert siblings == 0, "a configuration with a running config is never cut in half"
    assert first.applied.skipped == 0  # nothing new was measured: the running claims change no decision
    with engine.begin() as connection:  # the worker died: its lease runs out, the reaper takes the claims back
        connection.execute(text("UPDATE benchmark_configs SET lease_expires_at = now() - interval '1 second'"))
    assert queue.reap(engine).returned_to_pending == 3
    with engine.connect() as connection:
        results = connection.execute(text("SELECT count(*) FROM benchmark_results")).scalar_one()
    assert results == 0
    adaptive.replan(engine, version_id)
    again = adaptive.replan(engine, version_id)
    assert (again.applied.skipped, again.applied.unskipped, again.applied.reprioritised) == (0, 0, 0)


def test_progress_counts_skipped_by_reason_and_gpu_hours_saved(engine: Engine, version_id):
    _drain(engine, version_id)
    summary = queue.pruning_summary(engine, version_id)
    assert sum(summary.skipped_by_reason.values()) == status_counts(engine)["skipped"]
    assert summary.gpu_hours_saved > summary.gpu_hours_to_run > 0
    result = CliRunner().invoke(main, ["progress", "llama-3.1-8b@int4-awq"])
    assert result.exit_code == 0, result.output
    assert "skipped by the adaptive planner" in result.output and "GPU-hours saved" in result.output
    assert "100.0% complete" in result.output, "skipped configs are not left to run"
    table = adaptive.residual_table(engine)
    assert table and all(row["runner"] == "simulated" for row in table)
    assert all(row["throughput_ratio"] == pytest.approx(1.0, rel=0.05) for row in table)


def test_recommend_says_when_the_answer_rests_on_few_measurements(engine: Engine, version_id):
    _drain(engine, version_id)
    result = CliRunner().invoke(main, ["recommend", "--use-case", "summarization", "--json"])
    assert result.exit_code in (0, 1), result.output
    warnings = json.loads(result.output)["few_measurements"]
    assert any("skipped by the adaptive planner" in warning for warning in warnings)


def test_the_report_says_what_pruning_skipped_and_saved(engine: Engine, version_id, tmp_path):
    _drain(engine, version_id)
    refresh_rankings(engine)  # the report reads the stored rankings
    summary = write_report(engine, tmp_path / "report.html", model_version="llama-3.1-8b@int4-awq")
    page = summary.path.read_text()
    assert "Adaptive benchmarking skipped" in page and "GPU-hours" in page
    skipped = status_counts(engine)["skipped"]
    assert f"skipped {skipped} configs" in page
    with engine.connect() as connection:
        chatbot = connection.execute(
            text("SELECT count(*) FROM benchmark_configs WHERE status = 'skipped' AND workload_type = 'chatbot'")
        ).scalar_one()
    assert 0 < chatbot < skipped
    chatbot_page = write_report(engine, tmp_path / "chatbot.html", use_cases=["chatbot"]).path.read_text()
    assert f"skipped {chatbot} configs" in chatbot_page  # the note covers the use cases reported

    # The note is stored with the rankings: the queue changing does not change the report until they are refreshed.
    queue.requeue_skipped(engine, version_id)
    assert f"skipped {skipped} configs" in write_report(engine, tmp_path / "again.html").path.read_text()
    refresh_rankings(engine)
    assert "Adaptive benchmarking skipped" not in write_report(engine, tmp_path / "fresh.html").path.read_text()


def test_a_skipped_config_always_has_its_reason(engine: Engine, version_id):
    with pytest.raises(IntegrityError, match="skipped_has_reason"), engine.begin() as connection:
        connection.execute(text("UPDATE benchmark_configs SET status = 'skipped' WHERE batch_size = 1"))


def test_the_matrix_asset_plans_and_its_exhaustive_config_turns_pruning_off(engine: Engine, dagster_instance):
    import dagster as dg

    from benchmark_platform.definitions import defs
    from benchmark_platform.defs.benchmarks import benchmark_config_matrix
    from benchmark_platform.defs.partitions import model_versions_partitions

    seed_with_model(engine)
    key = "llama-3.1-8b@int4-awq"
    dagster_instance.add_dynamic_partitions(model_versions_partitions.name, [key])

    def materialize(exhaustive: bool) -> dict:
        config = {"hardware": ["gcp-l4-x1"], "frameworks": ["vllm"], "exhaustive": exhaustive}
        result = dg.materialize(
            [benchmark_config_matrix],
            instance=dagster_instance,
            partition_key=key,
            resources=defs.resources,
            run_config={"ops": {"benchmark_config_matrix": {"config": config}}},
        )
        [event] = result.get_asset_materialization_events()
        return event.step_materialization_data.materialization.metadata

    adaptive_run = materialize(exhaustive=False)
    assert adaptive_run["pruning"].value == "adaptive"
    assert sum(adaptive_run["skipped_by_reason"].value.values()) == status_counts(engine)["skipped"] > 0
    exhaustive_run = materialize(exhaustive=True)
    assert exhaustive_run["pruning"].value == "off (exhaustive)" and exhaustive_run["skipped_by_reason"].value == {}
    assert set(status_counts(engine)) == {"pending"}


@pytest.mark.parametrize(
    ("flags", "exhaustive", "plans"),
    [((), False, True), (("--no-replan",), False, False), ((), True, False)],
    ids=["default", "no-replan", "exhaustive"],
)
def test_a_cli_worker_plans_unless_the_version_is_exhaustive_or_told_not_to(
    engine: Engine, version_id, flags, exhaustive, plans
):
    """The same rule as Dagster's drains (both go through ``run_worker``): pruning is on unless turned off."""
    if exhaustive:
        queue.exempt_from_pruning(engine, version_id)
    result = CliRunner().invoke(main, ["worker", "--model-version", DEFAULT_VERSION_KEY, "--json", *flags])
    assert result.exit_code == 0, result.output
    counts = status_counts(engine)
    assert ("skipped" in counts) == plans, counts
    assert counts.get("pending", 0) == 0


def test_a_large_matrix_is_predicted_on_several_cores_with_the_same_numbers(monkeypatch):
    """Above the threshold the simulator's predictions run in forked workers and come back equal to serial ones, each
    under its own config; a predictor a worker could not name (here a lambda) runs in this process."""
    cells = [(batch, length) for batch in (1, 8) for length in (128, 512)]
    specs = {uuid.uuid4(): make_spec(batch_size=batch, sequence_length=length) for batch, length in cells}
    serial = {key: adaptive.simulator_prediction(spec) for key, spec in specs.items()}
    pools: list[int] = []

    class CountedPool(ProcessPoolExecutor):
        def __init__(self, workers, **options):
            pools.append(workers)
            super().__init__(workers, **options)

    monkeypatch.setattr(adaptive, "ProcessPoolExecutor", CountedPool)
    monkeypatch.setattr(adaptive, "PARALLEL_PREDICTION_MIN_CONFIGS", 2)
    monkeypatch.setattr(adaptive.os, "cpu_count", lambda: 2)
    assert adaptive._predict_all(specs, adaptive.simulator_prediction) == serial and pools == [2]
    assert adaptive._predict_all(specs, lambda spec: {"batch": spec.batch_size}) == {
        key: {"batch": spec.batch_size} for key, spec in specs.items()
    }
    assert pools == [2]
