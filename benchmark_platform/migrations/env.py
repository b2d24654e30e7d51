"""Alembic environment: migrations run on the connection handed over by ``benchmark_platform.migrations``."""

from alembic import context

from benchmark_platform.migrations import VERSION_TABLE
from benchmark_platform.orm import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
