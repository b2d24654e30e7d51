"""The main job end to end on the local instance: what `benchmark-platform demo` runs.

Catalogs and the bundled model versions are materialized, the new-version sensor ticks (adding a partition per
version), the benchmark job runs for the demo's versions on a multiprocess executor (replicas per GPU pool in
parallel, simulated runner), then the day's stats and the rankings; the summary printed at the end is read from the
stored rankings. Everything lands in the Dagster instance that `benchmark-platform dev` opens.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG, SENSOR_NAME_TAG
from pydantic import BaseModel, Field

from benchmark_platform import database, manifests, queue
from benchmark_platform.definitions import defs, execute_benchmark_run
from benchmark_platform.defs.jobs import local_benchmark_run_config, ranking_refresh_job
from benchmark_platform.defs.partitions import model_versions_partitions
from benchmark_platform.defs.reference import reference_assets
from benchmark_platform.defs.sensors import new_model_version_sensor, new_version_run_key
from benchmark_platform.domain import deployment_shape, serving_options
from benchmark_platform.instance import prepare_dagster_home
from benchmark_platform.progress import watch_queue
from benchmark_platform.ranking import criteria, store
from benchmark_platform.ranking.predictors import held_out_block, numbers_label

# Llama-3.1-8B in fp16 and FP8, Llama-3.1-70B in FP8 and one mixture-of-experts version, served by vLLM on three GPU
# pools (a one-GPU L4 node, a one-GPU H100 node and an eight-H100 node, the shape where TP 1 x 8 replicas meets TP 8 x
# 1): a matrix a shared laptop drains in a few minutes (4,330 configs with the serving options). Every use case keeps
# its whole concurrency sweep and representative buckets, and every node every tensor-parallel degree. The MoE version
# is gpt-oss-20b in MXFP4: its 13 GB of weights fit all three pools (the L4 included, where Qwen3-30B-A3B in FP8,
# 31 GB, does not), and its 3.6B active parameters per token keep each simulated config as cheap as the 8B's.
DEMO_VERSIONS = ("llama-3.1-8b@fp16", "llama-3.1-8b@fp8", "llama-3.1-70b@fp8", "gpt-oss-20b@mxfp4")
DEMO_FRAMEWORKS = ("vllm",)
DEMO_HARDWARE = ("gcp-l4-x1", "gcp-h100-sxm-x1", "gcp-h100-sxm-x8")


class DemoOptions(BaseModel):
    versions: Sequence[str] = DEMO_VERSIONS
    hardware: Sequence[str] = DEMO_HARDWARE
    frameworks: Sequence[str] = DEMO_FRAMEWORKS
    replicas_per_pool: int = Field(1, ge=1, le=16)  # a worker per pool: three pools already fill two cores
    max_concurrent_steps: int = Field(4, ge=1, le=64)
    simulate_seconds: float = Field(0.0, ge=0)


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}  # the UI keeps the full event log


def tick_new_version_sensor(instance: dg.DagsterInstance) -> list[dg.RunRequest]:
    """One evaluation of the sensor, applied as the daemon would: partitions added, run requests returned."""
    with dg.build_sensor_context(instance=instance, definitions=defs, resources=defs.resources) as context:
        result = new_model_version_sensor(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return list(result.run_requests or [])


def _run_benchmarks(instance, request: dg.RunRequest, options: DemoOptions, echo: Callable[[str], None]) -> None:
    key = request.partition_key
    engine = database.get_engine()
    with engine.connect() as conn:
        version_id = manifests.resolve_model_version(conn, key)
    with watch_queue(engine, version_id, f"benchmarking {key}", echo=echo):
        result = execute_benchmark_run(
            instance,
            key,
            local_benchmark_run_config(
                hardware=options.hardware,
                frameworks=options.frameworks,
                replicas_per_pool=options.replicas_per_pool,
                max_concurrent_steps=options.max_concurrent_steps,
                simulate_seconds=options.simulate_seconds,
            )
            | QUIET,
            # As the daemon tags a sensor's runs: `dev`'s sensor then sees these requests as done.
            tags={RUN_KEY_TAG: request.run_key, SENSOR_NAME_TAG: new_model_version_sensor.name},
        )
    if not result.success:
        raise RuntimeError(f"benchmark run {result.run_id} for {key} failed; see `benchmark-platform dev` for its logs")
    pruning = queue.pruning_summary(engine, version_id)
    skipped = ", ".join(f"{reason} {count}" for reason, count in pruning.skipped_by_reason.items()) or "none"
    echo(
        f"    {key}: skipped by the adaptive planner: {skipped}; about {pruning.gpu_hours_saved:.0f} of "
        f"{pruning.gpu_hours_saved + pruning.gpu_hours_to_run:.0f} predicted GPU-hours saved"
    )


def print_stored_rankings(echo: Callable[[str], None]) -> None:
    """Per use case, the best deployment of each model version (best first), as the rankings step stored them:
    what to deploy for each model. Nothing is ranked here."""
    engine = database.get_engine()
    rankings = {
        name: store.with_predictors(engine, ranking)
        for name, ranking in store.load_stored_rankings(engine, store.load_use_cases(engine)).items()
    }
    if not rankings:
        echo("\nNo stored rankings: the rankings step has not run.")
        return
    echo(
        "\nBest deployment of each model version per use case, ranked (TP = GPUs per replica; conc = concurrent "
        "requests per replica; [simulated · predictor] = simulator estimate, no GPU measured):"
    )
    for name, ranking in sorted(rankings.items()):
        use_case = ranking.use_case
        cost = criteria.COST_UNITS[use_case.cost_unit]
        echo(f"  {name} (costs: {use_case.cost_statement})")
        for row in ranking.configurations.drop_duplicates("version_key").itertuples():
            echo(
                f"    {row.rank}. {row.version_key} on {row.hardware_name} / {row.framework_name}, "
                f"{deployment_shape(row.tensor_parallel, serving_options(row), row.replicas)}, "
                f"conc {row.batch_size}: "
                f"score {row.score:.3f}, TTFT p90 {row.ttft_p90_ms:.0f} ms, TPOT p90 {row.tpot_p90_ms:.1f} ms, "
                f"{row.output_tokens_sec_per_gpu:,.0f} tok/s/GPU, {row.interactivity_tokens_sec:.0f} tok/s/user, "
                + criteria.cost_text(getattr(row, cost.column), use_case.cost_unit, row.price_basis)
                + f" [{numbers_label('simulated', row.predictor) if row.simulated else 'measured'}]"
            )
        if ranking.configurations.empty:
            echo("    no configuration meets the SLA")
    shown = [ranking.configurations.drop_duplicates("version_key") for ranking in rankings.values()]
    for line in held_out_block(phrases for frame in shown for phrases in frame["held_out"]):
        echo(f"  {line}")


def run_demo(echo: Callable[[str], None] = print, options: DemoOptions | None = None) -> None:
    options = options or DemoOptions()
    logging.getLogger("dagster").setLevel(logging.WARNING)  # the UI keeps every event; the terminal gets a summary
    home = prepare_dagster_home()
    echo(f"Dagster instance: {home} (open it with `benchmark-platform dev`)")
    with dg.DagsterInstance.get() as instance:
        echo("1/4 reference catalogs and the bundled model versions")
        result = dg.materialize(reference_assets, instance=instance, resources=defs.resources, run_config=QUIET)
        for event in result.get_asset_materialization_events():
            materialization = event.step_materialization_data.materialization
            counts = {k: v.value for k, v in materialization.metadata.items() if isinstance(v, dg.IntMetadataValue)}
            echo(f"    {materialization.asset_key.to_user_string()}: {counts}")

        requests = tick_new_version_sensor(instance)
        known = model_versions_partitions.get_partition_keys(dynamic_partitions_store=instance)
        echo(f"2/4 sensor tick: {len(requests)} new model versions requested; {len(known)} partitions in all")
        unknown = sorted(set(options.versions) - set(known))
        if unknown:
            raise ValueError(f"unknown model versions {unknown}; registered: {', '.join(sorted(known))}")

        echo(
            f"3/4 benchmarks of {len(options.versions)} versions on {len(options.hardware)} GPU pools with "
            f"{', '.join(options.frameworks) or 'every framework'}"
        )
        by_key = {request.partition_key: request for request in requests}
        for key in options.versions:
            request = by_key.get(key) or dg.RunRequest(partition_key=key, run_key=new_version_run_key(key))
            _run_benchmarks(instance, request, options, echo)

        today = datetime.now(UTC).date().isoformat()
        echo(f"4/4 daily stats ({today}) and rankings")
        refreshed = defs.resolve_job_def(ranking_refresh_job.name).execute_in_process(
            instance=instance, partition_key=today, raise_on_error=True, run_config=QUIET
        )
        for event in refreshed.get_asset_check_evaluations():
            echo(f"    check {event.check_name}: {'passed' if event.passed else 'FAILED'}")
    print_stored_rankings(echo)
