"""Allow ``fp4`` (NVFP4 and MXFP4 checkpoints) as a model version's quantization.

``model_versions.quantization_known`` lists the quantizations a version may have (``orm.QUANTIZATIONS``); FP4 joins
them for the mixture-of-experts models served in FP4 today (gpt-oss's MXFP4 experts, NVFP4 DeepSeek-R1). Going back
down refuses while an fp4 version is stored, naming it: the older constraint cannot hold it, and deleting a version
would delete its results.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BEFORE = ("fp32", "fp16", "bf16", "fp8", "int8", "int4")
_AFTER = (*_BEFORE, "fp4")


def _replace_constraint(quantizations: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_model_versions_quantization_known"), "model_versions", type_="check")
    listed = ", ".join(f"'{name}'" for name in quantizations)
    op.create_check_constraint(
        op.f("ck_model_versions_quantization_known"), "model_versions", f"quantization IN ({listed})"
    )


def upgrade() -> None:
    _replace_constraint(_AFTER)


def downgrade() -> None:
    stored = op.get_bind().execute(
        sa.text(
            "SELECT m.name || '@' || v.version FROM model_versions v JOIN models m ON m.id = v.model_id"
            " WHERE v.quantization = 'fp4' ORDER BY 1"
        )
    )
    if keys := stored.scalars().all():
        raise RuntimeError(
            f"cannot go below 0011 while fp4 versions are stored ({', '.join(keys)}): the older schema has no fp4"
        )
    _replace_constraint(_BEFORE)
