"""Add ``use_case_rankings.pruning``: what the adaptive planner skipped of a use case's configs, kept with its ranking.

The report used to ask the queue (and the planner's settings) for that sentence each time it was drawn; now the
rankings step stores it per use case and version (``{"top_k": k, "versions": {version_key: summary}}``), so the
report asset reads only stored rankings and can be refreshed or retried on its own. Rows written before this
revision get ``{}`` (no pruning note) until the rankings are refreshed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 02:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "use_case_rankings",
        sa.Column(
            "pruning", postgresql.JSONB(astext_type=sa.Text()), server_default=sa.text("'{}'::jsonb"), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_column("use_case_rankings", "pruning")
