"""``import-results --format inferencex|mlperf``: read a public source's files within bounds, map and place its rows
(``public_results``) and record them idempotently (``queue.record_public_results``), with a progress bar."""

from __future__ import annotations

import io
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from benchmark_platform import files
from benchmark_platform import public_results as public
from benchmark_platform.cli.app import fail

# A dump's tables are bigger than one tool's result file: about 1,000 bytes and two objects per benchmark row, so
# 300,000 rows; parsed, about 750 MB at files.parse_json's 1,250 bytes per object.
DUMP_MAX_BYTES = 256 << 20
DUMP_MAX_OBJECTS = 600_000
DUMP_TABLES = ("configs.json", "benchmark_results.json", "workflow_runs.json")
_BATCH = 2_000
_NAMES = ("version_key", "hardware_name", "framework_name")  # replaced by their ids before recording
_SHOWN_REASONS = 12


class SourceError(ValueError):
    """The input as a whole is unreadable (not a row of it): exit 2 naming it."""


def _zip_tables(path: str) -> dict[str, bytes]:
    raw = files.read_input(path, max_bytes=DUMP_MAX_BYTES)
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
    except zipfile.BadZipFile as error:
        raise SourceError(f"{path}: not a zip file ({error})") from None
    tables: dict[str, bytes] = {}
    budget = DUMP_MAX_BYTES
    for info in archive.infolist():
        name = Path(info.filename).name
        if name not in DUMP_TABLES or info.is_dir():
            continue
        with archive.open(info) as member:  # read at most the budget left, whatever the header claims
            data = member.read(budget + 1)
        if len(data) > budget:
            raise SourceError(f"{path}: {info.filename} unpacks to more than {DUMP_MAX_BYTES} bytes in all")
        budget -= len(data)
        tables[name] = data
    return tables


def _folder_tables(path: Path) -> dict[str, bytes]:
    return {
        name: files.read_input(path / name, max_bytes=DUMP_MAX_BYTES) for name in DUMP_TABLES if (path / name).exists()
    }


def _json(data: bytes, label: str) -> Any:
    try:
        return files.parse_json(data.decode("utf-8"), label, max_objects=DUMP_MAX_OBJECTS)
    except UnicodeDecodeError:
        raise SourceError(f"{label}: not UTF-8 text") from None


def inferencex_rows(path: str) -> Sequence[Any]:
    """The rows of an InferenceX dump (a zip or a folder of its JSON tables) or of the API's benchmark-row JSON."""
    folder = Path(path)
    if folder.is_dir() or path.endswith(".zip"):
        tables = _folder_tables(folder) if folder.is_dir() else _zip_tables(path)
        missing = [name for name in DUMP_TABLES[:2] if name not in tables]
        if missing:
            raise SourceError(f"{path}: no {missing[0]} (an InferenceX dump holds {' and '.join(DUMP_TABLES[:2])})")
        documents = {name: _json(data, f"{path}/{name}") for name, data in tables.items()}
        return list(
            public.inferencex_dump_rows(
                documents["configs.json"], documents["benchmark_results.json"], documents.get("workflow_runs.json")
            )
        )
    return public.inferencex_api_rows(_json(files.read_input(path, max_bytes=DUMP_MAX_BYTES), path))


def _shapes() -> list[public.UseCaseShape]:
    from benchmark_platform import catalogs

    return [
        public.UseCaseShape(
            use_case.subcategory,
            tuple(use_case.characteristics.sequence_lengths),
            tuple(use_case.characteristics.output_tokens_range),  # type: ignore[arg-type]
        )
        for use_case in catalogs.load_use_cases()
    ]


def _instances() -> list[public.Instance]:
    from benchmark_platform import catalogs

    return [
        public.Instance(spec.name, spec.gpu_type, spec.gpu_count, spec.cost_per_hour_usd)
        for spec in catalogs.load_hardware()
    ]


def import_public(source: str, path: str, interactive_use_case: str, sequence_length: int | None) -> None:
    """Read, map, place and record ``path``; print what was imported and every reason a row was left out."""
    from benchmark_platform import catalogs, database, queue
    from benchmark_platform.manifests import list_version_keys

    names = getattr(catalogs.load_external_names(), source)
    tally = public.ImportTally()
    try:
        if source == "inferencex":
            raw_rows: Sequence[Any] = inferencex_rows(path)
        else:
            if sequence_length is None:
                fail("--sequence-length: required with --format mlperf (the summary does not say prompt lengths)")
                return
            raw_rows = public.mlperf_rows(files.read_text(path, max_bytes=DUMP_MAX_BYTES))
    except (SourceError, public.PublicRowError, files.FileInputError) as error:
        fail(f"{path}: {error}" if isinstance(error, public.PublicRowError) else str(error))
        return
    scenarios = {"Offline": "batch-offline-generation", "Server": interactive_use_case}
    scenarios["Interactive"] = interactive_use_case
    parsed: list[public.PublicRow] = []
    with click.progressbar(raw_rows, label=f"reading {source} rows", file=sys.stderr) as bar:
        for index, raw in enumerate(bar):
            tally.read += 1
            try:
                if isinstance(raw, public.PublicRowError):
                    raise raw
                if source == "inferencex":
                    row = public.parse_inferencex_row(raw, names, tally)
                else:
                    row = public.parse_mlperf_row(raw, names, scenarios, sequence_length or 0, tally)
            except public.PublicRowError as error:
                tally.bad[str(error)] += 1
                if tally.bad.total() == 1:
                    click.echo(f"first bad row: #{index}: {error}", err=True)
                continue
            if row is not None:
                parsed.append(row)
    engine = database.get_engine()
    inserted = 0
    with engine.begin() as connection:
        versions = list_version_keys(connection)
        rows = public.result_rows(parsed, _instances(), _shapes(), set(versions), tally)
        try:
            hardware = {name: queue.resolve_hardware(connection, name) for name in {r["hardware_name"] for r in rows}}
            frameworks = {
                name: queue.resolve_framework(connection, name) for name in {r["framework_name"] for r in rows}
            }
        except LookupError as error:
            fail(str(error))
            return
        for use_case in sorted({row["workload_type"] for row in rows}):
            if not catalogs.use_case_exists(connection, use_case):
                fail(f"--use-case: unknown use case {use_case!r} (run benchmark-platform seed)")
                return
        with click.progressbar(length=len(rows), label="recording", file=sys.stderr) as bar:
            for start in range(0, len(rows), _BATCH):
                batch = [
                    {key: value for key, value in row.items() if key not in _NAMES}
                    | {
                        "model_version_id": versions[row["version_key"]],
                        "hardware_config_id": hardware[row["hardware_name"]],
                        "framework_id": frameworks[row["framework_name"]],
                    }
                    for row in rows[start : start + _BATCH]
                ]
                inserted += queue.record_public_results(connection, batch)
                bar.update(len(batch))
    click.echo(
        f"{source}: {tally.read} rows read, {len(parsed)} mapped, {len(rows)} results placed, {inserted} new "
        f"({len(rows) - inserted} already imported); runner measured"
    )
    lines = tally.lines()
    for line in lines[:_SHOWN_REASONS]:
        click.echo(f"  left out: {line}")
    if len(lines) > _SHOWN_REASONS:
        click.echo(f"  … and {len(lines) - _SHOWN_REASONS} more reasons")
