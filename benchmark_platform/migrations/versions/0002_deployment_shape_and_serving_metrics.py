"""Deployment shape and the field's serving metrics.

``tensor_parallel`` on benchmark_configs and benchmark_results: a config is served by ``gpu_count / tensor_parallel``
replicas of ``tensor_parallel`` GPUs each. Rows from before this revision were simulated with every GPU of the node in
one tensor-parallel group, so they get ``tensor_parallel = gpu_count`` of their hardware. The configs' unique
constraint gains the column (the same workload, batch and length at another degree is another config).

The result metrics that rankings, filters and the report read become columns: total tokens/s per node, output and
total tokens/s per GPU, interactivity (1000 / TPOT p50), cost per million output and total tokens, and energy per
output token. Rows from before stay NULL there (their per-node throughput is still in throughput_tokens_sec).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW_RESULT_METRICS = (
    "total_tokens_sec",
    "output_tokens_sec_per_gpu",
    "total_tokens_sec_per_gpu",
    "interactivity_tokens_sec",
    "cost_per_million_output_tokens",
    "cost_per_million_total_tokens",
    "energy_per_output_token_j",
)
OLD_UNIQUE = (
    "model_version_id",
    "hardware_config_id",
    "framework_id",
    "workload_type",
    "batch_size",
    "sequence_length",
)


def _add_tensor_parallel(table: str) -> None:
    op.add_column(table, sa.Column("tensor_parallel", sa.Integer(), nullable=True))
    op.execute(
        f"UPDATE {table} AS t SET tensor_parallel = h.gpu_count FROM hardware_configs AS h"
        " WHERE h.id = t.hardware_config_id"
    )
    op.alter_column(table, "tensor_parallel", nullable=False)
    op.create_check_constraint(op.f(f"ck_{table}_tensor_parallel_positive"), table, "tensor_parallel > 0")


def upgrade() -> None:
    _add_tensor_parallel("benchmark_configs")
    _add_tensor_parallel("benchmark_results")
    op.drop_constraint("unique_config", "benchmark_configs", type_="unique")
    op.create_unique_constraint("unique_config", "benchmark_configs", [*OLD_UNIQUE, "tensor_parallel"])
    for column in NEW_RESULT_METRICS:
        op.add_column("benchmark_results", sa.Column(column, sa.Float(), nullable=True))


def downgrade() -> None:
    for column in reversed(NEW_RESULT_METRICS):
        op.drop_column("benchmark_results", column)
    # Back to one config per (version, hardware, framework, workload, batch, length): keep the node-wide degree (the
    # shape the old schema meant) and drop the other degrees' configs; their results stay, detached (config_id NULL).
    op.execute(
        "DELETE FROM benchmark_configs AS c USING hardware_configs AS h"
        " WHERE h.id = c.hardware_config_id AND c.tensor_parallel <> h.gpu_count"
    )
    op.drop_constraint("unique_config", "benchmark_configs", type_="unique")
    op.create_unique_constraint("unique_config", "benchmark_configs", list(OLD_UNIQUE))
    for table in ("benchmark_results", "benchmark_configs"):
        op.drop_constraint(op.f(f"ck_{table}_tensor_parallel_positive"), table, type_="check")
        op.drop_column(table, "tensor_parallel")
