"""Configuration-level rankings in the database: ``use_case_rankings`` and ``deployment_rankings``.

Until now only the model-level rankings were stored, so the report and the demo's summary ranked the results a
second time. The rankings step now stores, per use case, what its ranking used (weights, counts excluded, notes)
and every deployment it considered: ranked ones with rank, TOPSIS score, Pareto flag and per-criterion closeness,
the others with why they were left out. The report and the demo read these rows and never rank.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "use_case_rankings",
        sa.Column("use_case", sa.String(length=100), nullable=False),
        sa.Column("use_case_id", sa.UUID(), nullable=False),
        sa.Column("weights", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("considered", sa.Integer(), nullable=False),
        sa.Column("excluded", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("notes", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("calculated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["use_case_id"],
            ["use_case_taxonomy.id"],
            name=op.f("fk_use_case_rankings_use_case_id_use_case_taxonomy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("use_case", name=op.f("pk_use_case_rankings")),
    )
    op.create_table(
        "deployment_rankings",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("use_case", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("pareto", sa.Boolean(), nullable=True),
        sa.Column("model_version_id", sa.UUID(), nullable=False),
        sa.Column("hardware_config_id", sa.UUID(), nullable=False),
        sa.Column("framework_id", sa.UUID(), nullable=False),
        sa.Column("tensor_parallel", sa.Integer(), nullable=False),
        sa.Column("replicas", sa.Integer(), nullable=False),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("n_sequence_lengths", sa.Integer(), nullable=False),
        sa.Column("min_sequence_length", sa.Integer(), nullable=False),
        sa.Column("max_sequence_length", sa.Integer(), nullable=False),
        sa.Column("ttft_p90_ms", sa.Float(), nullable=True),
        sa.Column("tpot_p90_ms", sa.Float(), nullable=True),
        sa.Column("throughput_tokens_sec", sa.Float(), nullable=True),
        sa.Column("output_tokens_sec_per_gpu", sa.Float(), nullable=True),
        sa.Column("interactivity_tokens_sec", sa.Float(), nullable=True),
        sa.Column("cost_per_million_tokens", sa.Float(), nullable=True),
        sa.Column("accuracy_score", sa.Float(), nullable=True),
        sa.Column("accuracy_imputed", sa.Boolean(), nullable=False),
        sa.Column("hourly_price_usd", sa.Float(), nullable=True),
        sa.Column("price_basis", sa.String(length=20), nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("latest_benchmark_date", sa.Date(), nullable=True),
        sa.Column(
            "criteria", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
        sa.Column("calculated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('ranked', 'incomplete', 'breaks_sla')", name=op.f("ck_deployment_rankings_status_known")
        ),
        sa.CheckConstraint(
            "(status = 'ranked') = (rank IS NOT NULL AND score IS NOT NULL)",
            name=op.f("ck_deployment_rankings_ranked_has_score"),
        ),
        sa.CheckConstraint("score >= 0 AND score <= 1", name=op.f("ck_deployment_rankings_score_in_unit_range")),
        sa.ForeignKeyConstraint(
            ["use_case"],
            ["use_case_rankings.use_case"],
            name=op.f("fk_deployment_rankings_use_case_use_case_rankings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name=op.f("fk_deployment_rankings_model_version_id_model_versions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["hardware_config_id"],
            ["hardware_configs.id"],
            name=op.f("fk_deployment_rankings_hardware_config_id_hardware_configs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["framework_id"],
            ["inference_frameworks.id"],
            name=op.f("fk_deployment_rankings_framework_id_inference_frameworks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_rankings")),
        sa.UniqueConstraint(
            "use_case",
            "model_version_id",
            "hardware_config_id",
            "framework_id",
            "tensor_parallel",
            "batch_size",
            name="uq_deployment_rankings_deployment",
        ),
    )
    op.create_index("idx_deployment_rankings_use_case_rank", "deployment_rankings", ["use_case", "rank"])


def downgrade() -> None:
    op.drop_index("idx_deployment_rankings_use_case_rank", table_name="deployment_rankings")
    op.drop_table("deployment_rankings")
    op.drop_table("use_case_rankings")
