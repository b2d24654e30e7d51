"""Sensors: new model versions start their benchmarks; unfinished matrices are re-requested until they converge."""

from datetime import datetime, timedelta

import dagster as dg

from benchmark_platform import manifests, queue
from benchmark_platform.defs.jobs import benchmark_job, rankings_job
from benchmark_platform.defs.partitions import model_versions_partitions
from benchmark_platform.defs.resources import PlatformDatabase

MAX_VERSIONS_PER_TICK = 100  # keeps a tick far inside the 60 s sensor evaluation timeout
CURSOR_OVERLAP = timedelta(minutes=10)  # longer than any registration transaction


def new_version_run_key(version_key: str) -> str:
    """The run key of a version's first benchmark run: the daemon never launches two runs with one key."""
    return f"new-version:{version_key}"


@dg.sensor(
    job=benchmark_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Adds a partition for each newly registered model version and requests its matrix and results.",
)
def new_model_version_sensor(context: dg.SensorEvaluationContext, database: PlatformDatabase):
    """A version is new while it has no partition. The cursor (the newest ``created_at`` handled) only bounds the
    scan, minus an overlap: ``created_at`` is when a registration's transaction started, so one that commits late
    can appear behind the cursor. Partition existence and run keys make a repeated tick or a daemon restart request
    nothing twice."""
    after = datetime.fromisoformat(context.cursor) - CURSOR_OVERLAP if context.cursor else None
    rows = manifests.versions_registered_after(database.get_engine(), after)
    new = [row for row in rows if not context.instance.has_dynamic_partition(model_versions_partitions.name, row.key)]
    if len(new) > MAX_VERSIONS_PER_TICK:  # the rest on the next tick, from where this one stopped
        new = new[:MAX_VERSIONS_PER_TICK]
        newest = new[-1].created_at
    else:
        newest = rows[-1].created_at if rows else None
    cursor = newest.isoformat() if newest else context.cursor
    if not new:
        return dg.SensorResult(skip_reason="no new model versions", cursor=cursor)
    keys = [row.key for row in new]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=new_version_run_key(key)) for key in keys],
        dynamic_partitions_requests=[model_versions_partitions.build_add_request(keys)],
        cursor=cursor,
    )


RESUMABLE_RUN_STATUSES = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE}  # a cancel is a person's choice
MAX_FAILED_RUNS_IN_A_ROW = 3


@dg.sensor(
    job=benchmark_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Re-requests benchmark_results for a model version whose last run ended with configs still pending.",
)
def unfinished_matrix_sensor(context: dg.SensorEvaluationContext, database: PlatformDatabase):
    """After a lost spot node the reaper returns its claims to pending; this closes the loop so that every matrix
    converges without a human. One request per ended run (the run key names it), none while a run is queued or live,
    none after a person cancelled the last run, and none once the last three runs in a row failed (that needs a
    person: the runs' logs say why)."""
    pending = queue.progress(database.get_engine()).by_model_version
    requests, gave_up = [], []
    for key, counts in sorted(pending.items()):
        if not counts.get("pending") or not context.instance.has_dynamic_partition(model_versions_partitions.name, key):
            continue
        runs = context.instance.get_runs(
            filters=dg.RunsFilter(job_name=benchmark_job.name, tags={"dagster/partition": key}),
            limit=MAX_FAILED_RUNS_IN_A_ROW,
        )
        if not runs or runs[0].status not in RESUMABLE_RUN_STATUSES:
            continue
        if len(runs) == MAX_FAILED_RUNS_IN_A_ROW and all(r.status == dg.DagsterRunStatus.FAILURE for r in runs):
            gave_up.append(key)
            continue
        requests.append(dg.RunRequest(partition_key=key, run_key=f"resume:{key}:{runs[0].run_id}"))
    if gave_up:
        context.log.warning(f"not resuming after {MAX_FAILED_RUNS_IN_A_ROW} failed runs in a row: {', '.join(gave_up)}")
    if not requests:
        return dg.SkipReason("no unfinished matrix without a live run")
    return requests


@dg.asset_sensor(
    asset_key=dg.AssetKey("benchmark_results"),
    job=rankings_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New benchmark results (any model version) refresh the current rankings and the report.",
)
def rankings_after_new_results(context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry):
    return dg.RunRequest(run_key=f"rankings-after:{asset_event.run_id}")
