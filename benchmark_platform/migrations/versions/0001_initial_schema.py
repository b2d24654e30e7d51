"""Initial schema: every table and index of the design, plus the coordination columns of benchmark_configs.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 21:30:44.978346
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hardware_configs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("gpu_type", sa.String(length=50), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("vram_per_gpu_gb", sa.Integer(), nullable=False),
        sa.Column("total_vram_gb", sa.Integer(), nullable=False),
        sa.Column("cost_per_hour_usd", sa.Float(), nullable=False),
        sa.Column("spot_cost_per_hour_usd", sa.Float(), nullable=True),
        sa.Column("cloud_provider", sa.String(length=20), nullable=False),
        sa.Column("instance_type", sa.String(length=100), nullable=False),
        sa.Column("spot_available", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column(
            "specs",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("gpu_count > 0", name=op.f("ck_hardware_configs_gpu_count_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hardware_configs")),
        sa.UniqueConstraint("name", name=op.f("uq_hardware_configs_name")),
    )
    op.create_index(
        "idx_hardware_configs_vram_cost",
        "hardware_configs",
        ["total_vram_gb", "cost_per_hour_usd", "spot_available"],
        unique=False,
    )
    op.create_table(
        "inference_frameworks",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column(
            "capabilities",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("supports_quantization", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("supports_streaming", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "config_template",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inference_frameworks")),
        sa.UniqueConstraint("name", name=op.f("uq_inference_frameworks_name")),
    )
    op.create_table(
        "models",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("architecture", sa.String(length=100), nullable=False),
        sa.Column("parameters", sa.BigInteger(), nullable=False),
        sa.Column("base_model", sa.String(length=200), nullable=True),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("tags", sa.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("parameters > 0", name=op.f("ck_models_parameters_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
    )
    op.create_index(op.f("ix_models_name"), "models", ["name"], unique=True)
    op.create_table(
        "use_case_taxonomy",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("subcategory", sa.String(length=100), nullable=False),
        sa.Column("pipeline_tag", sa.String(length=100), nullable=False),
        sa.Column(
            "characteristics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "default_weights",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_use_case_taxonomy")),
        sa.UniqueConstraint("subcategory", name=op.f("uq_use_case_taxonomy_subcategory")),
    )
    op.create_table(
        "daily_model_stats",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_id", sa.UUID(), nullable=False),
        sa.Column("stats_date", sa.Date(), nullable=False),
        sa.Column("avg_accuracy", sa.Float(), nullable=True),
        sa.Column("avg_throughput", sa.Float(), nullable=True),
        sa.Column("p95_latency_ms", sa.Float(), nullable=True),
        sa.Column("total_benchmarks", sa.Integer(), nullable=False),
        sa.Column(
            "aggregated_metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_daily_model_stats_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_model_stats")),
        sa.UniqueConstraint("model_id", "stats_date", name="uq_daily_model_stats_model_date"),
    )
    op.create_index(
        "idx_daily_stats_model_date",
        "daily_model_stats",
        ["model_id", sa.literal_column("stats_date DESC")],
        unique=False,
    )
    op.create_table(
        "model_rankings",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_id", sa.UUID(), nullable=False),
        sa.Column("use_case_category", sa.String(length=100), nullable=False),
        sa.Column("composite_score", sa.Float(), nullable=False),
        sa.Column("rank_position", sa.Integer(), nullable=False),
        sa.Column(
            "score_breakdown",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("calculated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "composite_score >= 0 AND composite_score <= 1",
            name=op.f("ck_model_rankings_score_in_unit_range"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_rankings_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_rankings")),
        sa.UniqueConstraint("model_id", "use_case_category", name="uq_model_rankings_model_use_case"),
    )
    op.create_index(
        "idx_model_rankings_use_case",
        "model_rankings",
        [
            "use_case_category",
            sa.literal_column("composite_score DESC"),
            sa.literal_column("calculated_at DESC"),
        ],
        unique=False,
    )
    op.create_table(
        "model_use_cases",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_id", sa.UUID(), nullable=False),
        sa.Column("use_case_id", sa.UUID(), nullable=False),
        sa.Column("suitability_score", sa.Float(), nullable=False),
        sa.Column("recommended", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=True),
        sa.Column(
            "performance_summary",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "suitability_score >= 0 AND suitability_score <= 1",
            name=op.f("ck_model_use_cases_suitability_in_unit_range"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_use_cases_model_id_models"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["use_case_id"],
            ["use_case_taxonomy.id"],
            name=op.f("fk_model_use_cases_use_case_id_use_case_taxonomy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_use_cases")),
        sa.UniqueConstraint("model_id", "use_case_id", name="uq_model_use_cases_model_use_case"),
    )
    op.create_index(
        "idx_models_use_cases_suitability",
        "model_use_cases",
        ["model_id", "use_case_id", sa.literal_column("suitability_score DESC")],
        unique=False,
    )
    op.create_index(
        "idx_recommended_models",
        "model_use_cases",
        ["model_id", "recommended"],
        unique=False,
        postgresql_where=sa.text("recommended = true"),
    )
    op.create_table(
        "model_versions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_id", sa.UUID(), nullable=False),
        sa.Column("version", sa.String(length=100), nullable=False),
        sa.Column("quantization", sa.String(length=10), nullable=False),
        sa.Column("quantization_bits", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("artifact_uri", sa.Text(), nullable=False),
        sa.Column(
            "model_config",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("vram_requirement_gb", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "format IN ('gguf', 'gptq', 'awq', 'safetensors')", name=op.f("ck_model_versions_format_known")
        ),
        sa.CheckConstraint(
            "quantization IN ('fp32', 'fp16', 'bf16', 'fp8', 'int8', 'int4')",
            name=op.f("ck_model_versions_quantization_known"),
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_versions_model_id_models"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("model_id", "version", name="uq_model_versions_model_version"),
    )
    op.create_index(
        "idx_model_versions_vram_quantization",
        "model_versions",
        ["vram_requirement_gb", "quantization_bits", "format"],
        unique=False,
    )
    op.create_index(op.f("ix_model_versions_model_id"), "model_versions", ["model_id"], unique=False)
    op.create_table(
        "benchmark_configs",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_version_id", sa.UUID(), nullable=False),
        sa.Column("hardware_config_id", sa.UUID(), nullable=False),
        sa.Column("framework_id", sa.UUID(), nullable=False),
        sa.Column("workload_type", sa.String(length=100), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("sequence_length", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("priority", sa.Integer(), server_default=sa.text("100"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_message", sa.String(length=1000), nullable=True),
        sa.Column("retry_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')",
            name=op.f("ck_benchmark_configs_status_known"),
        ),
        sa.CheckConstraint(
            "batch_size > 0 AND sequence_length > 0", name=op.f("ck_benchmark_configs_dimensions_positive")
        ),
        sa.ForeignKeyConstraint(
            ["framework_id"],
            ["inference_frameworks.id"],
            name=op.f("fk_benchmark_configs_framework_id_inference_frameworks"),
        ),
        sa.ForeignKeyConstraint(
            ["hardware_config_id"],
            ["hardware_configs.id"],
            name=op.f("fk_benchmark_configs_hardware_config_id_hardware_configs"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_benchmark_configs_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_benchmark_configs")),
        sa.UniqueConstraint(
            "model_version_id",
            "hardware_config_id",
            "framework_id",
            "workload_type",
            "batch_size",
            "sequence_length",
            name="unique_config",
        ),
    )
    op.create_index(
        "idx_benchmark_config_claim",
        "benchmark_configs",
        ["hardware_config_id", "priority", "created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "idx_benchmark_config_lease",
        "benchmark_configs",
        ["lease_expires_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
    # The hot queue table: every status change writes a row version, so vacuum it eagerly.
    op.execute(
        "ALTER TABLE benchmark_configs SET (autovacuum_vacuum_scale_factor = 0.02, "
        "autovacuum_analyze_scale_factor = 0.02, fillfactor = 80)"
    )
    op.create_index(
        "idx_benchmark_config_model_status", "benchmark_configs", ["model_version_id", "status"], unique=False
    )
    op.create_index(
        "idx_benchmark_config_stale_running",
        "benchmark_configs",
        ["status", "started_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
    op.create_index(
        "idx_benchmark_config_status_priority",
        "benchmark_configs",
        ["status", "priority", "created_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.create_table(
        "benchmark_results",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("model_version_id", sa.UUID(), nullable=False),
        sa.Column("hardware_config_id", sa.UUID(), nullable=False),
        sa.Column("framework_id", sa.UUID(), nullable=False),
        sa.Column("config_id", sa.UUID(), nullable=True),
        sa.Column("benchmark_date", sa.Date(), server_default=sa.text("CURRENT_DATE"), nullable=False),
        sa.Column("workload_type", sa.String(length=100), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("sequence_length", sa.Integer(), nullable=False),
        sa.Column("ttft_p50_ms", sa.Float(), nullable=True),
        sa.Column("ttft_p90_ms", sa.Float(), nullable=True),
        sa.Column("ttft_p99_ms", sa.Float(), nullable=True),
        sa.Column("tpot_p50_ms", sa.Float(), nullable=True),
        sa.Column("tpot_p90_ms", sa.Float(), nullable=True),
        sa.Column("tpot_p99_ms", sa.Float(), nullable=True),
        sa.Column("throughput_tokens_sec", sa.Float(), nullable=True),
        sa.Column("rps_sustained", sa.Float(), nullable=True),
        sa.Column("accuracy_score", sa.Float(), nullable=True),
        sa.Column("gpu_utilization_pct", sa.Float(), nullable=True),
        sa.Column("memory_used_gb", sa.Float(), nullable=True),
        sa.Column(
            "detailed_metrics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("runner", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint("runner IN ('measured', 'simulated')", name=op.f("ck_benchmark_results_runner_known")),
        sa.ForeignKeyConstraint(
            ["config_id"],
            ["benchmark_configs.id"],
            name=op.f("fk_benchmark_results_config_id_benchmark_configs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["framework_id"],
            ["inference_frameworks.id"],
            name=op.f("fk_benchmark_results_framework_id_inference_frameworks"),
        ),
        sa.ForeignKeyConstraint(
            ["hardware_config_id"],
            ["hardware_configs.id"],
            name=op.f("fk_benchmark_results_hardware_config_id_hardware_configs"),
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_benchmark_results_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_benchmark_results")),
    )
    op.create_index(
        "idx_benchmark_results_date_workload",
        "benchmark_results",
        ["benchmark_date", "workload_type"],
        unique=False,
    )
    op.create_index(
        "idx_benchmark_results_latency_sla",
        "benchmark_results",
        ["ttft_p90_ms", "throughput_tokens_sec"],
        unique=False,
        postgresql_where=sa.text("ttft_p90_ms <= 300"),
    )
    op.create_index(
        "idx_benchmark_results_model_hardware_framework",
        "benchmark_results",
        ["model_version_id", "hardware_config_id", "framework_id", sa.literal_column("benchmark_date DESC")],
        unique=False,
    )
    op.create_index(
        "uq_benchmark_results_config_id",
        "benchmark_results",
        ["config_id"],
        unique=True,
        postgresql_where=sa.text("config_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_benchmark_results_config_id",
        table_name="benchmark_results",
        postgresql_where=sa.text("config_id IS NOT NULL"),
    )
    op.drop_index("idx_benchmark_results_model_hardware_framework", table_name="benchmark_results")
    op.drop_index(
        "idx_benchmark_results_latency_sla",
        table_name="benchmark_results",
        postgresql_where=sa.text("ttft_p90_ms <= 300"),
    )
    op.drop_index("idx_benchmark_results_date_workload", table_name="benchmark_results")
    op.drop_table("benchmark_results")
    op.drop_index(
        "idx_benchmark_config_status_priority",
        table_name="benchmark_configs",
        postgresql_where=sa.text("status IN ('pending', 'running')"),
    )
    op.drop_index(
        "idx_benchmark_config_stale_running",
        table_name="benchmark_configs",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index("idx_benchmark_config_model_status", table_name="benchmark_configs")
    op.drop_index(
        "idx_benchmark_config_lease",
        table_name="benchmark_configs",
        postgresql_where=sa.text("status = 'running'"),
    )
    op.drop_index(
        "idx_benchmark_config_claim",
        table_name="benchmark_configs",
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("benchmark_configs")
    op.drop_index(op.f("ix_model_versions_model_id"), table_name="model_versions")
    op.drop_index("idx_model_versions_vram_quantization", table_name="model_versions")
    op.drop_table("model_versions")
    op.drop_index(
        "idx_recommended_models", table_name="model_use_cases", postgresql_where=sa.text("recommended = true")
    )
    op.drop_index("idx_models_use_cases_suitability", table_name="model_use_cases")
    op.drop_table("model_use_cases")
    op.drop_index("idx_model_rankings_use_case", table_name="model_rankings")
    op.drop_table("model_rankings")
    op.drop_index("idx_daily_stats_model_date", table_name="daily_model_stats")
    op.drop_table("daily_model_stats")
    op.drop_table("use_case_taxonomy")
    op.drop_index(op.f("ix_models_name"), table_name="models")
    op.drop_table("models")
    op.drop_table("inference_frameworks")
    op.drop_index("idx_hardware_configs_vram_cost", table_name="hardware_configs")
    op.drop_table("hardware_configs")
