"""Where the platform keeps its data: one environment variable decides.

``BENCHMARK_PLATFORM_DATABASE_URL`` names an external PostgreSQL; unset, an embedded PostgreSQL (pgserver)
runs from ``$BENCHMARK_PLATFORM_HOME/pgdata`` (default ``./.benchmark_platform``).
"""

from __future__ import annotations

import os
from pathlib import Path

DATABASE_URL_ENV = "BENCHMARK_PLATFORM_DATABASE_URL"
HOME_ENV = "BENCHMARK_PLATFORM_HOME"
DAGSTER_PG_URL_ENV = "BENCHMARK_PLATFORM_DAGSTER_PG_URL"
REPORTS_DIR_ENV = "BENCHMARK_PLATFORM_REPORTS_DIR"


def platform_home() -> Path:
    """The folder holding the embedded database and the Dagster home; created on demand."""
    home = Path(os.environ.get(HOME_ENV) or ".benchmark_platform").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def configured_database_url() -> str | None:
    """The external database URL, or None when the embedded server should be used."""
    url = os.environ.get(DATABASE_URL_ENV, "").strip()
    return url or None


def dagster_home() -> Path:
    path = platform_home() / "dagster"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reports_dir() -> Path:
    """Where the report asset writes: ``BENCHMARK_PLATFORM_REPORTS_DIR`` (a shared volume on Kubernetes), else
    ``$BENCHMARK_PLATFORM_HOME/reports``."""
    configured = os.environ.get(REPORTS_DIR_ENV, "").strip()
    return Path(configured).expanduser().resolve() if configured else platform_home() / "reports"
