"""`benchmark-platform report`: one self-contained HTML file with the stored rankings' charts and tables.

The report reads the rankings the rankings step stored and never ranks on its own: when a use case has no stored
ranking yet it exits 2 saying how to compute them, unless ``--refresh-rankings`` asks it to rank and store them
first (``ranking.store.refresh_rankings``, what the rankings asset runs)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from benchmark_platform import database, files
from benchmark_platform.cli.app import fail, main
from benchmark_platform.cli.params import bounded_int, output_file
from benchmark_platform.progress import ProgressReporter
from benchmark_platform.ranking.store import RankingsNotStoredError, refresh_rankings
from benchmark_platform.report import DEFAULT_TOP, ReportScopeError, resolve_scope, write_report

NOT_RANKED_HINT = (
    "run the refresh_rankings job (benchmark-platform dev, or the daily schedule) or pass --refresh-rankings"
)


def _echo_stderr(line: str) -> None:
    click.echo(line, err=True)


@main.command("report")
@click.option(
    "--model-version",
    metavar="KEY",
    help="Limit the report to one model version (e.g. llama-3.1-8b@int4-awq); default: all of them.",
)
@click.option(
    "--use-case",
    "use_cases",
    multiple=True,
    metavar="NAME",
    help="A use case to report (repeatable); default: every use case with results.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    callback=lambda _ctx, _param, value: output_file(value),
    help="The HTML file to write (replaced if it is a regular file; anything else is refused).",
)
@click.option("--top", type=bounded_int(), default=DEFAULT_TOP, show_default=True, help="Rows per top table.")
@click.option(
    "--refresh-rankings",
    "refresh_rankings_first",
    is_flag=True,
    help="Rank every use case's results and store the rankings first (what the rankings asset does).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary instead of text.")
def report(
    model_version: str | None,
    use_cases: tuple[str, ...],
    out: Path,
    top: int,
    refresh_rankings_first: bool,
    as_json: bool,
) -> None:
    """Write a self-contained HTML report (opens without a network) of the stored rankings: per use case,
    throughput- and cost-versus-latency scatter plots with the Pareto front, the top configurations, and one model
    version compared across hardware and frameworks. Simulated numbers are bannered and tagged.

    Exit 2 naming the known values when the model version or a use case is unknown, and exit 2 when no ranking is
    stored yet for the use cases asked for (the report never ranks on its own; --refresh-rankings ranks first).

    \b
    Example:
      benchmark-platform report --use-case chatbot --model-version llama-3.1-8b@int4-awq --out report.html
    """
    engine = database.get_engine()
    chosen = list(use_cases) or None
    try:
        resolve_scope(engine, model_version=model_version, use_cases=chosen)
    except ReportScopeError as error:
        fail(str(error))
    if refresh_rankings_first:
        refresh_rankings(engine)
    progress = ProgressReporter("report use cases", echo=_echo_stderr, interactive=False if as_json else None)
    try:
        summary = write_report(engine, out, model_version=model_version, use_cases=chosen, top=top, progress=progress)
    except RankingsNotStoredError as error:
        fail(f"{error}: {NOT_RANKED_HINT}")
    except files.FileOutputError as error:
        fail(f"--out {error}")
    if as_json:
        click.echo(json.dumps(summary.model_dump(mode="json"), indent=2, sort_keys=True))
        return
    click.echo(
        f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB): {len(summary.use_cases)} use cases, "
        f"{summary.configurations} ranked configurations"
    )
    if summary.simulated:
        click.echo(f"note: {summary.simulated} of them are SIMULATED estimates, marked as such in the report")
