"""Daily per-model statistics: the pure aggregation, then writing them to a real database."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from benchmark_platform.orm import DailyModelStats
from benchmark_platform.ranking import DAILY_STATS_COLUMNS, daily_model_stats
from benchmark_platform.ranking.store import refresh_daily_stats, write_daily_stats
from benchmark_platform_tests.factories import DAY, insert_results, result_row, results_frame, uid


def _day_of_results():
    return results_frame(
        result_row(hardware="h100", framework="vllm", ttft_p90_ms=100.0, throughput_tokens_sec=1000.0),
        result_row(hardware="h100", framework="tgi", ttft_p90_ms=200.0, throughput_tokens_sec=2000.0),
        result_row(
            hardware="a100",
            framework="vllm",
            ttft_p90_ms=300.0,
            throughput_tokens_sec=3000.0,
            accuracy_score=0.7,
            runner="simulated",
            workload_type="qa",
        ),
        result_row(
            hardware="a100", framework="vllm", ttft_p90_ms=400.0, throughput_tokens_sec=4000.0, accuracy_score=0.9
        ),
        result_row(model="other", ttft_p90_ms=50.0, throughput_tokens_sec=500.0),
        result_row(benchmark_date=date(2026, 1, 4), ttft_p90_ms=9999.0),  # another day: ignored
    )


def test_aggregates_a_days_results_per_model() -> None:
    frame = daily_model_stats(_day_of_results(), DAY)

    assert list(frame.columns) == list(DAILY_STATS_COLUMNS)
    stats = frame.set_index("model_name")
    llama = stats.loc["llama"]
    assert llama["stats_date"] == DAY and llama["total_benchmarks"] == 4
    assert llama["avg_throughput"] == pytest.approx(2500.0)
    assert llama["avg_accuracy"] == pytest.approx(0.8)  # unmeasured results are skipped, not counted as 0
    assert llama["p95_latency_ms"] == pytest.approx(np.percentile([100, 200, 300, 400], 95))
    assert np.isnan(stats.loc["other", "avg_accuracy"]) and stats.loc["other", "total_benchmarks"] == 1


def test_aggregated_metrics_break_down_by_hardware_framework_and_workload() -> None:
    metrics = daily_model_stats(_day_of_results(), DAY).set_index("model_name").loc["llama", "aggregated_metrics"]

    json.dumps(metrics)
    assert "ttft_p90_ms" in metrics["latency"]
    assert metrics["runners"] == {"measured": 3, "simulated": 1}
    assert set(metrics["by_hardware"]) == {"h100", "a100"}
    a100 = metrics["by_hardware"]["a100"]
    assert a100["benchmarks"] == 2 and a100["simulated"] == 1
    assert a100["avg_throughput"] == pytest.approx(3500.0) and a100["avg_accuracy"] == pytest.approx(0.8)
    assert metrics["by_hardware"]["h100"]["avg_accuracy"] is None
    assert metrics["by_framework"]["tgi"]["p95_latency_ms"] == pytest.approx(200.0)
    assert metrics["by_framework"]["vllm"]["benchmarks"] == 3
    assert metrics["by_workload"]["qa"]["benchmarks"] == 1


def test_a_day_without_results_gives_no_rows() -> None:
    stats = daily_model_stats(_day_of_results(), date(2025, 12, 31))
    assert stats.empty and list(stats.columns) == list(DAILY_STATS_COLUMNS)


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match="missing: runner"):
        daily_model_stats(_day_of_results().drop(columns=["runner"]), DAY)


def test_refresh_daily_stats_writes_and_replaces_the_days_rows(engine: Engine) -> None:
    rows = [row for _, row in _day_of_results().iterrows()]
    insert_results(engine, [row.to_dict() for row in rows])

    written = refresh_daily_stats(engine, DAY)
    again = refresh_daily_stats(engine, DAY)  # idempotent: replaces, never duplicates

    assert len(written) == len(again) == 2
    with Session(engine) as session:
        stored = session.scalars(select(DailyModelStats).order_by(DailyModelStats.total_benchmarks)).all()
    assert [(row.model_id, row.total_benchmarks, row.stats_date) for row in stored] == [
        (uid("model", "other"), 1, DAY),
        (uid("model", "llama"), 4, DAY),
    ]
    assert stored[0].avg_accuracy is None
    assert stored[1].aggregated_metrics["runners"] == {"measured": 3, "simulated": 1}
    assert stored[1].p95_latency_ms == pytest.approx(np.percentile([100, 200, 300, 400], 95))


def test_bad_stats_are_rejected_and_change_nothing(engine: Engine) -> None:
    insert_results(engine, [result_row()])
    frame = refresh_daily_stats(engine, DAY)

    wrong_day = frame.assign(stats_date=date(2026, 2, 1))
    with pytest.raises(ValueError, match="hold rows dated 2026-02-01"):
        write_daily_stats(engine, DAY, wrong_day)
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        write_daily_stats(engine, DAY, frame.assign(avg_throughput=-1.0))

    with engine.connect() as connection:
        assert connection.execute(select(DailyModelStats.avg_throughput)).scalars().all() == [1000.0]
