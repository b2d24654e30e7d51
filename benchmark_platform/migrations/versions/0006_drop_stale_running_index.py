"""Drop ``idx_benchmark_config_stale_running``: no statement reads it any more.

It served the 120-minute claim-age reaper rule (``status = 'running' AND started_at < now() - ...``), which is gone:
the reaper and the claims' rescue take back only expired leases, through ``idx_benchmark_config_lease``
(``lease_expires_at WHERE status = 'running'``). ``started_at`` is now only read as a claim's fencing token, next to
the config's id (the primary key). Every claim still paid for the index: a row entering ``running`` added an entry to
it, so dropping it saves an index insert per claimed config.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 01:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index(
        "idx_benchmark_config_stale_running",
        table_name="benchmark_configs",
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    op.create_index(
        "idx_benchmark_config_stale_running",
        "benchmark_configs",
        ["status", "started_at"],
        unique=False,
        postgresql_where=sa.text("status = 'running'"),
    )
