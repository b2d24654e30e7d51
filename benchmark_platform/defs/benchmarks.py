"""The benchmark assets of a model version: its config matrix, then its results, drained by GPU-pool workers.

``benchmark_results`` is a graph: ``plan_replicas`` counts what each GPU pool has pending and fans out N replicas
per pool; one ``drain_<pool>`` op per hardware config of the catalog (so each carries its own Kubernetes step-pod
tags and Dagster pool) runs the queue worker loop until that pool has nothing pending; ``report_progress`` sums up.
Steps pass no data (``Nothing`` edges): the queue in PostgreSQL is the only shared state, so steps can run as
separate pods without a shared IO manager.
"""

import math
import threading
import time
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from benchmark_platform import adaptive, catalogs, manifests, queue
from benchmark_platform.catalogs import HardwareSpec
from benchmark_platform.defs.partitions import model_versions_partitions
from benchmark_platform.defs.reference import hardware_configs, inference_frameworks, model_catalog, use_case_taxonomy
from benchmark_platform.defs.resources import PlatformDatabase
from benchmark_platform.k8s_config import SpotNodeSettings, pool_name, step_op_tags
from benchmark_platform.runners import runner_entry
from benchmark_platform.worker import WorkerOptions, option_field, run_worker

GROUP = "benchmarks"
FAILED_NAMED_IN_ERROR = 20


def _worker_field(name: str) -> Any:
    """The resource field for ``WorkerOptions.name``: its default and description, declared once in the model."""
    field = option_field(name)
    return Field(default=field.default, description=field.description)


class BenchmarkRunnerResource(dg.ConfigurableResource):
    """How benchmark replicas work the queue: which runner, how many replicas per GPU pool, claim and lease sizes.
    The worker's settings are ``WorkerOptions``' (same names, defaults and descriptions as the worker command)."""

    runner: str = _worker_field("runner")
    simulate_seconds: float = 0.0
    runner_options: dict = {}
    claim_batch: int | None = _worker_field("claim_batch")
    lease_seconds: float = _worker_field("lease_seconds")
    max_attempts: int = _worker_field("max_attempts")
    replan_seconds: float = _worker_field("replan_seconds")
    configs_per_replica: int = 500
    max_replicas_per_pool: int = 4
    replicas_per_pool: int | None = None

    def replicas_for(self, pending: int) -> int:
        """A fixed count if configured, else one replica per ``configs_per_replica`` pending, capped."""
        if pending <= 0:
            return 0
        if self.replicas_per_pool is not None:
            return self.replicas_per_pool
        return min(self.max_replicas_per_pool, math.ceil(pending / self.configs_per_replica))

    def worker_options(self, model_version_id, hardware: str, worker_id: str, stop: threading.Event) -> WorkerOptions:
        options = runner_entry(self.runner).options_from({"simulate_seconds": self.simulate_seconds})
        options.update(self.runner_options)
        return WorkerOptions(
            model_version_id=model_version_id,
            hardware=hardware,
            claim_batch=self.claim_batch,
            lease_seconds=self.lease_seconds,
            max_attempts=self.max_attempts,
            replan_seconds=self.replan_seconds,
            runner=self.runner,
            runner_options=options,
            worker_id=worker_id,
            stop_event=stop,
        )


def model_version_id(context: dg.OpExecutionContext | dg.AssetExecutionContext, database: PlatformDatabase):
    with database.get_engine().connect() as conn:
        return manifests.resolve_model_version(conn, context.partition_key)


class MatrixConfig(dg.Config):
    """Restrict the matrix to some hardware configs or frameworks (names); empty means the whole catalog.
    A later run without a restriction adds the rest: populating is idempotent."""

    hardware: list[str] = []
    frameworks: list[str] = []
    exhaustive: bool = False  # turn adaptive pruning off for this version: every config runs (skipped ones too)


@dg.asset(
    partitions_def=model_versions_partitions,
    group_name=GROUP,
    kinds={"postgres"},
    deps=[hardware_configs, inference_frameworks, use_case_taxonomy, model_catalog],
    description="The version's benchmark configs: every runnable hardware × framework × workload × batch × length.",
)
def benchmark_config_matrix(
    context: dg.AssetExecutionContext, config: MatrixConfig, database: PlatformDatabase
) -> dg.MaterializeResult:
    engine = database.get_engine()
    version_id = model_version_id(context, database)
    report = queue.populate_matrix(
        engine, version_id, hardware=config.hardware or None, frameworks=config.frameworks or None
    )
    if config.exhaustive:
        queue.exempt_from_pruning(engine, version_id)
    planned = adaptive.replan(engine, version_id)
    if planned is not None:
        context.log.info(planned.line())
    pruning = queue.pruning_summary(engine, version_id)
    context.log.info(
        f"{report.version_key}: {report.created} configs created, {report.existing} already there, "
        f"{sum(report.excluded.values())} excluded in {report.seconds:.2f} s"
    )
    counts = pd.Series(report.by_hardware_framework, dtype="int64")
    table = (
        counts.set_axis(pd.MultiIndex.from_tuples([k.split("/", 1) for k in counts.index])).unstack(fill_value=0)
        if len(counts)
        else pd.DataFrame()
    )
    excluded = pd.Series(report.excluded, name="configs").rename_axis("reason").reset_index()
    return dg.MaterializeResult(
        metadata={
            "configs_created": dg.MetadataValue.int(report.created),
            "configs_existing": dg.MetadataValue.int(report.existing),
            "matrix_size": dg.MetadataValue.int(report.matrix_size),
            "configs_excluded": dg.MetadataValue.int(sum(report.excluded.values())),
            "excluded_by_reason": dg.MetadataValue.md(excluded.to_markdown(index=False)),
            "configs_per_hardware_framework": dg.MetadataValue.md(table.to_markdown()),
            "configs_per_tensor_parallel": dg.MetadataValue.json(
                {str(tp): count for tp, count in report.by_tensor_parallel.items()}
            ),
            "populate_seconds": dg.MetadataValue.float(round(report.seconds, 3)),
            "pruning": dg.MetadataValue.text("off (exhaustive)" if config.exhaustive else "adaptive"),
            "skipped_by_reason": dg.MetadataValue.json(pruning.skipped_by_reason),
        }
    )


def _op_suffix(hardware_name: str) -> str:
    return pool_name(hardware_name).replace("-", "_")


def _drain_op(hardware: HardwareSpec, k8s_settings: SpotNodeSettings) -> dg.OpDefinition:
    @dg.op(
        name=f"drain_{_op_suffix(hardware.name)}",
        ins={"start": dg.In(dg.Nothing)},
        out=dg.Out(dg.Nothing),
        tags=step_op_tags(hardware.to_row(), k8s_settings),
        pool=pool_name(hardware.name),
        retry_policy=dg.RetryPolicy(max_retries=2, delay=15),
        description=f"Works the queue for {hardware.name} ({hardware.gpu_count}× {hardware.gpu_type}) until drained.",
    )
    def drain(context: dg.OpExecutionContext, database: PlatformDatabase, benchmark_runner: BenchmarkRunnerResource):
        worker_id = f"{context.run_id[:8]}-{hardware.name}-{context.get_mapping_key()}-{context.retry_number}"
        version_id = model_version_id(context, database)
        # The worker re-plans the version between claims (unless it is exhaustive), as a CLI worker does.
        options = benchmark_runner.worker_options(version_id, hardware.name, worker_id, threading.Event())
        # An interrupt (run terminated, spot pod SIGTERM) unwinds run_worker's finally, which releases every claim.
        summary = run_worker(database.get_engine(), options)
        context.log.info(summary.line())
        if summary.error is not None:
            raise dg.Failure(f"worker {worker_id} gave up: {summary.error}")

    return drain


def _progress_markdown(progress: queue.Progress) -> str:
    frame = pd.DataFrame.from_dict(progress.by_hardware, orient="index").fillna(0).astype(int)
    for status in queue.CONFIG_STATUSES:
        if status not in frame.columns:
            frame[status] = 0
    frame = frame[list(queue.CONFIG_STATUSES)].sort_index()
    frame["percent_complete"] = (100 * frame["completed"] / frame.sum(axis=1)).round(1)
    return frame.rename_axis("hardware").to_markdown()


def _pruning_markdown(pruning: queue.PruningSummary) -> str:
    """How many configs the adaptive planner skipped, why, and the GPU-hours their benchmarks would have taken."""
    if not pruning.skipped_by_reason:
        return f"nothing skipped; {pruning.gpu_hours_to_run:.1f} GPU-hours predicted for the configs that run"
    rows = "\n".join(
        f"| {reason} | {count} | {pruning.gpu_hours_saved_by_reason[reason]:.1f} |"
        for reason, count in pruning.skipped_by_reason.items()
    )
    return (
        f"Skipped {sum(pruning.skipped_by_reason.values())} configs, saving {pruning.gpu_hours_saved:.1f} of "
        f"{pruning.gpu_hours_saved + pruning.gpu_hours_to_run:.1f} predicted GPU-hours (simulated run times).\n\n"
        "| reason | configs | GPU-hours saved |\n| --- | ---: | ---: |\n" + rows
    )


def _report_progress_op(pool_inputs: list[str]) -> dg.OpDefinition:
    @dg.op(ins={name: dg.In(dg.Nothing) for name in pool_inputs} | {"plan": dg.In(dg.Nothing)})
    def report_progress(context: dg.OpExecutionContext, database: PlatformDatabase) -> dict:
        engine = database.get_engine()
        version_id = model_version_id(context, database)
        progress = queue.progress(engine, version_id)
        run_started = context.instance.get_run_stats(context.run_id).start_time or time.time()
        results = queue.result_counts(engine, version_id, since_epoch=run_started)
        failed = queue.failed_configs(engine, version_id, limit=FAILED_NAMED_IN_ERROR)
        pruning = queue.pruning_summary(engine, version_id)
        residuals = pd.DataFrame(adaptive.residual_table(engine))
        wall = max(time.time() - run_started, 1e-3)
        counts = {status: progress.by_status.get(status, 0) for status in queue.CONFIG_STATUSES}
        context.add_output_metadata(
            {
                **{status: dg.MetadataValue.int(n) for status, n in counts.items()},
                "percent_complete": dg.MetadataValue.float(round(progress.percent_complete, 2)),
                "per_hardware_progress": dg.MetadataValue.md(_progress_markdown(progress)),
                "results_this_run": dg.MetadataValue.int(results.recorded_since),
                "configs_per_second": dg.MetadataValue.float(round(results.recorded_since / wall, 2)),
                "wall_seconds": dg.MetadataValue.float(round(wall, 1)),
                "simulated_results": dg.MetadataValue.int(results.simulated),
                "measured_results": dg.MetadataValue.int(results.total - results.simulated),
                "runner": dg.MetadataValue.text(
                    "simulated (roofline model, not measured)" if results.simulated else "measured"
                ),
                "skipped_by_reason": dg.MetadataValue.json(pruning.skipped_by_reason),
                "gpu_hours_saved_by_pruning": dg.MetadataValue.float(round(pruning.gpu_hours_saved, 2)),
                "pruning": dg.MetadataValue.md(_pruning_markdown(pruning)),
                "simulator_residuals": dg.MetadataValue.md(
                    residuals.to_markdown(index=False) if len(residuals) else "no result carries a prediction yet"
                ),
            }
        )
        if counts["failed"]:
            named = "\n".join(f"- {config}" for config in failed)
            more = counts["failed"] - len(failed)
            raise dg.Failure(
                description=f"{counts['failed']} configs failed for good:\n{named}"
                + (f"\n… and {more} more" if more else ""),
                metadata={"failed": counts["failed"]},
            )
        return counts

    return report_progress


def build_benchmark_results(hardware: list[HardwareSpec], k8s_settings: SpotNodeSettings) -> dg.AssetsDefinition:
    """The results graph asset over the given hardware catalog: one drain op per GPU pool."""
    suffixes = {hw.name: _op_suffix(hw.name) for hw in hardware}

    @dg.op(
        ins={"matrix": dg.In(dg.Nothing)},
        out={suffix: dg.DynamicOut(dg.Nothing) for suffix in suffixes.values()} | {"plan": dg.Out(dg.Nothing)},
    )
    def plan_replicas(
        context: dg.OpExecutionContext, database: PlatformDatabase, benchmark_runner: BenchmarkRunnerResource
    ):
        """Fan out replicas for every pool that has pending configs of this model version."""
        progress = queue.progress(database.get_engine(), model_version_id(context, database))
        stranded = {
            name: counts["pending"]
            for name, counts in progress.by_hardware.items()
            if name not in suffixes and counts.get("pending")
        }
        if stranded:  # hardware seeded earlier but gone from this code's catalog: no op can drain it
            context.log.warning(f"pending configs on hardware without a drain op (not in the catalog): {stranded}")
        for name, suffix in suffixes.items():
            pending = progress.by_hardware.get(name, {}).get("pending", 0)
            replicas = benchmark_runner.replicas_for(pending)
            if replicas:
                context.log.info(f"{name}: {pending} pending configs -> {replicas} replicas")
            for index in range(replicas):
                yield dg.DynamicOutput(None, output_name=suffix, mapping_key=f"replica_{index}")
        yield dg.Output(None, output_name="plan")

    drains = {hw.name: _drain_op(hw, k8s_settings) for hw in hardware}
    report_progress = _report_progress_op(list(suffixes.values()))

    @dg.graph_asset(
        name="benchmark_results",
        partitions_def=model_versions_partitions,
        group_name=GROUP,
        kinds={"postgres"},
        ins={"benchmark_config_matrix": dg.AssetIn(dagster_type=dg.Nothing)},
        description="Benchmark results of the version's matrix, drained by replicas per GPU pool.",
    )
    def benchmark_results(benchmark_config_matrix):
        outputs = plan_replicas(benchmark_config_matrix)
        finished = {
            suffixes[name]: getattr(outputs, suffixes[name]).map(lambda start, op=op: op(start)).collect()
            for name, op in drains.items()
        }
        return report_progress(plan=outputs.plan, **finished)

    return benchmark_results


benchmark_results = build_benchmark_results(catalogs.load_hardware(), SpotNodeSettings.from_env())
