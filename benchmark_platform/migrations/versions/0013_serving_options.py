"""Add the serving options (``domain.ServingOptions``) to configs, results and ranked deployments.

``expert_parallel`` (>= 1), ``data_parallel_attention``, ``speculative_method`` (none, mtp, eagle3, ngram),
``kv_cache_dtype`` (auto, fp8) and ``prefix_caching`` join ``benchmark_configs``' ``unique_config`` (a config is
its deployment, options included) and ``deployment_rankings``' deployment key; a result copies them. Rows stored
before this revision get the defaults: a plain deployment, which is what they measured.

Downgrade refuses while any config, result or ranked deployment carries a non-default option: the older schema would
show it as a plain deployment (a result measured with EAGLE-3 read as one without) and two configs that differ only
in their options would break the older unique constraint. Delete those rows first, then downgrade.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SPECULATIVE_METHODS = ("none", "mtp", "eagle3", "ngram")
KV_CACHE_DTYPES = ("auto", "fp8")
_COLUMNS = ("expert_parallel", "data_parallel_attention", "speculative_method", "kv_cache_dtype", "prefix_caching")
_CONFIG_KEY_BEFORE = (
    "model_version_id",
    "hardware_config_id",
    "framework_id",
    "workload_type",
    "batch_size",
    "sequence_length",
    "tensor_parallel",
)
_DEPLOYMENT_BEFORE = (
    "use_case",
    "model_version_id",
    "hardware_config_id",
    "framework_id",
    "tensor_parallel",
    "batch_size",
)
_TABLES = ("benchmark_configs", "benchmark_results", "deployment_rankings")
_NOT_PLAIN = (
    "expert_parallel <> 1 OR data_parallel_attention OR speculative_method <> 'none' OR kv_cache_dtype <> 'auto'"
    " OR prefix_caching"
)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _checks() -> dict[str, str]:
    return {
        "expert_parallel_positive": "expert_parallel >= 1",
        "speculative_method_known": _in("speculative_method", SPECULATIVE_METHODS),
        "kv_cache_dtype_known": _in("kv_cache_dtype", KV_CACHE_DTYPES),
        "dp_attention_needs_expert_parallel": "NOT data_parallel_attention OR expert_parallel > 1",
    }


def upgrade() -> None:
    for table in _TABLES:
        op.add_column(table, sa.Column("expert_parallel", sa.Integer(), server_default="1", nullable=False))
        op.add_column(
            table, sa.Column("data_parallel_attention", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        op.add_column(table, sa.Column("speculative_method", sa.String(20), server_default="none", nullable=False))
        op.add_column(table, sa.Column("kv_cache_dtype", sa.String(20), server_default="auto", nullable=False))
        op.add_column(table, sa.Column("prefix_caching", sa.Boolean(), server_default=sa.false(), nullable=False))
        for name, condition in _checks().items():
            op.create_check_constraint(op.f(f"ck_{table}_{name}"), table, condition)
    op.drop_constraint("unique_config", "benchmark_configs", type_="unique")
    op.create_unique_constraint("unique_config", "benchmark_configs", [*_CONFIG_KEY_BEFORE, *_COLUMNS])
    op.drop_constraint("uq_deployment_rankings_deployment", "deployment_rankings", type_="unique")
    op.create_unique_constraint(
        "uq_deployment_rankings_deployment", "deployment_rankings", [*_DEPLOYMENT_BEFORE, *_COLUMNS]
    )


def downgrade() -> None:
    bind = op.get_bind()
    stored = {
        table: bind.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {_NOT_PLAIN}")).scalar_one()
        for table in _TABLES
    }
    if any(stored.values()):
        counts = ", ".join(f"{count} in {table}" for table, count in stored.items() if count)
        raise RuntimeError(
            f"cannot go below 0013 while rows with non-default serving options are stored ({counts}): the older"
            " schema would read them as plain deployments; delete them first"
        )
    op.drop_constraint("uq_deployment_rankings_deployment", "deployment_rankings", type_="unique")
    op.create_unique_constraint("uq_deployment_rankings_deployment", "deployment_rankings", list(_DEPLOYMENT_BEFORE))
    op.drop_constraint("unique_config", "benchmark_configs", type_="unique")
    op.create_unique_constraint("unique_config", "benchmark_configs", list(_CONFIG_KEY_BEFORE))
    for table in _TABLES:
        for name in _checks():
            op.drop_constraint(op.f(f"ck_{table}_{name}"), table, type_="check")
        for column in reversed(_COLUMNS):
            op.drop_column(table, column)
