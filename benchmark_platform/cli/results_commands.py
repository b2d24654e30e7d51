"""Results in from peer tools (GuideLLM, vLLM's serving benchmark, AIPerf) and out as CSV, JSON or Parquet."""

from __future__ import annotations

import importlib.util
import io
import json
from datetime import date
from pathlib import Path

import click
from pydantic import ValidationError

from benchmark_platform import files
from benchmark_platform.cli.app import EXIT_FAILURE, fail, main
from benchmark_platform.cli.params import output_file

MAX_SEQUENCE_LENGTH = 10_000_000


@main.command("import-results")
@click.argument("file", type=click.Path())
@click.option(
    "--format",
    "source",
    type=click.Choice(["guidellm", "vllm", "aiperf", "inferencex", "mlperf"]),
    required=True,
    help="A peer tool's JSON (one result), or a public source: an InferenceX dump (zip or folder) or API JSON, an "
    "MLPerf Inference round's summary.csv.",
)
@click.option("--model-version", help="NAME@VERSION (or id) the measured server ran (peer tools).")
@click.option("--hardware", help="Hardware config name, as the catalog has it (peer tools).")
@click.option("--framework", help="Inference framework name, as the catalog has it (peer tools).")
@click.option(
    "--use-case",
    "workload_type",
    default="chatbot",
    show_default=True,
    help="Use case it measured (MLPerf: the one its Server and Interactive scenarios are recorded under).",
)
@click.option("--batch-size", type=click.IntRange(1, 4096), help="Concurrency the tool ran at (peer tools).")
@click.option(
    "--tensor-parallel", type=click.IntRange(1, 64), help="GPUs one server replica spans [default: the whole node]."
)
@click.option(
    "--sequence-length", type=click.IntRange(1, MAX_SEQUENCE_LENGTH), help="Prompt tokens [default: file's mean]."
)
@click.option("--benchmark-index", default=0, show_default=True, type=click.IntRange(0), help="GuideLLM: which one.")
@click.option("--date", "benchmark_date", type=click.DateTime(["%Y-%m-%d"]), help="Benchmark date [default: today].")
def import_results(
    file: str,
    source: str,
    model_version: str | None,
    hardware: str | None,
    framework: str | None,
    workload_type: str,
    batch_size: int | None,
    tensor_parallel: int | None,
    sequence_length: int | None,
    benchmark_index: int,
    benchmark_date,
) -> None:
    """Import measured results: a peer tool's JSON output as one result, or a public source's rows (runner =
    measured, the source recorded).

    Peer tools (guidellm, vllm, aiperf) need --model-version, --hardware, --framework and --batch-size. Metric
    names are mapped onto this platform's definitions: GuideLLM's inter_token_latency_ms and AIPerf's
    inter_token_latency are our TPOT (per-request decode average); vLLM's tpot is ours too. A malformed file
    exits 2 naming the field and writes nothing.

    Public sources (inferencex, mlperf) name their hardware, frameworks and models; catalogs/external_names.yaml
    maps them, and rows with an unknown name, an unregistered model version or no catalog instance are counted and
    left out. Latencies are converted to ms; each row keeps its provenance (parallelism, disaggregation, speculative
    method, image, run URL; MLPerf: submitter, division, scenario bounds). Re-importing adds nothing.

    \b
    Examples:
        benchmark-platform import-results benchmarks.json --format guidellm \\
            --model-version llama-3.1-8b@bf16 --hardware aws-h100-sxm-x1 --framework vllm --batch-size 16
        benchmark-platform import-results inferencex-dump-2026-03-01.zip --format inferencex
        benchmark-platform import-results summary.csv --format mlperf --sequence-length 1024
    """
    peer_options = {
        "--model-version": model_version,
        "--hardware": hardware,
        "--framework": framework,
        "--batch-size": batch_size,
        "--tensor-parallel": tensor_parallel,
        "--date": benchmark_date,
    }
    if source in ("inferencex", "mlperf"):
        from benchmark_platform.cli.public_import import import_public

        if given := [option for option, value in peer_options.items() if value is not None]:
            fail(f"{given[0]}: not used with --format {source} (each row names its own)")
            return
        import_public(source, file, workload_type, sequence_length)
        return
    for option in ("--model-version", "--hardware", "--framework", "--batch-size"):
        if peer_options[option] is None:
            fail(f"{option}: required with --format {source}")
            return
    from benchmark_platform import catalogs, database, interop, queue
    from benchmark_platform.manifests import resolve_model_version
    from benchmark_platform.runners import Measurement, quality

    try:
        imported = interop.parse(source, file, benchmark_index)  # type: ignore[arg-type]
    except interop.ImportFormatError as error:
        fail(str(error))
        return
    length = sequence_length or (round(imported.mean_prompt_tokens) if imported.mean_prompt_tokens else None)
    if not length:
        fail(f"--sequence-length: {file} does not say its prompt length; give it")
        return
    if not 1 <= length <= MAX_SEQUENCE_LENGTH:
        fail(f"--sequence-length: {file} gives a mean prompt of {length:.3g} tokens, not in [1, {MAX_SEQUENCE_LENGTH}]")
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
        try:
            framework_id = queue.resolve_framework(connection, framework)
        except LookupError as error:
            fail(f"--framework: {error}")
            return
        if not catalogs.use_case_exists(connection, workload_type):
            fail(f"--use-case: unknown use case {workload_type!r}")
            return
        gpu_count = catalogs.gpu_count(connection, hardware_id)
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
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    callback=lambda _ctx, _param, value: output_file(value),
    help="File to write, replaced whole if it is a regular file [default: stdout; parquet needs one].",
)
@click.option("--model-version", help="Only this NAME@VERSION.")
def export_results(out_format: str, out: Path | None, model_version: str | None) -> None:
    """Write every result with its configuration columns (version, hardware, framework, use case, batch size,
    sequence length), its runner label, quality flags and source tool.

    \b
    Example:
        benchmark-platform export-results --format parquet --out results.parquet
    """
    from benchmark_platform import database
    from benchmark_platform.manifests import resolve_model_version
    from benchmark_platform.ranking.store import load_export_frame

    if out_format == "parquet" and out is None:
        fail("--out: parquet is binary; give a file")
        return
    if out_format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        fail("--format parquet needs pyarrow: pip install 'benchmark-platform[parquet]'")
        return
    engine = database.get_engine()
    version_id = None
    if model_version is not None:
        try:
            with engine.connect() as connection:
                version_id = resolve_model_version(connection, model_version)
        except LookupError as error:
            fail(str(error))
            return
    frame = load_export_frame(engine, version_id)
    frame["result_id"] = frame["result_id"].astype(str)
    frame["benchmark_date"] = frame["benchmark_date"].astype(str)
    if out_format == "json":
        data = json.dumps(frame.to_dict(orient="records"), default=str).encode()
    else:
        frame["quality_flags"] = frame["quality_flags"].map(lambda flags: ",".join(sorted(flags or {})))
        buffer = io.BytesIO()
        if out_format == "parquet":
            frame.to_parquet(buffer, index=False)
        else:
            frame.to_csv(buffer, index=False)
        data = buffer.getvalue()
    if out is None:
        click.echo(data, nl=out_format == "json")
        return
    try:
        files.write_output(out, data)
    except files.FileOutputError as error:
        fail(f"--out {error}", EXIT_FAILURE)
