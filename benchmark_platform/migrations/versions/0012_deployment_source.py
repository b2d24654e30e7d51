"""Add where a ranked deployment's numbers come from, and the simulator's figures beside measured ones.

``deployment_rankings.source``: ``simulated``, ``measured`` (our runner or a peer tool's import), a public source
(``inferencex``, ``mlperf``) or ``mixed`` (its buckets measured by different sources); rows written before this revision
get ``simulated`` or ``measured`` from their ``simulated`` flag, rows that do not say ``simulated``.
``simulated_ttft_p90_ms``, ``simulated_tpot_p90_ms`` and ``simulated_output_tokens_sec_per_gpu``: for a measured
deployment that also has simulated results of the same shape, what the simulator said (the report shows both);
null otherwise.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 02:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIMULATED_FIGURES = ("simulated_ttft_p90_ms", "simulated_tpot_p90_ms", "simulated_output_tokens_sec_per_gpu")


def upgrade() -> None:
    # A row that does not say where its numbers come from is labelled simulated: the label that claims nothing.
    op.add_column("deployment_rankings", sa.Column("source", sa.String(20), server_default="simulated", nullable=False))
    op.execute("UPDATE deployment_rankings SET source = 'measured' WHERE NOT simulated")
    for column in _SIMULATED_FIGURES:
        op.add_column("deployment_rankings", sa.Column(column, sa.Float(), nullable=True))


def downgrade() -> None:
    for column in (*_SIMULATED_FIGURES, "source"):
        op.drop_column("deployment_rankings", column)
