"""Quality flags of every result, as a column computed from ``detailed_metrics -> 'quality_flags'``.

A generated column: whatever writes a result (the queue's complete, an import) only puts the flags in its detail,
and the column follows, so no writer can forget it. Ranking and the flagged-results asset check read the column.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

QUALITY_FLAGS_EXPRESSION = "COALESCE(detailed_metrics -> 'quality_flags', '{}'::jsonb)"


def upgrade() -> None:
    op.add_column(
        "benchmark_results",
        sa.Column(
            "quality_flags",
            postgresql.JSONB(astext_type=sa.Text()),
            sa.Computed(QUALITY_FLAGS_EXPRESSION, persisted=True),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("benchmark_results", "quality_flags")
