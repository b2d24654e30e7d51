"""`benchmark-platform simulate`: what the simulator predicts for one deployment, without touching the database.

Model versions, hardware and frameworks come from the bundled catalogs and example manifests (plus any manifest
named with ``--manifest``): the command needs no database, so it answers in well under a second and never writes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, get_args

import click
from pydantic import ValidationError

from benchmark_platform import catalogs, manifests, matrix, memory
from benchmark_platform.cli.app import EXIT_FAILURE, fail, main
from benchmark_platform.cli.params import bounded_int, finite
from benchmark_platform.domain import (
    HardwareFacts,
    KvCacheDtype,
    ModelFacts,
    ServingOptions,
    SpeculativeMethod,
    deployment_shape,
    framework_facts_from_catalog,
    hardware_facts_from_catalog,
    options_problem,
    serving_options,
)
from benchmark_platform.runners.simulated import roofline
from benchmark_platform.runners.simulated.held_out import held_out_text
from benchmark_platform.runners.simulated.runner import measurement_from_replica
from benchmark_platform.runners.simulated.serving_sim import simulate_serving
from benchmark_platform.runners.simulated.step_costs import PREDICTOR_CHOICES

MIN_REQUEST_RATE = 1e-3  # one request per 17 minutes; below it the simulated window's figures lose their meaning


def _model_facts(extra_manifests: tuple[Path, ...]) -> dict[str, ModelFacts]:
    paths = sorted(manifests.EXAMPLE_MANIFESTS_DIR.glob("*.yaml")) + list(extra_manifests)
    found: dict[str, ModelFacts] = {}
    for manifest in manifests.load_manifests(paths):
        for version in manifest.versions:
            facts = manifests.model_facts(manifest, version)
            found[facts.version_key] = facts
    return found


def _lookup(kind: str, option: str, name: str, known: dict[str, Any]) -> Any:
    if name not in known:
        fail(f"{option}: unknown {kind} {name!r}; known: {', '.join(sorted(known))}")
    return known[name]


def _default_tensor_parallel(model: ModelFacts, hardware: HardwareFacts, context_tokens: int) -> int:
    """The smallest degree that holds the weights and one full-length sequence (what a serving engineer tries)."""
    for degree in matrix.tensor_parallel_options(hardware.gpu_count):
        if memory.fits(model, hardware.vram_per_gpu_gb, degree, context_tokens):
            return degree
    fail(
        f"--model-version: {model.version_key} does not fit {hardware.name} at any tensor-parallel degree "
        f"({', '.join(map(str, matrix.tensor_parallel_options(hardware.gpu_count)))}) with one sequence of "
        f"{context_tokens} tokens"
    )
    raise AssertionError  # unreachable: fail() exits


def _framework_problem(framework: catalogs.FrameworkSpec, model: ModelFacts, hardware: HardwareFacts) -> str | None:
    if hardware.vendor not in framework.vendors:
        return f"{framework.name} does not run on {hardware.vendor} GPUs"
    if model.quantization not in framework.supports_quantizations:
        return f"{framework.name} does not serve {model.quantization} weights"
    if model.format not in framework.supports_formats:
        return f"{framework.name} does not load {model.format} checkpoints"
    return None


# The flag that sets each ``ServingOptions`` field a rule can blame.
OPTION_FLAGS = {"expert_parallel": "--expert-parallel", "speculative_method": "--speculative"}


def _options_problem(
    model: ModelFacts, tensor_parallel: int, framework: catalogs.FrameworkSpec, options: ServingOptions
) -> str | None:
    """Why the serving options cannot run this deployment (the option to blame first), or None."""
    if problem := options_problem(model, tensor_parallel, options):
        field, why = problem
        return f"{OPTION_FLAGS[field]}: {why}"
    method = options.speculative_method
    support = framework.serving_options
    unsupported = [
        (options.expert_parallel > 1 and support.expert_parallel is None, "expert parallelism"),
        (options.data_parallel_attention and support.data_parallel_attention is None, "data-parallel attention"),
        (method != "none" and method not in support.speculative, f"{method} speculation"),
        (options.kv_cache_dtype == "fp8" and support.kv_cache_fp8 is None, "an FP8 KV cache"),
    ]
    if missing := [what for lacking, what in unsupported if lacking]:
        return f"--framework: {framework.name} has no launch flag for {', '.join(missing)}"
    return None


def _print_text(payload: dict[str, Any]) -> None:
    detail = payload["detailed_metrics"]
    deployment, load, cost = detail["deployment"], detail["load"], detail["cost"]
    config = detail["config"]
    if load["concurrency_per_replica"] is not None:
        shape = f"{load['concurrency_per_replica']} concurrent requests per replica"
    else:
        shape = f"{config['request_rate_per_replica']:g} requests/s per replica (Poisson)"
    predictor = detail["predictor"]
    click.echo(
        f"SIMULATED (not a measurement): {config['model_version']} on {config['hardware']} / {config['framework']}, "
        f"{deployment_shape(deployment['tensor_parallel'], serving_options(payload), deployment['replicas'])} "
        f"on {deployment['gpu_count']} GPU(s), "
        f"{shape}, {load['input_tokens']} in / {load['output_tokens']} out tokens"
    )
    click.echo(
        f"  predicted by: {predictor['backend']} {predictor['version']} ({predictor['data_version']})"
        + (f"; {predictor['fallback']}" if predictor["fallback"] else "")
    )
    click.echo(f"  held-out error: {held_out_text(predictor['held_out_error'])}")
    rows = [
        ("TTFT p50 / p90 / p99", f"{payload['ttft_p50_ms']:.1f} / {payload['ttft_p90_ms']:.1f} / "
         f"{payload['ttft_p99_ms']:.1f} ms"),
        ("TPOT p50 / p90 / p99", f"{payload['tpot_p50_ms']:.2f} / {payload['tpot_p90_ms']:.2f} / "
         f"{payload['tpot_p99_ms']:.2f} ms"),
        ("interactivity", f"{payload['interactivity_tokens_sec'] or 0:.1f} tokens/s per user (1000 / TPOT p50)"),
        ("output tokens/s", f"{payload['throughput_tokens_sec']:,.0f} per node, "
         f"{payload['output_tokens_sec_per_gpu']:,.0f} per GPU"),
        ("total tokens/s", f"{payload['total_tokens_sec']:,.0f} per node, "
         f"{payload['total_tokens_sec_per_gpu']:,.0f} per GPU"),
        ("requests/s", f"{payload['rps_sustained']:.2f} per node"),
        ("cost per million tokens", f"${payload['cost_per_million_output_tokens']:.3f} output, "
         f"${payload['cost_per_million_total_tokens']:.3f} total ({cost['price_basis']} "
         f"${cost['hourly_price_usd']:.2f}/h for the node)"),
        ("energy", f"{payload['energy_per_output_token_j']:.3f} J per output token (board power x busy share)"),
        ("GPU busy / memory", f"{payload['gpu_utilization_pct']:.0f} % / "
         f"{detail['replica']['memory_per_gpu_gb']:.1f} GB per GPU "
         f"(KV cache holds {detail['replica']['kv_capacity_tokens']:,} tokens per replica)"),
    ]  # fmt: skip
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        click.echo(f"  {label:<{width}}  {value}")


@main.command("simulate")
@click.option("--model-version", required=True, help="Version key, e.g. llama-3.1-8b@fp16 (bundled manifests).")
@click.option("--hardware", required=True, help="Hardware config name of the catalog, e.g. gcp-h100-sxm-x1.")
@click.option("--framework", required=True, help="Inference framework of the catalog, e.g. vllm.")
@click.option(
    "--tensor-parallel",
    type=bounded_int(1, 64),
    help="GPUs per replica; must divide the node's GPU count [default: the smallest degree that fits].",
)
@click.option("--concurrency", type=bounded_int(1, 4096), help="Concurrent requests per replica [default: 1].")
@click.option(
    "--request-rate",
    type=finite(min=MIN_REQUEST_RATE, max=1e6),
    help=f"Open loop instead: Poisson arrivals per second, per replica (at least {MIN_REQUEST_RATE:g}).",
)
@click.option("--input-tokens", required=True, type=bounded_int(1, 1_048_576), help="Prompt tokens per request.")
@click.option("--output-tokens", required=True, type=bounded_int(1, 131_072), help="Output tokens per request.")
@click.option(
    "--manifest",
    "extra_manifests",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Another model manifest to take versions from (repeatable).",
)
@click.option("--seed", default=0, show_default=True, type=bounded_int(0), help="Simulator seed.")
@click.option(
    "--predictor",
    type=click.Choice(PREDICTOR_CHOICES),
    default="auto",
    show_default=True,
    help="Step-cost backend: auto (the one with the lower validation error for this GPU and engine), roofline "
    "(spec sheets), kernels (measured kernel timings where aiconfigurator-core has them; else the roofline, "
    "and the result says why).",
)
@click.option(
    "--expert-parallel",
    type=bounded_int(1, 64),
    default=1,
    show_default=True,
    help="MoE only: spread the experts over the replica's GPUs (equal to --tensor-parallel).",
)
@click.option("--dp-attention", is_flag=True, help="Data-parallel attention (needs --expert-parallel).")
@click.option(
    "--speculative",
    type=click.Choice(get_args(SpeculativeMethod)),
    default="none",
    show_default=True,
    help="Speculative decoding: mtp and eagle3 need the draft the version's manifest names.",
)
@click.option(
    "--kv-cache-dtype",
    type=click.Choice(get_args(KvCacheDtype)),
    default="auto",
    show_default=True,
    help="The KV cache's element type.",
)
@click.option(
    "--prefix-caching/--no-prefix-caching", default=False, show_default=True, help="Reuse the KV of shared prefixes."
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (keys are result column names).")
def simulate_command(
    model_version: str,
    hardware: str,
    framework: str,
    tensor_parallel: int | None,
    concurrency: int | None,
    request_rate: float | None,
    input_tokens: int,
    output_tokens: int,
    extra_manifests: tuple[Path, ...],
    seed: int,
    predictor: str,
    expert_parallel: int,
    dp_attention: bool,
    speculative: str,
    kv_cache_dtype: str,
    prefix_caching: bool,
    as_json: bool,
) -> None:
    """Predict how one deployment serves a load: every result metric, per node and per GPU. Writes nothing.

    The node runs GPUs / TP replicas; the simulator (continuous batching, chunked prefill, KV-cache admission,
    roofline step costs) simulates one replica, and node figures are replicas x replica. Costs use the node's
    spot price where it has one, else on demand. Exits 2 naming the problem for unknown names, a degree that does
    not divide the node's GPUs, a shape that does not fit in memory, or serving options that cannot run it
    (expert parallelism on a dense model or not over the replica's GPUs, DP attention without it, a draft the
    version lacks, an option the framework has no flag for).

    Example: benchmark-platform simulate --model-version llama-3.1-8b@fp16 --hardware gcp-h100-sxm-x1
    --framework vllm --concurrency 64 --input-tokens 1024 --output-tokens 256
    """
    if concurrency is not None and request_rate is not None:
        fail("--concurrency and --request-rate exclude each other: give one (closed or open loop)")
    if concurrency is None and request_rate is None:
        concurrency = 1
    try:
        models = _model_facts(extra_manifests)
    except manifests.ManifestError as error:
        fail(f"--manifest: {error}")
        return
    model = _lookup("model version", "--model-version", model_version, models)
    hardware_spec = _lookup("hardware", "--hardware", hardware, {h.name: h for h in catalogs.load_hardware()})
    framework_spec = _lookup("framework", "--framework", framework, {f.name: f for f in catalogs.load_frameworks()})
    node = hardware_facts_from_catalog(hardware_spec)
    if problem := _framework_problem(framework_spec, model, node):
        fail(f"--framework: {problem}")
    if matrix.gpu_precision_exclusion(model, node.fp4_tflops is not None) is not None:
        fail(f"--hardware: {model.version_key} is NVFP4 and {node.gpu_type} has no FP4 tensor cores")
    if tensor_parallel is None:
        tensor_parallel = _default_tensor_parallel(model, node, input_tokens + output_tokens)
    elif node.gpu_count % tensor_parallel:
        fail(f"--tensor-parallel: {tensor_parallel} does not divide {node.name}'s {node.gpu_count} GPUs")
    try:
        options = ServingOptions(expert_parallel, dp_attention, speculative, kv_cache_dtype, prefix_caching)
    except ValueError as error:
        fail(f"--dp-attention: {error}")
        return
    if problem := _options_problem(model, tensor_parallel, framework_spec, options):
        fail(problem)
    engine = framework_facts_from_catalog(framework_spec)
    try:
        replica = simulate_serving(
            model,
            node,
            engine,
            tensor_parallel=tensor_parallel,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            concurrency=concurrency,
            request_rate=request_rate,
            seed=seed,
            predictor=predictor,
            options=options,
        )
    except roofline.DoesNotFitError as error:
        fail(f"--tensor-parallel: does not fit: {error}")
        return
    except ValueError as error:
        fail(str(error))
        return
    try:
        measurement = measurement_from_replica(
            replica,
            model,
            node,
            engine,
            tensor_parallel=tensor_parallel,
            concurrency=concurrency,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            seed=seed,
        )
    except ValidationError as error:  # the simulator's own figures out of range: a runtime failure, not bad input
        first = error.errors()[0]
        fail(f"the simulation of this load gave an invalid {first['loc'][0]}: {first['msg']}", EXIT_FAILURE)
        return
    payload = {
        "batch_size": concurrency,
        "sequence_length": input_tokens,
        "tensor_parallel": tensor_parallel,
        **dataclasses.asdict(options),
        **measurement.result_columns(),
    }
    payload["detailed_metrics"]["config"] = {
        "model_version": model.version_key,
        "hardware": node.name,
        "framework": f"{framework_spec.name} {framework_spec.version}",
        "request_rate_per_replica": request_rate,
    }
    if as_json:
        click.echo(json.dumps(payload, indent=2, allow_nan=False))
    else:
        _print_text(payload)
