"""Results in from peer tools (GuideLLM, vLLM's serving benchmark, AIPerf) and out as CSV, JSON or Parquet."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import date
from pathlib import Path

import click
from pydantic import ValidationError

from benchmark_platform.cli.app import fail, main


@main.command("import-results")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "source", type=click.Choice(["guidellm", "vllm", "aiperf"]), required=True)
@click.option("--model-version", required=True, help="NAME@VERSION (or id) the measured server ran.")
@click.option("--hardware", required=True, help="Hardware config name, as the catalog has it.")
@click.option("--framework", required=True, help="Inference framework name, as the catalog has it.")
@click.option("--use-case", "workload_type", default="chatbot", show_default=True, help="Use case it measured.")
@click.option("--batch-size", required=True, type=click.IntRange(1, 4096), help="Concurrency the tool ran at.")
@click.option(
    "--tensor-parallel", type=click.IntRange(1, 64), help="GPUs one server replica spans [default: the whole node]."
)
@click.option("--sequence-length", type=click.IntRange(1, 10_000_000), help="Prompt tokens [default: file's mean].")
@click.option("--benchmark-index", default=0, show_default=True, type=click.IntRange(0), help="GuideLLM: which one.")
@click.option("--date", "benchmark_date", type=click.DateTime(["%Y-%m-%d"]), help="Benchmark date [default: today].")
def import_results(
    file: str,
    source: str,
    model_version: str,
    hardware: str,
    framework: str,
    workload_type: str,
    batch_size: int,
    tensor_parallel: int | None,
    sequence_length: int | None,
    benchmark_index: int,
    benchmark_date,
) -> None:
    """Import a peer tool's JSON output as one measured result (runner = measured, the tool recorded).

    Metric names are mapped onto this platform's definitions: GuideLLM's inter_token_latency_ms and AIPerf's
    inter_token_latency are our TPOT (per-request decode average); vLLM's tpot is ours too. A malformed file
    exits 2 naming the field and writes nothing.

    \b
    Example:
        benchmark-platform import-results benchmarks.json --format guidellm \\
            --model-version llama-3.1-8b@bf16 --hardware aws-h100-sxm-x1 --framework vllm --batch-size 16
    """
    from sqlalchemy import select

    from benchmark_platform import database, interop, queue
    from benchmark_platform.manifests import resolve_model_version
    from benchmark_platform.orm import HardwareConfig, InferenceFramework, UseCase
    from benchmark_platform.runners import Measurement, quality

    try:
        imported = interop.parse(source, file, benchmark_index)  # type: ignore[arg-type]
    except interop.ImportFormatError as error:
        fail(str(error))
        return
    length = sequence_length or (round(imported.mean_prompt_tokens) if imported.mean_prompt_tokens else None)
    if not length:
        fail("--sequence-length: the file does not say its prompt length; give it")
        return
    detail = imported.detail | {
        "runner_name": "imported",
        "source_tool": {"name": source, "file": Path(file).name},
        "imported": True,
    }
    detail["quality_flags"] = {
        name: reason
        for name, reason in quality.flags_for(detail).items()
        if name != "too_few_requests" or detail.get("completed_requests") is not None
    }
    try:
        measurement = Measurement(**imported.metrics, detailed_metrics=detail, runner="measured")
    except ValidationError as error:
        first = error.errors()[0]
        fail(f"{file}: {'.'.join(str(part) for part in first['loc']) or 'metrics'}: {first['msg']}")
        return
    engine = database.get_engine()
    with engine.begin() as connection:
        try:
            version_id = resolve_model_version(connection, model_version)
            hardware_id = queue.resolve_hardware(connection, hardware)
        except LookupError as error:
            fail(str(error))
            return
        framework_id = connection.scalar(select(InferenceFramework.id).where(InferenceFramework.name == framework))
        if framework_id is None:
            fail(f"--framework: unknown framework {framework!r}")
            return
        if connection.scalar(select(UseCase.id).where(UseCase.subcategory == workload_type)) is None:
            fail(f"--use-case: unknown use case {workload_type!r}")
            return
        gpu_count = connection.scalar(select(HardwareConfig.gpu_count).where(HardwareConfig.id == hardware_id))
        if tensor_parallel is not None and tensor_parallel > gpu_count:
            fail(f"--tensor-parallel: {tensor_parallel} is more than the {gpu_count} GPUs of {hardware}")
            return
        row = measurement.result_columns() | {
            "tensor_parallel": tensor_parallel or gpu_count,
            "model_version_id": version_id,
            "hardware_config_id": hardware_id,
            "framework_id": framework_id,
            "workload_type": workload_type,
            "batch_size": batch_size,
            "sequence_length": length,
            "benchmark_date": benchmark_date.date() if benchmark_date else date.today(),
        }
        result_id = queue.record_imported(connection, row)
    flags = ", ".join(detail["quality_flags"]) or "none"
    click.echo(f"imported {source} result {result_id} (runner measured; quality flags: {flags})")


@main.command("export-results")
@click.option("--format", "out_format", type=click.Choice(["csv", "json", "parquet"]), default="csv", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="File to write [default: stdout; parquet needs one].")
@click.option("--model-version", help="Only this NAME@VERSION.")
def export_results(out_format: str, out: str | None, model_version: str | None) -> None:
    """Write every result with its configuration columns (version, hardware, framework, use case, batch size,
    sequence length), its runner label, quality flags and source tool.

    \b
    Example:
        benchmark-platform export-results --format parquet --out results.parquet
    """
    import pandas as pd
    from sqlalchemy import text

    from benchmark_platform import database
    from benchmark_platform.interop import EXPORT_COLUMNS
    from benchmark_platform.manifests import resolve_model_version
    from benchmark_platform.runners.base import METRIC_COLUMNS

    if out_format == "parquet" and out is None:
        fail("--out: parquet is binary; give a file")
        return
    if out_format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        fail("--format parquet needs pyarrow: pip install 'benchmark-platform[parquet]'")
        return
    engine = database.get_engine()
    with engine.connect() as connection:
        version_id = None
        if model_version is not None:
            try:
                version_id = resolve_model_version(connection, model_version)
            except LookupError as error:
                fail(str(error))
                return
        rows = connection.execute(
            text(
                "SELECT r.id AS result_id, r.benchmark_date, m.name || '@' || v.version AS version_key,"
                " h.name AS hardware_name, h.gpu_type, h.gpu_count, f.name AS framework_name, r.workload_type,"
                " r.batch_size, r.sequence_length, r.runner,"
                f" {', '.join(f'r.{column}' for column in METRIC_COLUMNS)}, r.quality_flags,"
                " COALESCE(r.detailed_metrics -> 'source_tool' ->> 'name', r.detailed_metrics ->> 'runner_name')"
                " AS source_tool"
                " FROM benchmark_results r JOIN model_versions v ON v.id = r.model_version_id"
                " JOIN models m ON m.id = v.model_id JOIN hardware_configs h ON h.id = r.hardware_config_id"
                " JOIN inference_frameworks f ON f.id = r.framework_id"
                " WHERE CAST(:version AS uuid) IS NULL OR r.model_version_id = CAST(:version AS uuid)"
                " ORDER BY r.benchmark_date, r.created_at"
            ),
            {"version": str(version_id) if version_id else None},
        ).all()
    frame = pd.DataFrame([tuple(row) for row in rows], columns=list(EXPORT_COLUMNS))
    frame["result_id"] = frame["result_id"].astype(str)
    frame["benchmark_date"] = frame["benchmark_date"].astype(str)
    if out_format == "json":
        text_out = json.dumps(frame.to_dict(orient="records"), default=str)
        Path(out).write_text(text_out) if out else click.echo(text_out)
        return
    frame["quality_flags"] = frame["quality_flags"].map(lambda flags: ",".join(sorted(flags or {})))
    if out_format == "parquet":
        frame.to_parquet(out, index=False)
    elif out:
        frame.to_csv(out, index=False)
    else:
        frame.to_csv(sys.stdout, index=False)
