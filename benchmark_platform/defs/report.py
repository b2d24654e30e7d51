"""The HTML report as its own asset: drawn from the stored rankings only, so it can be refreshed or retried without
ranking again (and without reading the queue or the planner)."""

import dagster as dg

from benchmark_platform.defs.resources import PlatformDatabase, ReportDestination
from benchmark_platform.report import write_report

GROUP = "report"
REPORT_FILE = "benchmark-report.html"


@dg.asset(
    group_name=GROUP,
    kinds={"html"},
    deps=["model_rankings", "model_use_cases"],
    description="The HTML report (Pareto plots, top configurations, what adaptive benchmarking skipped) drawn from "
    "the stored rankings, written to the report destination (a shared volume on Kubernetes).",
)
def benchmark_report(database: PlatformDatabase, report_destination: ReportDestination) -> dg.MaterializeResult:
    report = write_report(database.get_engine(), report_destination.path(REPORT_FILE))
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(report.path)),
            "url": dg.MetadataValue.url(report.path.as_uri()),
            "use_cases": dg.MetadataValue.int(len(report.use_cases)),
            "configurations": dg.MetadataValue.int(report.configurations),
            "simulated_configurations": dg.MetadataValue.int(report.simulated),
            "bytes": dg.MetadataValue.int(report.bytes),
        }
    )
