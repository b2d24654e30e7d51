"""Schedules: spot recovery every 30 minutes, stats and rankings once a day."""

from datetime import timedelta

import dagster as dg

from benchmark_platform.defs.jobs import ranking_refresh_job, reap_stale_configs_job

stale_config_reaper = dg.ScheduleDefinition(
    name="stale_config_reaper",
    job=reap_stale_configs_job,
    cron_schedule="*/30 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Returns expired leases (claims of workers lost with their spot node) to pending, on pools no worker is"
    " claiming from (claims rescue their own pool's). Live claims are never touched, however long they run.",
)


@dg.schedule(
    name="ranking_refresh",
    cron_schedule="15 0 * * *",
    job=ranking_refresh_job,
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: the previous day's stats (that day's partition), then the current rankings and report.",
)
def ranking_refresh(context: dg.ScheduleEvaluationContext):
    day = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(partition_key=day, run_key=f"ranking-refresh:{day}")
