"""Jobs: benchmarking one model version, refreshing stats, rankings and the report, reaping expired leases."""

from collections.abc import Sequence

import dagster as dg

from benchmark_platform import queue
from benchmark_platform.defs.executors import benchmark_executor
from benchmark_platform.defs.resources import PlatformDatabase

BENCHMARK_RUN_TAGS = {"benchmark-platform/kind": "benchmark"}

benchmark_job = dg.define_asset_job(
    "benchmark_model_version",
    selection=["benchmark_config_matrix", "benchmark_results"],
    executor_def=benchmark_executor(),
    tags=BENCHMARK_RUN_TAGS,
    description="Populate a model version's matrix and drain it with replicas per GPU pool.",
)

RANKING_ASSETS = ["model_rankings", "model_use_cases", "benchmark_report"]  # the report after the rankings it draws

ranking_refresh_job = dg.define_asset_job(
    "refresh_stats_and_rankings",
    selection=["daily_model_stats", *RANKING_ASSETS],
    description="A day's stats (its partition), then the current TOPSIS rankings and report over all results.",
)

rankings_job = dg.define_asset_job(
    "refresh_rankings",
    selection=RANKING_ASSETS,
    description="The current TOPSIS rankings and report, after new benchmark results.",
)


class ReapConfig(dg.Config):
    max_preemptions: int = queue.DEFAULT_MAX_PREEMPTIONS


@dg.op(description="Return claims whose lease expired to pending (or fail them past the preemption limit).")
def reap_stale_configs(context: dg.OpExecutionContext, config: ReapConfig, database: PlatformDatabase) -> None:
    """Only expired leases: a claim that heartbeats is never reaped, however long it runs."""
    report = queue.reap(database.get_engine(), max_preemptions=config.max_preemptions)
    context.log.info(f"{report.returned_to_pending} claims returned to pending, {report.failed} failed for good")


@dg.job(description="Spot recovery: claims of vanished workers go back to the queue.")
def reap_stale_configs_job():
    reap_stale_configs()


def local_benchmark_run_config(
    *,
    hardware: Sequence[str] = (),
    frameworks: Sequence[str] = (),
    replicas_per_pool: int | None = None,
    max_concurrent_steps: int = 4,
    simulate_seconds: float = 0.0,
    preload: bool = True,
) -> dict:
    """Run config for benchmarking on this machine: the matrix optionally limited to some hardware and frameworks,
    replicas as
    separate processes. ``preload`` forks them from a server that imported the code once (seconds saved per step);
    that server lives as long as this process and keeps its environment, so a process that switches databases
    between runs (the tests) passes ``preload=False`` to spawn fresh step processes."""
    runner = {"simulate_seconds": simulate_seconds}
    if replicas_per_pool is not None:
        runner["replicas_per_pool"] = replicas_per_pool
    config = {
        "ops": {"benchmark_config_matrix": {"config": {"hardware": list(hardware), "frameworks": list(frameworks)}}},
        "resources": {"benchmark_runner": {"config": runner}},
    }
    if benchmark_job.executor_def.name != "multiprocess":
        return config  # in_process or k8s: their own defaults
    return config | {
        "execution": {
            "config": {
                "max_concurrent": max_concurrent_steps,
                "start_method": (
                    {"forkserver": {"preload_modules": ["benchmark_platform.definitions"]}}
                    if preload
                    else {"spawn": {}}
                ),
            }
        },
    }
