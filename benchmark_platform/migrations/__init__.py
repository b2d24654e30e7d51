"""Alembic owns the schema. ``ensure_schema`` upgrades a database to head on first use, once per process,
under a PostgreSQL advisory lock so that many workers starting together migrate it exactly once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS_DIR = Path(__file__).parent
_MIGRATION_LOCK_KEY = 0x62656E63  # "benc": an arbitrary advisory-lock id owned by the migrator
# Our own version table, so the schema can share a database with Dagster's storage (which has `alembic_version`).
VERSION_TABLE = "benchmark_platform_alembic_version"
_migrated: set[str] = set()


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


def _run(engine: Engine, action: str, revision: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY})
        getattr(command, action)(alembic_config(connection), revision)


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    _migrated.discard(str(engine.url))
    _run(engine, "downgrade", revision)


def ensure_schema(engine: Engine) -> None:
    """Upgrade to head unless this process already saw the database at head."""
    key = str(engine.url)
    if key in _migrated:
        return
    if current_revision(engine) != head_revision():
        upgrade(engine)
    _migrated.add(key)
