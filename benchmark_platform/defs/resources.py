"""Dagster resources: the platform database, and where the report is written."""

from pathlib import Path

import dagster as dg

from benchmark_platform import database, settings


class PlatformDatabase(dg.ConfigurableResource):
    """The platform's PostgreSQL. Leave ``url`` empty to use BENCHMARK_PLATFORM_DATABASE_URL or the embedded server."""

    url: str | None = None

    def get_engine(self) -> database.Engine:
        return database.get_engine(self.url or None)


class ReportDestination(dg.ConfigurableResource):
    """The folder the report asset writes to. Leave ``folder`` empty for BENCHMARK_PLATFORM_REPORTS_DIR (set to a
    shared volume in k8s/values.yaml, so the file outlives the run pod) or ``$BENCHMARK_PLATFORM_HOME/reports``."""

    folder: str | None = None

    def path(self, file_name: str) -> Path:
        folder = Path(self.folder).expanduser().resolve() if self.folder else settings.reports_dir()
        folder.mkdir(parents=True, exist_ok=True)
        return folder / file_name
