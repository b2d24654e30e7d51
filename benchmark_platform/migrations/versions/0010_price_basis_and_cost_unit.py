"""Price basis and cost unit per use case: committed-use prices on hardware, the unit and basis a stored ranking used,
the two new costs of a ranked deployment, and ``no_price`` as a reason a deployment is left out.

A use case now states its costs in its own unit ($ per million output or total tokens, $ per 1,000 requests) on its
own price basis (on-demand, spot or reserved); ``use_case_rankings`` records both. Rankings stored before this
revision were costed on spot where available and on demand elsewhere, per million output tokens: their
``price_basis`` and ``cost_unit`` stay null and the store does not read them back (a refresh replaces them).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_STATUSES_BEFORE = "status IN ('ranked', 'incomplete', 'breaks_sla')"
_STATUSES = "status IN ('ranked', 'incomplete', 'no_price', 'breaks_sla')"


def upgrade() -> None:
    op.add_column("hardware_configs", sa.Column("reserved_cost_per_hour_usd", sa.Float(), nullable=True))
    op.add_column("use_case_rankings", sa.Column("price_basis", sa.String(length=20), nullable=True))
    op.add_column("use_case_rankings", sa.Column("cost_unit", sa.String(length=20), nullable=True))
    op.add_column("deployment_rankings", sa.Column("cost_per_million_total_tokens", sa.Float(), nullable=True))
    op.add_column("deployment_rankings", sa.Column("cost_per_thousand_requests", sa.Float(), nullable=True))
    op.drop_constraint(op.f("ck_deployment_rankings_status_known"), "deployment_rankings", type_="check")
    op.create_check_constraint(op.f("ck_deployment_rankings_status_known"), "deployment_rankings", _STATUSES)


def downgrade() -> None:
    op.execute("DELETE FROM deployment_rankings WHERE status = 'no_price'")
    op.drop_constraint(op.f("ck_deployment_rankings_status_known"), "deployment_rankings", type_="check")
    op.create_check_constraint(op.f("ck_deployment_rankings_status_known"), "deployment_rankings", _STATUSES_BEFORE)
    op.drop_column("deployment_rankings", "cost_per_thousand_requests")
    op.drop_column("deployment_rankings", "cost_per_million_total_tokens")
    op.drop_column("use_case_rankings", "cost_unit")
    op.drop_column("use_case_rankings", "price_basis")
    op.drop_column("hardware_configs", "reserved_cost_per_hour_usd")
