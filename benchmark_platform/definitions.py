"""The Dagster code location of benchmark-platform: ``defs`` assembled from one module per concern.

catalogs (reference) → matrix → results (benchmarks) → daily stats → rankings (analytics) → report.

Nothing under ``defs/`` imports this module (it imports them all); what needs the assembled ``defs``, such as running
the benchmark job out of process, lives here.
"""

import dagster as dg

from benchmark_platform.defs.analytics import daily_model_stats, rankings
from benchmark_platform.defs.benchmarks import BenchmarkRunnerResource, benchmark_config_matrix, benchmark_results
from benchmark_platform.defs.checks import asset_checks
from benchmark_platform.defs.jobs import (
    BENCHMARK_RUN_TAGS,
    benchmark_job,
    ranking_refresh_job,
    rankings_job,
    reap_stale_configs_job,
)
from benchmark_platform.defs.reference import reference_assets
from benchmark_platform.defs.report import benchmark_report
from benchmark_platform.defs.resources import PlatformDatabase, ReportDestination
from benchmark_platform.defs.schedules import ranking_refresh, stale_config_reaper
from benchmark_platform.defs.sensors import (
    new_model_version_sensor,
    rankings_after_new_results,
    unfinished_matrix_sensor,
)

defs = dg.Definitions(
    assets=[
        *reference_assets,
        benchmark_config_matrix,
        benchmark_results,
        daily_model_stats,
        rankings,
        benchmark_report,
    ],
    asset_checks=asset_checks,
    jobs=[benchmark_job, ranking_refresh_job, rankings_job, reap_stale_configs_job],
    sensors=[new_model_version_sensor, unfinished_matrix_sensor, rankings_after_new_results],
    schedules=[stale_config_reaper, ranking_refresh],
    resources={
        "database": PlatformDatabase(),
        "benchmark_runner": BenchmarkRunnerResource(),
        "report_destination": ReportDestination(),
    },
)


def benchmark_job_definition() -> dg.JobDefinition:
    """The resolved benchmark job, rebuilt by each step process of an out-of-process executor."""
    return defs.resolve_job_def(benchmark_job.name)


def execute_benchmark_run(
    instance: dg.DagsterInstance, version_key: str, run_config: dict, tags: dict[str, str] | None = None
) -> dg.JobExecutionResult:
    """Run the benchmark job for one model-version partition out of process (the way the daemon would launch it)."""
    return dg.execute_job(
        dg.reconstructable(benchmark_job_definition),
        instance,
        run_config=run_config,
        tags={"dagster/partition": version_key, **BENCHMARK_RUN_TAGS, **(tags or {})},
    )
