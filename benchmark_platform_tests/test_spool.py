"""The local result spool on real PostgreSQL: durable files, fenced recording, unlinked results after a lost claim."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import text

from benchmark_platform import queue, spool
from benchmark_platform.cli import main
from benchmark_platform.runners import Measurement
from benchmark_platform_tests.factories import seed_with_model

MEASUREMENT = Measurement(
    ttft_p50_ms=80.0, ttft_p90_ms=95.0, ttft_p99_ms=120.0, tpot_p50_ms=12.0, tpot_p90_ms=14.0, tpot_p99_ms=18.0,
    throughput_tokens_sec=900.0, rps_sustained=3.5, detailed_metrics={"seed": 7}, runner="simulated",
)  # fmt: skip


def _results(engine) -> list:
    with engine.connect() as connection:
        return connection.execute(text("SELECT config_id, detailed_metrics FROM benchmark_results")).all()


def test_a_spooled_result_whose_claim_holds_completes_its_config(engine, tmp_path):
    version_id = seed_with_model(engine)
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    [held] = queue.claim(engine, "w1", limit=1)
    path = spool.write(tmp_path, "w1", held, MEASUREMENT)
    assert spool.load(path, spool.signing_key()).config_id == held.id
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind
    assert spool.record(engine, tmp_path) == spool.SpoolReport(recorded=1)
    assert spool.entries(tmp_path) == []
    assert [row.config_id for row in _results(engine)] == [held.id]
    assert spool.record(engine, tmp_path) == spool.SpoolReport()


def test_a_spooled_result_whose_claim_was_lost_is_kept_unlinked_and_shown(database_url, engine, tmp_path):
    version_id = seed_with_model(engine)
    queue.populate_matrix(engine, version_id, hardware=["aws-l4-x1"], frameworks=["vllm"])
    [held] = queue.claim(engine, "w1", limit=1)
    spool.write(tmp_path, "w1", held, MEASUREMENT)
    with engine.begin() as connection:  # meanwhile its lease expired and the config was rescued
        connection.execute(text("UPDATE benchmark_configs SET lease_expires_at = now() - interval '1 second'"))
    assert queue.reap(engine).returned_to_pending == 1
    replay = spool.entries(tmp_path)[0].read_bytes()
    assert spool.record(engine, tmp_path) == spool.SpoolReport(unlinked=1)
    [row] = _results(engine)
    assert row.config_id is None and row.detailed_metrics["seed"] == 7
    assert row.detailed_metrics["unlinked"]["config_id"] == str(held.id)
    (tmp_path / "again.json").write_bytes(replay)  # a replay (crash before the file was removed) adds nothing
    assert spool.record(engine, tmp_path) == spool.SpoolReport(unlinked=1)
    assert len(_results(engine)) == 1
    with engine.connect() as connection:
        status = connection.execute(text("SELECT status FROM benchmark_configs WHERE id = :id"), {"id": held.id})
        assert status.scalar_one() == "pending"  # the config itself is measured again, fenced as ever
    assert queue.progress(engine, version_id).unlinked_results == 1
    shown = CliRunner().invoke(main, ["progress", "llama-3.1-8b@int4-awq"])
    assert "1 unlinked results" in shown.output, shown.output
