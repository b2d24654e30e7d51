"""Adaptive benchmarking: a ``skipped`` status with its reason, a planner exemption flag, and the simulator's
prediction of each config (the planner's input and the residuals' reference).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 23:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_CHECK = "ck_benchmark_configs_status_known"
REASON_CHECK = "ck_benchmark_configs_skipped_has_reason"


def upgrade() -> None:
    op.add_column("benchmark_configs", sa.Column("skip_reason", sa.String(length=50), nullable=True))
    op.add_column(
        "benchmark_configs",
        sa.Column("pruning_exempt", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.add_column("benchmark_configs", sa.Column("prediction", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.drop_constraint(op.f(STATUS_CHECK), "benchmark_configs", type_="check")
    op.create_check_constraint(
        op.f(STATUS_CHECK),
        "benchmark_configs",
        "status IN ('pending', 'running', 'completed', 'failed', 'cancelled', 'skipped')",
    )
    op.create_check_constraint(
        op.f(REASON_CHECK), "benchmark_configs", "status <> 'skipped' OR skip_reason IS NOT NULL"
    )


def downgrade() -> None:
    # Nothing is lost going down: a skipped config was never run, so it becomes pending again.
    op.drop_constraint(op.f(REASON_CHECK), "benchmark_configs", type_="check")
    op.execute("UPDATE benchmark_configs SET status = 'pending' WHERE status = 'skipped'")
    op.drop_constraint(op.f(STATUS_CHECK), "benchmark_configs", type_="check")
    op.create_check_constraint(
        op.f(STATUS_CHECK), "benchmark_configs", "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')"
    )
    op.drop_column("benchmark_configs", "prediction")
    op.drop_column("benchmark_configs", "pruning_exempt")
    op.drop_column("benchmark_configs", "skip_reason")
