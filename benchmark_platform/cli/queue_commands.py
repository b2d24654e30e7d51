"""`benchmark-platform populate-matrix`, `worker`, `reap-stale` and `progress`: the benchmark queue."""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import uuid

import click
from pydantic import ValidationError
from sqlalchemy import Engine

from benchmark_platform import database, queue
from benchmark_platform.cli.app import fail, main
from benchmark_platform.cli.params import MAX_MINUTES, MAX_SECONDS, bounded_int, finite
from benchmark_platform.manifests import resolve_model_version
from benchmark_platform.progress import watch_queue
from benchmark_platform.runners import RUNNER_NAMES, RUNNERS


def _resolve_version(engine: Engine, reference: str) -> uuid.UUID:
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
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def populate_matrix_command(
    model_version: str, frameworks: tuple[str, ...], hardware: tuple[str, ...], as_json: bool
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
    if as_json:
        _echo_json(report.as_dict())
        return
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


@main.command("worker")
@click.option(
    "--model-version",
    "model_version",
    required=True,
    help="Model version id or key (llama-3.1-8b@int4-awq) whose configs to run.",
)
@click.option("--hardware", help="Hardware config name: only claim that pool's configs (e.g. aws-h100-sxm-x8).")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),
    help="Configs claimed per round trip [default: the runner's, "
    + ", ".join(f"{entry.claim_batch} for {entry.name}" for entry in RUNNERS.values())
    + "].",
)
@click.option(
    "--lease-seconds",
    default=queue.DEFAULT_LEASE_SECONDS,
    show_default=True,
    type=finite(1, MAX_SECONDS),
    help="Lease on claimed configs, renewed by heartbeats.",
)
@click.option("--runner", default="simulated", show_default=True, type=click.Choice(RUNNER_NAMES))
@click.option(
    "--simulate-seconds",
    default=0.0,
    show_default=True,
    type=finite(0, MAX_SECONDS),
    help="Wall time the simulated runner spends per config.",
)
@click.option(
    "--base-url",
    help="openai runner: measure this running OpenAI-compatible server instead of launching the config's framework.",
)
@click.option("--max-configs", type=bounded_int(), help="Stop after this many configs.")
@click.option(
    "--max-attempts",
    default=queue.DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    type=bounded_int(),
    help="Failed attempts before a config fails for good.",
)
@click.option("--worker-id", help="Name recorded in claimed_by (default: host-pid-random).")
@click.option(
    "--db-retry-seconds",
    default=120.0,
    show_default=True,
    type=finite(0, MAX_SECONDS),
    help="How long to keep retrying while the database is unreachable.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def worker_command(
    model_version: str,
    hardware: str | None,
    batch_size: int | None,
    lease_seconds: float,
    runner: str,
    simulate_seconds: float,
    base_url: str | None,
    max_configs: int | None,
    max_attempts: int,
    worker_id: str | None,
    db_retry_seconds: float,
    as_json: bool,
) -> None:
    """Claim, run and record configs until none is pending for this worker.

    SIGTERM or SIGINT (a spot notice, Ctrl-C): nothing new starts, the config in flight is abandoned and every
    unfinished claim goes back to pending without counting an attempt. Exit 0 when drained or stopped, 1 on a
    fatal error (database unreachable too long), 2 on bad input (nothing claimed), 3 when some results were
    discarded because a claim was lost.

    Example: benchmark-platform worker --model-version llama-3.1-8b@int4-awq --hardware aws-l4-x1 --simulate-seconds 1
    """
    from benchmark_platform.worker import WorkerOptions, resolve_hardware, run_worker

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
            batch_size=batch_size,
            lease_seconds=lease_seconds,
            max_attempts=max_attempts,
            runner=runner,
            runner_options=runner_options,
            max_configs=max_configs,
            worker_id=worker_id,
            db_retry_seconds=db_retry_seconds,
            stop_event=stop,
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
    "--timeout-minutes",
    default=queue.DEFAULT_STALE_MINUTES,
    show_default=True,
    type=finite(0, MAX_MINUTES, min_open=True),
    help="Also reap claims running longer than this.",
)
@click.option(
    "--max-attempts",
    default=queue.DEFAULT_MAX_ATTEMPTS,
    show_default=True,
    type=bounded_int(),
    help="Attempts after which a reaped config fails for good.",
)
def reap_stale_command(timeout_minutes: float, max_attempts: int) -> None:
    """Give configs whose worker vanished (lease expired, or running too long) back to the queue.

    Each counts an attempt; past --max-attempts the config fails with a message saying its lease expired.

    Example: benchmark-platform reap-stale --timeout-minutes 120
    """
    report = queue.reap(database.get_engine(), timeout_minutes=timeout_minutes, max_attempts=max_attempts)
    click.echo(
        f"reaped {report.returned_to_pending + report.failed}: {report.returned_to_pending} back to pending, "
        f"{report.failed} failed for good"
    )


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
    report = queue.progress(engine, _resolve_version(engine, model_version), window_minutes=window_minutes)
    if as_json:
        _echo_json(report.as_dict())
        return
    if report.total == 0:
        click.echo("no configs queued for this model version (run populate-matrix first)")
        return
    eta = "unknown (nothing finished recently)" if report.eta_seconds is None else f"{report.eta_seconds / 60:.1f} min"
    statuses = ", ".join(f"{status} {count}" for status, count in sorted(report.by_status.items()))
    click.echo(f"{report.total} configs: {statuses}; {report.percent_complete:.1f}% complete; ETA {eta}")
    for hardware, counts in report.by_hardware.items():
        click.echo(f"  {hardware}: " + ", ".join(f"{status} {count}" for status, count in sorted(counts.items())))
        degrees = report.by_tensor_parallel.get(hardware, {})
        if len(degrees) > 1:
            for tp, tp_counts in degrees.items():
                shown = ", ".join(f"{status} {count}" for status, count in sorted(tp_counts.items()))
                click.echo(f"    TP{tp}: {shown}")
