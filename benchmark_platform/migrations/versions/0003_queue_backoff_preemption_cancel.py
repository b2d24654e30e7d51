"""Queue coordination: retry backoff, preemptions counted apart from failures, cancellation.

- ``run_after``: a pending config is not claimed before this time (NULL: at once). A failed attempt sets it to now plus
  an exponential delay with jitter, so a transient fault does not spend every attempt within a second.
- ``preemption_count``: claims lost because the worker vanished (its lease expired: spot node lost, pod killed). They
  are counted apart from ``retry_count`` (failed attempts), with a limit of their own, so that preemptions never use up
  a config's failure budget.
- status ``cancelled``: a person cancelled the config (``benchmark-platform cancel``); a worker running it sees it on
  its next heartbeat and stops.

Claims of expired leases read ``idx_benchmark_config_lease`` (``lease_expires_at WHERE status = 'running'``, from
0001), so no new index is needed for them.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_CHECK = "ck_benchmark_configs_status_known"
OLD_STATUSES = "status IN ('pending', 'running', 'completed', 'failed')"
NEW_STATUSES = "status IN ('pending', 'running', 'completed', 'failed', 'cancelled')"


def upgrade() -> None:
    op.add_column("benchmark_configs", sa.Column("run_after", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "benchmark_configs",
        sa.Column("preemption_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.drop_constraint(op.f(STATUS_CHECK), "benchmark_configs", type_="check")
    op.create_check_constraint(op.f(STATUS_CHECK), "benchmark_configs", NEW_STATUSES)


def downgrade() -> None:
    # The old schema has no cancelled status: such configs go back to pending (they were never measured).
    op.execute(
        "UPDATE benchmark_configs SET status = 'pending', claimed_by = NULL, started_at = NULL, completed_at = NULL,"
        " lease_expires_at = NULL WHERE status = 'cancelled'"
    )
    op.drop_constraint(op.f(STATUS_CHECK), "benchmark_configs", type_="check")
    op.create_check_constraint(op.f(STATUS_CHECK), "benchmark_configs", OLD_STATUSES)
    op.drop_column("benchmark_configs", "preemption_count")
    op.drop_column("benchmark_configs", "run_after")
