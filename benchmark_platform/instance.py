"""The Dagster instance shared by `benchmark-platform dev`, `demo` and the CLI: its home lives under
``$BENCHMARK_PLATFORM_HOME/dagster`` and its storage in PostgreSQL, beside (not inside) the platform's data.

Dagster's storage gets its own database (``<platform database>_dagster``) because both Dagster and the platform keep
an ``alembic_version`` table. ``BENCHMARK_PLATFORM_DAGSTER_PG_URL`` overrides the choice.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from benchmark_platform import database, settings

INSTANCE_TEMPLATE = Path(__file__).with_name("dagster_instance.yaml")


def dagster_storage_url() -> str:
    """Dagster's storage URL (psycopg2 driver), creating its database on the platform's server when missing."""
    explicit = os.environ.get(settings.DAGSTER_PG_URL_ENV, "").strip()
    if explicit:
        return database.with_driver(explicit, "psycopg2")
    platform_url = make_url(database.with_driver(database.database_url(), "psycopg"))
    name = f"{platform_url.database or 'postgres'}_dagster"
    admin = create_engine(platform_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        raise RuntimeError(
            f"could not create Dagster's storage database {name!r} ({error}); create it yourself or set "
            f"{settings.DAGSTER_PG_URL_ENV} to a PostgreSQL database Dagster may use"
        ) from error
    finally:
        admin.dispose()
    return platform_url.set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)


def prepare_dagster_home(home: Path | None = None) -> Path:
    """Point this process (and its children) at the platform's Dagster home and storage."""
    home = home or settings.dagster_home()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_TEMPLATE, home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ[settings.DAGSTER_PG_URL_ENV] = dagster_storage_url()
    # Children (dagster dev, run workers) must find the same platform database: pin the embedded URL too.
    os.environ.setdefault(settings.DATABASE_URL_ENV, database.database_url())
    return home
