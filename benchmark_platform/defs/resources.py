"""Dagster resources: the platform database."""

import dagster as dg
from sqlalchemy import Engine

from benchmark_platform import database


class PlatformDatabase(dg.ConfigurableResource):
    """The platform's PostgreSQL. Leave ``url`` empty to use BENCHMARK_PLATFORM_DATABASE_URL or the embedded server."""

    url: str | None = None

    def get_engine(self) -> Engine:
        return database.get_engine(self.url or None)
