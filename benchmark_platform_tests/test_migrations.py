"""Alembic owns the schema: up, down to base and up again, and no drift between the migrations and the ORM."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from benchmark_platform import database, migrations
from benchmark_platform.cli import main
from benchmark_platform.orm import Base
from benchmark_platform_tests.factories import insert_schema_rows

DESIGN_INDEXES = {
    "benchmark_configs": {
        "idx_benchmark_config_status_priority",
        "idx_benchmark_config_model_status",
        # idx_benchmark_config_stale_running is no longer a design index: migration 0006 dropped it, since only the
        # removed 120-minute claim-age reaper rule read it (the reaper now uses idx_benchmark_config_lease) and every
        # claim paid an index insert for it.
    },
    "benchmark_results": {
        "idx_benchmark_results_model_hardware_framework",
        "idx_benchmark_results_latency_sla",
        "idx_benchmark_results_date_workload",
    },
    "daily_model_stats": {"idx_daily_stats_model_date"},
    "hardware_configs": {"idx_hardware_configs_vram_cost"},
    "model_versions": {"idx_model_versions_vram_quantization"},
    "model_rankings": {"idx_model_rankings_use_case"},
    "model_use_cases": {"idx_recommended_models", "idx_models_use_cases_suitability"},
    "deployment_rankings": {"idx_deployment_rankings_use_case_rank"},
}


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_head_schema_matches_orm_models(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == migrations.VERSION_TABLE)]
    assert diff == []


def test_every_design_index_exists_with_its_partial_predicate(engine):
    inspector = inspect(engine)
    for table, expected in DESIGN_INDEXES.items():
        assert expected <= {ix["name"] for ix in inspector.get_indexes(table)}, table
    with engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_benchmark_config_status_priority'")
        ).scalar_one()
    assert "WHERE" in definition and "pending" in definition and "running" in definition


def test_status_check_constraint_rejects_unknown_status(engine):
    with pytest.raises(IntegrityError, match="status_known"), engine.begin() as conn:
        insert_schema_rows(conn)
        conn.execute(
            text(
                "INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type,"
                " batch_size, sequence_length, tensor_parallel, status)"
                " SELECT v.id, h.id, f.id, 'chatbot', 1, 1024, 1, 'exploded'"
                " FROM model_versions v, hardware_configs h, inference_frameworks f"
            )
        )


def test_downgrade_to_base_and_upgrade_again(engine):
    migrations.downgrade(engine, "base")
    assert _tables(engine) <= {migrations.VERSION_TABLE}
    assert migrations.current_revision(engine) is None
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision()
    assert {t.name for t in Base.metadata.sorted_tables} <= _tables(engine)


def test_first_use_upgrades_an_empty_database(engine, database_url):
    migrations.downgrade(engine, "base")
    database.dispose_engines()
    fresh = database.get_engine(database_url)
    assert migrations.current_revision(fresh) == migrations.head_revision()


def test_db_commands(database_url):
    runner = CliRunner()
    down = runner.invoke(main, ["db", "downgrade", "base"])
    assert down.exit_code != 0 and "--yes" in down.output
    assert runner.invoke(main, ["db", "downgrade", "base", "--yes"]).exit_code == 0
    result = runner.invoke(main, ["db", "current"])
    assert "current: base (empty)" in result.output
    result = runner.invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert f"at revision {migrations.head_revision()}" in result.output


def test_0002_gives_old_rows_the_whole_node_as_tensor_parallel_and_downgrades_back(engine):
    """A database at 0001 holding a config and its result (simulated on all eight GPUs of its node, the only shape
    0001 knew) upgrades to tensor_parallel = 8 on both rows, accepts a second degree of the same config, and
    downgrades back keeping the node-wide config and every result."""
    migrations.downgrade(engine, "0001")
    with engine.begin() as conn:
        insert_schema_rows(conn, node="8xH100")
        conn.execute(
            text(
                "INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type,"
                " batch_size, sequence_length, status) SELECT v.id, h.id, f.id, 'chatbot', 4, 1024, 'completed'"
                " FROM model_versions v, hardware_configs h, inference_frameworks f"
            )
        )
        conn.execute(
            text(
                "INSERT INTO benchmark_results (config_id, model_version_id, hardware_config_id, framework_id,"
                " workload_type, batch_size, sequence_length, throughput_tokens_sec, runner)"
                " SELECT id, model_version_id, hardware_config_id, framework_id, workload_type, batch_size,"
                " sequence_length, 1000, 'simulated' FROM benchmark_configs"
            )
        )

    migrations.upgrade(engine, "0002")

    with engine.begin() as conn:
        assert conn.execute(text("SELECT tensor_parallel FROM benchmark_configs")).scalars().all() == [8]
        assert conn.execute(text("SELECT tensor_parallel FROM benchmark_results")).scalars().all() == [8]
        assert conn.execute(text("SELECT output_tokens_sec_per_gpu FROM benchmark_results")).scalar_one() is None
        conn.execute(
            text(
                "INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type,"
                " batch_size, sequence_length, tensor_parallel) SELECT model_version_id, hardware_config_id,"
                " framework_id, workload_type, batch_size, sequence_length, 1 FROM benchmark_configs"
            )
        )
    with pytest.raises(IntegrityError, match="unique_config"), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type,"
                " batch_size, sequence_length, tensor_parallel) SELECT model_version_id, hardware_config_id,"
                " framework_id, workload_type, batch_size, sequence_length, 1 FROM benchmark_configs LIMIT 1"
            )
        )

    migrations.downgrade(engine, "0001")

    assert migrations.current_revision(engine) == "0001"
    columns = {column["name"] for column in inspect(engine).get_columns("benchmark_results")}
    assert "tensor_parallel" not in columns and "cost_per_million_output_tokens" not in columns
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM benchmark_configs")).scalars().all() == ["completed"]
        result = conn.execute(text("SELECT config_id IS NOT NULL, throughput_tokens_sec FROM benchmark_results")).one()
    assert tuple(result) == (True, 1000)
    migrations.upgrade(engine, "0002")
    assert migrations.current_revision(engine) == "0002"


USE_CASE_RANKING = (
    "INSERT INTO use_case_rankings (use_case, use_case_id, weights, considered, excluded, calculated_at)"
    " SELECT 'chatbot', id, '{}', 1, '{}', now() FROM use_case_taxonomy"
)


def test_0007_adds_the_deployment_rankings_and_downgrades_back_to_model_rankings_only(engine):
    """At 0007 a ranked deployment must carry its rank and score and belong to a stored use-case ranking (deleting
    that deletes it); going down to 0006 drops both tables and nothing else, and coming back up restores them."""
    with engine.begin() as conn:
        insert_schema_rows(conn, use_case=True)
        conn.execute(text(USE_CASE_RANKING))
    deployment = (
        "INSERT INTO deployment_rankings (use_case, status, rank, score, model_version_id, hardware_config_id,"
        " framework_id, tensor_parallel, replicas, batch_size, n_sequence_lengths, min_sequence_length,"
        " max_sequence_length, accuracy_imputed, price_basis, simulated, calculated_at)"
        " SELECT 'chatbot', 'ranked', {rank}, 0.5, v.id, h.id, f.id, 1, 1, 8, 1, 1024, 1024, false, 'on_demand', true,"
        " now() FROM model_versions v, hardware_configs h, inference_frameworks f"
    )
    with pytest.raises(IntegrityError, match="ranked_has_score"), engine.begin() as conn:
        conn.execute(text(deployment.format(rank="NULL")))
    with engine.begin() as conn:
        conn.execute(text(deployment.format(rank=1)))
        conn.execute(text("DELETE FROM use_case_rankings"))
        assert conn.execute(text("SELECT count(*) FROM deployment_rankings")).scalar_one() == 0

    migrations.downgrade(engine, "0006")
    assert not {"use_case_rankings", "deployment_rankings"} & _tables(engine)
    assert {"model_rankings", "model_use_cases", "benchmark_results"} <= _tables(engine)
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision()
    assert {"use_case_rankings", "deployment_rankings"} <= _tables(engine)


def test_0009_stores_the_pruning_note_with_a_use_case_ranking_and_downgrades_back(engine):
    """At 0009 a use case's stored ranking carries what the planner skipped (``{}`` when nothing); going down to
    0008 drops only that column, and coming back up gives the rows written meanwhile an empty one."""
    ranking = USE_CASE_RANKING
    with engine.begin() as conn:
        insert_schema_rows(conn, use_case=True)
        conn.execute(text(ranking))
        assert conn.execute(text("SELECT pruning FROM use_case_rankings")).scalar_one() == {}
        conn.execute(text("""UPDATE use_case_rankings SET pruning = '{"top_k": 5}'"""))

    migrations.downgrade(engine, "0008")
    columns = {column["name"] for column in inspect(engine).get_columns("use_case_rankings")}
    assert "pruning" not in columns and {"notes", "calculated_at"} <= columns
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM use_case_rankings"))
        conn.execute(text(ranking))
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT pruning FROM use_case_rankings")).scalar_one() == {}


def test_a_test_that_uses_the_database_is_marked_database(engine, request):
    """So that CI's external-server pass (``pytest -m database``) runs it."""
    assert request.node.get_closest_marker("database") is not None
    assert request.node.get_closest_marker("dagster") is None


def test_0010_records_price_basis_and_cost_unit_and_downgrades_back(engine):
    """At 0010 hardware may carry a committed-use price, a stored ranking its basis and unit, a deployment its two
    new costs and the ``no_price`` status; going down to 0009 drops them (and the ``no_price`` rows, which 0009
    cannot hold), and coming back up leaves older rankings with a null basis (the store does not read them)."""
    ranking = (
        "INSERT INTO use_case_rankings (use_case, use_case_id, weights, considered, excluded, calculated_at{columns})"
        " SELECT 'chatbot', id, '{{}}', 1, '{{}}', now(){values} FROM use_case_taxonomy"
    )
    deployment = (
        "INSERT INTO deployment_rankings (use_case, status, model_version_id, hardware_config_id, framework_id,"
        " tensor_parallel, replicas, batch_size, n_sequence_lengths, min_sequence_length, max_sequence_length,"
        " accuracy_imputed, price_basis, simulated, calculated_at)"
        " SELECT 'chatbot', '{status}', v.id, h.id, f.id, 1, 1, {batch}, 1, 1024, 1024, false, 'reserved', true, now()"
        " FROM model_versions v, hardware_configs h, inference_frameworks f"
    )
    with engine.begin() as conn:
        insert_schema_rows(conn, use_case=True)
        conn.execute(text("UPDATE hardware_configs SET reserved_cost_per_hour_usd = 2.5"))
        conn.execute(text(ranking.format(columns=", price_basis, cost_unit", values=", 'reserved', 'requests'")))
        conn.execute(text(deployment.format(status="no_price", batch=8)))
        conn.execute(text(deployment.format(status="incomplete", batch=16)))
    with pytest.raises(IntegrityError, match="status_known"), engine.begin() as conn:
        conn.execute(text(deployment.format(status="unpriced", batch=32)))

    migrations.downgrade(engine, "0009")
    columns = {
        table: {c["name"] for c in inspect(engine).get_columns(table)}
        for table in ("use_case_rankings", "deployment_rankings", "hardware_configs")
    }
    assert not {"price_basis", "cost_unit"} & columns["use_case_rankings"]
    assert not {"cost_per_million_total_tokens", "cost_per_thousand_requests"} & columns["deployment_rankings"]
    assert "reserved_cost_per_hour_usd" not in columns["hardware_configs"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM deployment_rankings")).scalars().all() == ["incomplete"]
    with pytest.raises(IntegrityError, match="status_known"), engine.begin() as conn:
        conn.execute(text(deployment.format(status="no_price", batch=8)))

    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT price_basis, cost_unit FROM use_case_rankings")).one() == (None, None)
        assert conn.execute(text("SELECT reserved_cost_per_hour_usd FROM hardware_configs")).scalar_one() is None


def insert_a_completed_config_and_its_result(conn, *, tensor_parallel: int) -> None:
    """A completed chatbot config of the stored version, hardware and framework, and its simulated result, at a
    schema with ``tensor_parallel`` (0002 on)."""
    conn.execute(
        text(
            "INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type,"
            " batch_size, sequence_length, tensor_parallel, status) SELECT v.id, h.id, f.id, 'chatbot', 1, 1024,"
            " :tensor_parallel, 'completed' FROM model_versions v, hardware_configs h, inference_frameworks f"
        ),
        {"tensor_parallel": tensor_parallel},
    )
    conn.execute(
        text(
            "INSERT INTO benchmark_results (config_id, model_version_id, hardware_config_id, framework_id,"
            " workload_type, batch_size, sequence_length, tensor_parallel, throughput_tokens_sec, runner)"
            " SELECT id, model_version_id, hardware_config_id, framework_id, workload_type, batch_size,"
            " sequence_length, tensor_parallel, 1000, 'simulated' FROM benchmark_configs"
        )
    )


def test_0011_moe_admits_fp4_versions_keeps_older_results_and_downgrades_back(engine):
    """A database at 0010 holding a version with a result upgrades to 0011 with the result intact and then takes
    an fp4 version; going down refuses, naming it, while it is stored (the older check cannot hold it), and goes back
    to 0010 once it is gone, where fp4 is refused again."""
    fp4_version = (
        "INSERT INTO model_versions (model_id, version, quantization, quantization_bits, format, artifact_uri,"
        " vram_requirement_gb) SELECT id, 'mxfp4', 'fp4', 4, 'safetensors', 'hf://m', 1 FROM models"
    )
    migrations.downgrade(engine, "0010")
    with engine.begin() as conn:
        insert_schema_rows(conn)
        insert_a_completed_config_and_its_result(conn, tensor_parallel=1)
    with pytest.raises(IntegrityError, match="quantization_known"), engine.begin() as conn:
        conn.execute(text(fp4_version))

    migrations.upgrade(engine, "0011")
    with engine.begin() as conn:
        assert conn.execute(text("SELECT throughput_tokens_sec FROM benchmark_results")).scalars().all() == [1000]
        conn.execute(text(fp4_version))
    with pytest.raises(RuntimeError, match="m@mxfp4"):
        migrations.downgrade(engine, "0010")
    assert migrations.current_revision(engine) == "0011"

    with engine.begin() as conn:
        conn.execute(text("DELETE FROM model_versions WHERE quantization = 'fp4'"))
    migrations.downgrade(engine, "0010")
    assert migrations.current_revision(engine) == "0010"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT throughput_tokens_sec FROM benchmark_results")).scalars().all() == [1000]
    with pytest.raises(IntegrityError, match="quantization_known"), engine.begin() as conn:
        conn.execute(text(fp4_version))
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision()


def test_0012_labels_stored_deployments_by_source_and_downgrades_back(engine):
    """Going up to 0012 labels the deployments stored before it from their simulated flag; going down to 0011 drops
    the source and the simulator's figures and nothing else."""
    migrations.downgrade(engine, "0011")
    with engine.begin() as conn:
        insert_schema_rows(conn, use_case=True)
        conn.execute(text(USE_CASE_RANKING))
        for rank, simulated in ((1, "false"), (2, "true")):
            conn.execute(
                text(
                    "INSERT INTO deployment_rankings (use_case, status, rank, score, model_version_id,"
                    " hardware_config_id, framework_id, tensor_parallel, replicas, batch_size, n_sequence_lengths,"
                    " min_sequence_length, max_sequence_length, accuracy_imputed, price_basis, simulated,"
                    f" calculated_at) SELECT 'chatbot', 'ranked', {rank}, 0.5, v.id, h.id, f.id, 1, 1, {rank}, 1,"
                    f" 1024, 1024, false, 'on_demand', {simulated}, now()"
                    " FROM model_versions v, hardware_configs h, inference_frameworks f"
                )
            )
    migrations.upgrade(engine, "0012")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT rank, source, simulated_ttft_p90_ms FROM deployment_rankings ORDER BY rank"))
        assert rows.all() == [(1, "measured", None), (2, "simulated", None)]
    migrations.downgrade(engine, "0011")
    columns = {column["name"] for column in inspect(engine).get_columns("deployment_rankings")}
    assert "source" not in columns and not any(name.startswith("simulated_") for name in columns)
    assert {"simulated", "price_basis"} <= columns
    migrations.upgrade(engine)


def test_0013_gives_stored_rows_the_plain_options_keys_configs_by_them_and_downgrades_back(engine):
    """A database at 0012 holding a config, its result and a ranked deployment upgrades to 0013 with the defaults on
    all three (the plain deployment they measured); the same config with expert parallelism is then a second config
    and a bad option is refused. Going down refuses, naming the tables, while non-plain rows are stored, and goes
    back to 0012 once they are deleted, the stored rows intact."""
    migrations.downgrade(engine, "0012")
    with engine.begin() as conn:
        insert_schema_rows(conn, use_case=True)
        insert_a_completed_config_and_its_result(conn, tensor_parallel=8)
        conn.execute(text(USE_CASE_RANKING))
        conn.execute(
            text(
                "INSERT INTO deployment_rankings (use_case, status, rank, score, model_version_id, hardware_config_id,"
                " framework_id, tensor_parallel, replicas, batch_size, n_sequence_lengths, min_sequence_length,"
                " max_sequence_length, accuracy_imputed, price_basis, simulated, calculated_at) SELECT 'chatbot',"
                " 'ranked', 1, 0.5, v.id, h.id, f.id, 8, 1, 1, 1, 1024, 1024, false, 'on_demand', true, now()"
                " FROM model_versions v, hardware_configs h, inference_frameworks f"
            )
        )
    options = "expert_parallel, data_parallel_attention, speculative_method, kv_cache_dtype, prefix_caching"
    plain = (1, False, "none", "auto", False)
    migrations.upgrade(engine, "0013")
    with engine.connect() as conn:
        for table in ("benchmark_configs", "benchmark_results", "deployment_rankings"):
            assert conn.execute(text(f"SELECT {options} FROM {table}")).all() == [plain], table
    expert_parallel_config = (
        "INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, workload_type, batch_size,"
        " sequence_length, tensor_parallel, expert_parallel, data_parallel_attention)"
        " SELECT model_version_id, hardware_config_id, framework_id, workload_type, batch_size, sequence_length,"
        " tensor_parallel, 8, {dp_attention} FROM benchmark_configs"
    )
    with engine.begin() as conn:
        conn.execute(text(expert_parallel_config.format(dp_attention="false")))
        assert conn.execute(text("SELECT count(*) FROM benchmark_configs")).scalar_one() == 2
    with pytest.raises(IntegrityError, match="unique_config"), engine.begin() as conn:
        conn.execute(text(expert_parallel_config.format(dp_attention="false") + " WHERE expert_parallel = 1"))
    with pytest.raises(IntegrityError, match="speculative_method_known"), engine.begin() as conn:
        conn.execute(text("UPDATE benchmark_configs SET speculative_method = 'medusa'"))
    with pytest.raises(IntegrityError, match="dp_attention_needs_expert_parallel"), engine.begin() as conn:
        conn.execute(text("UPDATE benchmark_results SET data_parallel_attention = true"))

    with pytest.raises(RuntimeError, match="1 in benchmark_configs"):
        migrations.downgrade(engine, "0012")
    assert migrations.current_revision(engine) == "0013"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM benchmark_configs WHERE expert_parallel > 1"))
    migrations.downgrade(engine, "0012")
    columns = {column["name"] for column in inspect(engine).get_columns("benchmark_results")}
    assert "expert_parallel" not in columns and "prefix_caching" not in columns
    with engine.connect() as conn:
        assert conn.execute(text("SELECT throughput_tokens_sec FROM benchmark_results")).scalars().all() == [1000]
        assert conn.execute(text("SELECT count(*) FROM deployment_rankings")).scalar_one() == 1
    migrations.upgrade(engine)
    assert migrations.current_revision(engine) == migrations.head_revision()
