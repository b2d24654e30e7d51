"""The test database filled: the real catalogs and an example model, results rows with what they name, use cases;
counts to assert on; and raw-SQL rows for migration tests, valid at every schema revision."""

from __future__ import annotations

import uuid
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from benchmark_platform import catalogs, manifests, orm
from benchmark_platform.orm import BenchmarkResult, HardwareConfig, InferenceFramework, Model, ModelVersion, UseCase
from benchmark_platform.ranking.frames import METRIC_COLUMNS
from benchmark_platform_tests.factories.results import CHATBOT_WEIGHTS

# --- the catalogs and an example model in the database --------------------------------------------------------------

DEFAULT_VERSION_KEY = "llama-3.1-8b@int4-awq"


def seed_with_model(engine: Engine, version_key: str = DEFAULT_VERSION_KEY) -> uuid.UUID:
    """Seed the bundled catalogs, register the version's example manifest, and return the version's id."""
    catalogs.seed(engine)
    model_name = version_key.rpartition("@")[0]
    manifests.register_model(engine, manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{model_name}.yaml"))
    with engine.connect() as connection:
        return manifests.resolve_model_version(connection, version_key)


def hardware_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as connection:
        return connection.execute(text("SELECT id FROM hardware_configs WHERE name = :n"), {"n": name}).scalar_one()


def framework_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as connection:
        return connection.execute(text("SELECT id FROM inference_frameworks WHERE name = :n"), {"n": name}).scalar_one()


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per table of the platform, in one round trip."""
    tables = orm.Base.metadata.sorted_tables
    counts = select(*(select(func.count()).select_from(table).scalar_subquery() for table in tables))
    with engine.connect() as connection:
        return dict(zip((table.name for table in tables), connection.execute(counts).one(), strict=True))


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, count(*) FROM benchmark_configs GROUP BY status")).all()
    return {status: count for status, count in rows}


def insert_use_case(
    engine: Engine, subcategory: str = "chatbot", sla: dict | None = None, weights: dict | None = None
) -> uuid.UUID:
    with engine.begin() as connection:
        return connection.execute(
            insert(UseCase)
            .values(
                category="conversational",
                subcategory=subcategory,
                pipeline_tag="text-generation",
                characteristics={"typical_input_tokens": 512, "typical_output_tokens": 256, "sla": sla or {}},
                default_weights=weights or CHATBOT_WEIGHTS,
            )
            .returning(UseCase.id)
        ).scalar_one()


def insert_results(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert the models, versions, hardware and frameworks the rows name (once each), then the results."""
    with engine.begin() as connection:
        for row in rows:
            connection.execute(
                pg_insert(Model)
                .values(id=row["model_id"], name=row["model_name"], architecture="llama", parameters=8_000_000_000)
                .on_conflict_do_nothing()
            )
            connection.execute(
                pg_insert(ModelVersion)
                .values(
                    id=row["model_version_id"],
                    model_id=row["model_id"],
                    version=row["version_key"].split("@", 1)[1],
                    quantization="fp16",
                    quantization_bits=16,
                    format="safetensors",
                    artifact_uri=f"hf://{row['model_name']}",
                    vram_requirement_gb=19.2,
                )
                .on_conflict_do_nothing()
            )
            connection.execute(
                pg_insert(HardwareConfig)
                .values(
                    id=row["hardware_config_id"],
                    name=row["hardware_name"],
                    gpu_type=row["gpu_type"],
                    gpu_count=row["gpu_count"],
                    vram_per_gpu_gb=80,
                    total_vram_gb=80 * row["gpu_count"],
                    cost_per_hour_usd=row["cost_per_hour_usd"],
                    spot_cost_per_hour_usd=row["spot_cost_per_hour_usd"],
                    spot_available=row["spot_available"],
                    cloud_provider="aws",
                    instance_type="p5.48xlarge",
                )
                .on_conflict_do_nothing()
            )
            connection.execute(
                pg_insert(InferenceFramework)
                .values(id=row["framework_id"], name=row["framework_name"], version="0.6")
                .on_conflict_do_nothing()
            )
        connection.execute(
            insert(BenchmarkResult),
            [
                {
                    "id": row["result_id"],
                    "model_version_id": row["model_version_id"],
                    "hardware_config_id": row["hardware_config_id"],
                    "framework_id": row["framework_id"],
                    "benchmark_date": row["benchmark_date"],
                    "workload_type": row["workload_type"],
                    "batch_size": row["batch_size"],
                    "sequence_length": row["sequence_length"],
                    "tensor_parallel": row["tensor_parallel"],
                    "runner": row["runner"],
                    "detailed_metrics": row.get("detailed_metrics", {}),
                    **{column: None if pd.isna(row[column]) else row[column] for column in METRIC_COLUMNS},
                }
                for row in rows
            ],
        )


# --- rows for migration tests, in plain SQL ------------------------------------------------------------------------

_NODES = {  # hardware_configs values over revision 0001's columns
    "L4": "('h', 'L4', 1, 24, 24, 1, 'gcp', 'g2')",
    "8xH100": "('h', 'H100', 8, 80, 640, 90, 'gcp', 'a3')",
}


def insert_schema_rows(connection: Connection, *, node: str = "L4", use_case: bool = False) -> None:
    """One model ('m'), version ('v'), hardware config ('h', an L4 or an 8-GPU H100 node) and framework ('vllm'),
    and the chatbot use case when asked: raw SQL over the columns revision 0001 already had, so that a migration
    test can write them at any revision (the ORM describes only the head)."""
    connection.execute(text("INSERT INTO models (name, architecture, parameters) VALUES ('m', 'llama', 1)"))
    connection.execute(
        text(
            "INSERT INTO model_versions (model_id, version, quantization, quantization_bits, format, artifact_uri,"
            " vram_requirement_gb) SELECT id, 'v', 'fp16', 16, 'safetensors', 'hf://m', 1 FROM models"
        )
    )
    connection.execute(
        text(
            "INSERT INTO hardware_configs (name, gpu_type, gpu_count, vram_per_gpu_gb, total_vram_gb,"
            f" cost_per_hour_usd, cloud_provider, instance_type) VALUES {_NODES[node]}"
        )
    )
    connection.execute(text("INSERT INTO inference_frameworks (name, version) VALUES ('vllm', '0')"))
    if use_case:
        connection.execute(
            text(
                "INSERT INTO use_case_taxonomy (category, subcategory, pipeline_tag) "
                "VALUES ('conversational', 'chatbot', 'text-generation')"
            )
        )
