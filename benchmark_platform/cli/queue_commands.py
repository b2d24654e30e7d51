"""`benchmark-platform populate-matrix`, `worker`, `reap-stale`, `cancel` and `progress`: the benchmark queue."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import uuid

import click
from pydantic import ValidationError

from benchmark_platform import database, planner, queue
from benchmark_platform.cli.app import fail, main
from benchmark_platform.cli.params import MAX_MINUTES, MAX_SECONDS, HttpUrl, bounded_int, finite
from benchmark_platform.manifests import resolve_model_version
from benchmark_platform.progress import watch_queue
from benchmark_platform.runners import RUNNER_NAMES, RUNNERS
from benchmark_platform.worker import WorkerOptions, option_field, run_worker


def _resolve_version(engine: database.Engine, reference: str) -> uuid.UUID:
    """An id or a readable key (llama-3.1-8b@int4-awq); exit 2 with the reason when it names nothing."""
    try:
        with engine.connect() as connection:
            return resolve_model_version(connection, reference)
    except LookupError as error:
        fail(str(error))
        raise  # unreachable: fail() exits


def _stderr(line: str) -> None:
    click.echo(line, err=True)


def _echo_json(payload: object) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=True))


@main.command("populate-matrix")
@click.argument("model_version")
@click.option(
    "--framework",
    "frameworks",
    multiple=True,
    help="Only these frameworks (repeatable); naming one that is "
    "not benchmarked by default, such as emulator, includes it.",
)
@click.option("--hardware", "hardware", multiple=True, help="Only these hardware configs (repeatable).")
@click.option(
    "--exhaustive",
    is_flag=True,
    help="Turn adaptive pruning off for this version: every config runs, skipped ones go back to pending.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def populate_matrix_command(
    model_version: str, frameworks: tuple[str, ...], hardware: tuple[str, ...], exhaustive: bool, as_json: bool
) -> None:
    """Queue every runnable config of MODEL_VERSION (an id or a key such as llama-3.1-8b@int4-awq).

    Configs are hardware × framework × tensor-parallel degree (1, 2, 4, 8 dividing the GPU count; the node runs
    GPUs / TP replicas) × workload × its concurrency sweep × its representative sequence lengths, minus what
    cannot run (the report counts each reason). Running it again adds nothing and changes no status.

    Example: benchmark-platform populate-matrix llama-3.1-8b@int4-awq --json
    """
    engine = database.get_engine()
    version_id = _resolve_version(engine, model_version)
    try:
        report = queue.populate_matrix(engine, version_id, frameworks=frameworks or None, hardware=hardware or None)
    except LookupError as error:
        fail(str(error))
        return
    requeued = queue.exempt_from_pruning(engine, version_id) if exhaustive else 0
    if as_json:
        _echo_json(report.as_dict() | ({"exhaustive": True, "requeued": requeued} if exhaustive else {}))
        return
    if exhaustive:
        click.echo(f"pruning off for this version: every config runs ({requeued} skipped configs back to pending)")
    excluded = ", ".join(f"{reason} {count}" for reason, count in sorted(report.excluded.items())) or "none"
    click.echo(
        f"{report.version_key}: {report.matrix_size} configs in the matrix, {report.created} created, "
        f"{report.existing} already queued ({report.seconds:.2f} s); left out: {excluded}"
    )
    degrees = ", ".join(f"TP{tp} {count}" for tp, count in report.by_tensor_parallel.items())
    if degrees:
        click.echo(f"  by tensor-parallel degree: {degrees}")
    for pair, count in sorted(report.by_hardware_framework.items()):
        click.echo(f"  {pair}: {count}")


def _worker_option(
    name: str, click_type: click.ParamType, *, flag: str | None = None, per_unit: float = 1.0, more_help: str = ""
):
    """A flag for ``WorkerOptions.name`` with the field's default and description (``per_unit`` converts the default,
    e.g. 60 for a flag in minutes): the options are declared once, in the model."""
    field = option_field(name)
    default = field.default if field.default is None or per_unit == 1 else field.default / per_unit
    return click.option(
        flag or f"--{name.replace('_', '-')}",
        name if flag is None else flag.removeprefix("--").replace("-", "_"),
        type=click_type,
        default=default,
        show_default=default is not None,
        help=f"{field.description} {more_help}".strip(),
    )


def _renamed(old: str, new: str, why: str):
    """A flag that no longer exists: refused with what replaced it, so an old script fails loudly, not silently."""

    def refuse(context: click.Context, _param: click.Parameter, value: object) -> None:
        if value is not None:
            raise click.BadParameter(f"{old} is now {new} ({why})", ctx=context)

    return click.option(old, hidden=True, expose_value=False, callback=refuse)


@main.command("worker")
@click.option(
    "--model-version",
    "model_version",
    required=True,
    help="Model version id or key (llama-3.1-8b@int4-awq) whose configs to run.",
)
@_worker_option("hardware", click.STRING)
@_worker_option(
    "claim_batch",
    click.IntRange(1, 1000),
    more_help="Runner defaults: "
    + ", ".join(f"{entry.claim_batch} for {entry.name}" for entry in RUNNERS.values())
    + ".",
)
@_renamed("--batch-size", "--claim-batch", "batch size is a config's concurrency per replica")
@_worker_option("lease_seconds", finite(1, MAX_SECONDS))
@click.option(
    "--runner",
    default=option_field("runner").default,
    show_default=True,
    type=click.Choice(RUNNER_NAMES),
    help=option_field("runner").description,
)
@click.option(
    "--simulate-seconds",
    default=0.0,
    show_default=True,
    type=finite(0, MAX_SECONDS),
    help="simulated runner: wall time it spends per config.",
)
@click.option(
    "--base-url",
    type=HttpUrl(),
    help="openai runner: measure this running OpenAI-compatible server instead of launching the config's framework.",
)
@_worker_option("max_configs", bounded_int())
@_worker_option("max_attempts", bounded_int())
@_worker_option("max_run_seconds", finite(0, MAX_SECONDS / 60, min_open=True), flag="--max-run-minutes", per_unit=60)
@_worker_option("retry_base_seconds", finite(0, MAX_SECONDS))
@_worker_option("worker_id", click.STRING)
@_worker_option("drain_wait_seconds", finite(0, 7 * MAX_SECONDS))
@_worker_option("db_retry_seconds", finite(0, MAX_SECONDS))
@_worker_option("replan_seconds", finite(0, MAX_SECONDS))
@click.option("--no-replan", is_flag=True, help="Never re-run the adaptive planner (the same as --replan-seconds 0).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def worker_command(
    model_version: str,
    hardware: str | None,
    runner: str,
    simulate_seconds: float,
    base_url: str | None,
    max_run_minutes: float,
    no_replan: bool,
    as_json: bool,
    **flags: object,
) -> None:
    """Claim, run and record configs until none is pending for this worker.

    Claims also take back configs whose lease expired (a worker lost with its node), and failed configs come back
    after a backoff: the worker waits for them. SIGTERM or SIGINT (a spot notice, Ctrl-C): nothing new starts, the
    config in flight is abandoned and every unfinished claim goes back to pending without counting an attempt. A
    cancelled config (benchmark-platform cancel) is stopped at the next heartbeat. Results the database cannot take
    go to a spool under the platform home, recorded by the next worker. Drained means nothing of this worker's
    filter is pending, due for a retry or running under anyone's lease (see docs/reliability.md). Exit 0 when
    drained or stopped, 1 on a fatal error (database unreachable too long), 2 on bad input (nothing claimed; a
    --worker-id that holds live claims included), 3 when some results were discarded because a claim was lost, 4
    when the drain wait ended with configs still running under other workers' live leases.

    Example: benchmark-platform worker --model-version llama-3.1-8b@int4-awq --hardware aws-l4-x1 --simulate-seconds 1
    """
    from benchmark_platform.queue import resolve_hardware

    context = click.get_current_context()
    for name in ("simulate_seconds", "base_url"):  # a runner option the chosen runner does not take is refused
        if context.get_parameter_source(name).name != "DEFAULT" and name not in RUNNERS[runner].user_options:
            takers = " and ".join(entry.name for entry in RUNNERS.values() if name in entry.user_options)
            fail(f"--{name.replace('_', '-')} applies to the {takers} runner, not to {runner}")
    if no_replan:
        if context.get_parameter_source("replan_seconds").name != "DEFAULT":
            fail("give --no-replan or --replan-seconds, not both")
        flags["replan_seconds"] = 0.0
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = database.get_engine()
    version_id = _resolve_version(engine, model_version)
    if hardware is not None:  # before the progress watcher starts printing, so that bad input stays one line
        with engine.connect() as connection:
            try:
                resolve_hardware(connection, hardware)
            except LookupError as error:
                fail(str(error))
    stop = threading.Event()
    runner_options = RUNNERS[runner].options_from({"simulate_seconds": simulate_seconds, "base_url": base_url})
    try:
        options = WorkerOptions(
            model_version_id=version_id,
            hardware=hardware,
            max_run_seconds=max_run_minutes * 60,
            runner=runner,
            runner_options=runner_options,
            stop_event=stop,
            **flags,
        )
    except ValidationError as error:
        fail(str(error))
        return
    received: list[str] = []

    def _stop(signum: int, _frame: object) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, _stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        with watch_queue(engine, version_id, f"worker on {hardware or 'every pool'}", echo=_stderr, hardware=hardware):
            summary = run_worker(engine, options)
    except (LookupError, ValueError) as error:
        fail(str(error))
        return
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if as_json:
        _echo_json(
            {**dataclasses.asdict(summary), "exit_code": summary.exit_code, "signal": received[0] if received else None}
        )
    else:
        suffix = f" [{received[0]}]" if received else ""
        click.echo(summary.line() + suffix)
    raise SystemExit(summary.exit_code)


@main.command("reap-stale")
@click.option(
    "--max-preemptions",
    default=queue.DEFAULT_MAX_PREEMPTIONS,
    show_default=True,
    type=bounded_int(),
    help="Expired leases after which a config fails for good.",
)
def reap_stale_command(max_preemptions: int) -> None:
    """Give configs whose lease expired (their worker vanished) back to the queue, on every pool.

    Workers' claims already do this for their own pool; this is for pools no worker looks at. A claim that still
    heartbeats is never reaped, however long it runs. Each counts a preemption (not a failed attempt); past
    --max-preemptions the config fails with a message saying its lease expired.

    Example: benchmark-platform reap-stale
    """
    report = queue.reap(database.get_engine(), max_preemptions=max_preemptions)
    click.echo(
        f"reaped {report.returned_to_pending + report.failed}: {report.returned_to_pending} back to pending, "
        f"{report.failed} failed for good"
    )


@main.command("cancel")
@click.argument("model_version")
@click.option("--hardware", "hardware", multiple=True, help="Only these hardware configs (repeatable).")
@click.option("--framework", "frameworks", multiple=True, help="Only these frameworks (repeatable).")
def cancel_command(model_version: str, hardware: tuple[str, ...], frameworks: tuple[str, ...]) -> None:
    """Cancel MODEL_VERSION's pending and running configs (all, or those of some hardware configs / frameworks).

    Workers running a cancelled config stop it at their next heartbeat; no result is recorded for it.

    Example: benchmark-platform cancel llama-3.1-8b@int4-awq --hardware aws-l4-x1
    """
    from benchmark_platform.queue import resolve_framework, resolve_hardware

    engine = database.get_engine()
    version_id = _resolve_version(engine, model_version)
    try:
        with engine.connect() as connection:
            hardware_ids = [resolve_hardware(connection, name) for name in hardware] or None
            framework_ids = [resolve_framework(connection, name) for name in frameworks] or None
    except LookupError as error:
        fail(str(error))
        return
    report = queue.cancel(engine, version_id, hardware_config_ids=hardware_ids, framework_ids=framework_ids)
    click.echo(f"cancelled {report.pending + report.running}: {report.pending} pending, {report.running} running")


@main.command("progress")
@click.argument("model_version")
@click.option(
    "--window-minutes",
    default=queue.DEFAULT_THROUGHPUT_WINDOW_MINUTES,
    show_default=True,
    type=finite(0, MAX_MINUTES, min_open=True),
    help="Throughput window for the ETA.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def progress_command(model_version: str, window_minutes: float, as_json: bool) -> None:
    """Counts by status (in total and per hardware config), completion % and ETA for MODEL_VERSION.

    Example: benchmark-platform progress llama-3.1-8b@int4-awq --json
    """
    engine = database.get_engine()
    version_id = _resolve_version(engine, model_version)
    report = queue.progress(engine, version_id, window_minutes=window_minutes)
    pruning = queue.pruning_summary(engine, version_id)
    if as_json:
        _echo_json(report.as_dict() | {"pruning": pruning.as_dict()})
        return
    if report.total == 0:
        click.echo("no configs queued for this model version (run populate-matrix first)")
        return
    eta = "unknown (nothing finished recently)" if report.eta_seconds is None else f"{report.eta_seconds / 60:.1f} min"
    statuses = ", ".join(f"{status} {count}" for status, count in sorted(report.by_status.items()))
    click.echo(f"{report.total} configs: {statuses}; {report.percent_complete:.1f}% complete; ETA {eta}")
    if pruning.skipped_by_reason:
        reasons = ", ".join(f"{reason} {count}" for reason, count in pruning.skipped_by_reason.items())
        click.echo(
            f"  skipped by the adaptive planner ({reasons}): about {pruning.gpu_hours_saved:.1f} GPU-hours saved of "
            f"{pruning.gpu_hours_saved + pruning.gpu_hours_to_run:.1f} predicted for the whole matrix "
            "(run times predicted by the simulator); `requeue` puts them back"
        )
    if report.unlinked_results:
        click.echo(
            f"  {report.unlinked_results} unlinked results (measured, recorded from a worker's spool after its claim "
            "was lost; config_id NULL, detailed_metrics.unlinked names the config)"
        )
    for hardware, counts in report.by_hardware.items():
        click.echo(f"  {hardware}: " + ", ".join(f"{status} {count}" for status, count in sorted(counts.items())))
        degrees = report.by_tensor_parallel.get(hardware, {})
        if len(degrees) > 1:
            for tp, tp_counts in degrees.items():
                shown = ", ".join(f"{status} {count}" for status, count in sorted(tp_counts.items()))
                click.echo(f"    TP{tp}: {shown}")


@main.command("plan")
@click.argument("model_version")
def plan_command(model_version: str) -> None:
    """Run the adaptive planner once over MODEL_VERSION: predict, re-order pending configs, skip what cannot matter.

    Workers (Dagster's drains and `benchmark-platform worker`) do this between claims, unless the version is
    benchmarked exhaustively or the worker runs with --no-replan.

    Example: benchmark-platform plan llama-3.1-8b@int4-awq
    """
    from benchmark_platform import adaptive

    engine = database.get_engine()
    report = adaptive.replan(engine, _resolve_version(engine, model_version))
    click.echo(report.line() if report is not None else "another planner is running for this version; try again")


@main.command("requeue")
@click.argument("model_version")
@click.option(
    "--reason",
    type=click.Choice(planner.SKIP_REASONS),
    help="Only configs skipped for this reason [default: every skipped config].",
)
def requeue_command(model_version: str, reason: str | None) -> None:
    """Put configs the adaptive planner skipped back to pending, exempt from further pruning.

    Example: benchmark-platform requeue llama-3.1-8b@int4-awq --reason dominated
    """
    engine = database.get_engine()
    count = queue.requeue_skipped(engine, _resolve_version(engine, model_version), reason)
    click.echo(f"{count} skipped configs back to pending" + (f" (reason {reason})" if reason else ""))
