"""The analytics assets as Dagster runs them: daily stats per day, the rankings and the report as one current
snapshot refreshed by the schedule's job and by new results, the report written where its destination says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
from sqlalchemy import Engine, text

from benchmark_platform import settings
from benchmark_platform.definitions import defs
from benchmark_platform.defs.analytics import daily_model_stats
from benchmark_platform.defs.jobs import ranking_refresh_job, rankings_job
from benchmark_platform.defs.report import REPORT_FILE, benchmark_report
from benchmark_platform.defs.resources import PlatformDatabase, ReportDestination
from benchmark_platform.defs.sensors import rankings_after_new_results
from benchmark_platform_tests.factories import insert_results, insert_use_case, result_row

TODAY = datetime.now(UTC).date()
OLD_DAY = TODAY - timedelta(days=20)


def _results_of_two_days(engine: Engine) -> None:
    insert_use_case(engine, "chatbot", sla={"ttft_p90_ms": 500, "tpot_p90_ms": 50})
    insert_results(
        engine,
        [
            result_row(model="fast", benchmark_date=TODAY, ttft_p90_ms=50.0, throughput_tokens_sec=3000.0),
            result_row(model="steady", benchmark_date=TODAY, ttft_p90_ms=120.0, throughput_tokens_sec=1500.0),
            result_row(model="slow", benchmark_date=OLD_DAY, ttft_p90_ms=400.0, throughput_tokens_sec=300.0),
        ],
    )


def _stored(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql))]


RANKINGS = (
    "SELECT m.name, r.rank_position, r.composite_score, r.calculated_at FROM model_rankings r "
    "JOIN models m ON m.id = r.model_id ORDER BY r.rank_position, m.name"
)
STATS = (
    "SELECT s.stats_date, m.name, s.total_benchmarks FROM daily_model_stats s JOIN models m ON m.id = s.model_id "
    "ORDER BY 1, 2"
)


def test_rankings_and_report_are_one_snapshot_and_daily_stats_are_per_day() -> None:
    assert defs.resolve_assets_def("daily_model_stats").partitions_def is not None
    for key in ("model_rankings", "model_use_cases", "benchmark_report"):
        assert defs.resolve_assets_def(key).partitions_def is None, key


def test_backfilling_an_old_day_leaves_todays_rankings_intact(engine: Engine, dagster_instance) -> None:
    _results_of_two_days(engine)
    refreshed = defs.resolve_job_def(ranking_refresh_job.name).execute_in_process(
        instance=dagster_instance, partition_key=TODAY.isoformat()
    )
    assert refreshed.success
    todays_rankings = _stored(engine, RANKINGS)
    assert [row[:2] for row in todays_rankings] == [("fast", 1), ("steady", 2), ("slow", 3)]  # ranked over all days
    assert _stored(engine, STATS) == [(TODAY, "fast", 1), (TODAY, "steady", 1)]

    backfill = dg.materialize(
        [daily_model_stats],
        partition_key=OLD_DAY.isoformat(),
        instance=dagster_instance,
        resources={"database": PlatformDatabase()},
    )

    assert backfill.success
    assert _stored(engine, RANKINGS) == todays_rankings  # not recomputed, not relabelled
    assert _stored(engine, STATS) == [(OLD_DAY, "slow", 1), (TODAY, "fast", 1), (TODAY, "steady", 1)]


def test_new_results_request_a_rankings_refresh_once(dagster_instance) -> None:
    dagster_instance.add_dynamic_partitions("model_versions", ["llama-3.1-8b@fp16"])
    context = dg.build_sensor_context(instance=dagster_instance, definitions=defs)
    assert isinstance(rankings_after_new_results.evaluate_tick(context).skip_message, str)  # nothing new yet

    dagster_instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="benchmark_results", partition="llama-3.1-8b@fp16")
    )
    context = dg.build_sensor_context(instance=dagster_instance, definitions=defs)
    [request] = rankings_after_new_results.evaluate_tick(context).run_requests
    assert rankings_after_new_results.job_name == rankings_job.name and request.run_key.startswith("rankings-after:")
    again = dg.build_sensor_context(instance=dagster_instance, definitions=defs, cursor=context.cursor)
    assert not rankings_after_new_results.evaluate_tick(again).run_requests


def test_the_report_is_written_to_its_destination_and_linked(
    engine: Engine, dagster_instance, tmp_path: Path, monkeypatch
) -> None:
    _results_of_two_days(engine)
    shared = tmp_path / "shared-volume"
    job = defs.resolve_job_def(rankings_job.name)
    configured = job.execute_in_process(
        instance=dagster_instance,
        resources={"report_destination": ReportDestination(folder=str(shared))},
    )
    assert configured.success
    [event] = [e for e in configured.get_asset_materialization_events() if e.asset_key.path == ["benchmark_report"]]
    metadata = event.materialization.metadata
    written = shared / REPORT_FILE
    assert metadata["path"].value == str(written) and metadata["url"].value == written.as_uri()
    page = written.read_text()
    assert "chatbot" in page and metadata["bytes"].value == len(page.encode())
    assert metadata["configurations"].value == 3  # every configuration the stored ranking holds

    monkeypatch.setenv(settings.REPORTS_DIR_ENV, str(tmp_path / "from-env"))
    assert job.execute_in_process(instance=dagster_instance).success
    assert (tmp_path / "from-env" / REPORT_FILE).is_file()


def test_the_report_is_materialized_and_retried_alone(engine: Engine, dagster_instance, tmp_path: Path) -> None:
    """The report is its own asset: without stored rankings it fails saying so and ranks nothing; once the rankings
    are stored it is drawn from them alone, without running the rankings step again."""
    _results_of_two_days(engine)
    destination = ReportDestination(folder=str(tmp_path))
    resources = {"database": PlatformDatabase(), "report_destination": destination}
    failed = dg.materialize([benchmark_report], instance=dagster_instance, resources=resources, raise_on_error=False)
    assert not failed.success and not (tmp_path / REPORT_FILE).exists()
    assert _stored(engine, RANKINGS) == []  # the report never ranks

    rankings = defs.resolve_job_def(rankings_job.name)
    assert rankings.execute_in_process(instance=dagster_instance, resources={"report_destination": destination}).success
    (tmp_path / REPORT_FILE).unlink()
    calculated = _stored(engine, RANKINGS)
    retried = dg.materialize([benchmark_report], instance=dagster_instance, resources=resources)
    assert retried.success and [e.asset_key.path for e in retried.get_asset_materialization_events()] == [
        ["benchmark_report"]
    ]
    assert "chatbot" in (tmp_path / REPORT_FILE).read_text()
    assert _stored(engine, RANKINGS) == calculated  # drawn from the stored rankings, not ranked again
