"""Add ``idx_benchmark_config_claim_framework``: the preferred-framework claim reads only the rows it returns.

A worker prefers the framework it has loaded (a real runner restarts its inference server to switch). Without a
hardware pool, that claim (``framework_id = :preferred ... ORDER BY priority, created_at``) walked the pending/running
status index and filtered out every other framework's pending row in front of the first preferred one; as a drain
consumes the preferred framework's front, that walk grows with every batch (measured: 9,107 rows removed by the filter,
19 ms of a 25 ms batch, after 3,000 of 43,560 configs). With this index the claim starts at the preferred framework's
first pending row. It is partial on ``status = 'pending'`` like ``idx_benchmark_config_claim``, so a claim (pending ->
running) adds no entry to it; only rows written as pending (populate, retries, rescues, releases) do.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 02:58:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "idx_benchmark_config_claim_framework",
        "benchmark_configs",
        ["framework_id", "priority", "created_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index(
        "idx_benchmark_config_claim_framework",
        table_name="benchmark_configs",
        postgresql_where=sa.text("status = 'pending'"),
    )
