"""Commands to measure any OpenAI-compatible endpoint and to run the local emulator."""

from __future__ import annotations

import json
import threading
import time

import click
from pydantic import ValidationError

from benchmark_platform.cli.app import EXIT_FAILURE, fail, main
from benchmark_platform.cli.params import HttpUrl
from benchmark_platform.runners.openai.profiles import PROFILE_KINDS
from benchmark_platform.runners.openai.protocol import (
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_MAX_LINE_BYTES,
    HARD_MAX_CONCURRENCY,
)


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'input'}: {item['msg']}" for item in error.errors()
    )


@main.command("bench-endpoint")
@click.option(
    "--base-url",
    required=True,
    type=HttpUrl(),
    help="Server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is fine).",
)
@click.option("--model", "model", required=True, help="Model name to put in requests (as /v1/models lists it).")
@click.option(
    "--profile",
    type=click.Choice(PROFILE_KINDS),
    help="Load shape [default: sla-search with --goal, replay with --dataset trace, poisson with --request-rate, "
    "else concurrent]. sweep: synchronous, throughput, then --sweep-points rates between; sla-search: the highest "
    "load meeting every --goal. An option the chosen profile would ignore is refused.",
)
@click.option("--concurrency", default=1, show_default=True, type=int, help="Users (closed loop) or in-flight cap.")
@click.option(
    "--max-concurrency",
    default=DEFAULT_MAX_CONCURRENCY,
    show_default=True,
    type=click.IntRange(1, HARD_MAX_CONCURRENCY),
    help="Ceiling on --concurrency: each request in flight holds a socket and up to one stream line in memory.",
)
@click.option(
    "--max-line-bytes",
    default=DEFAULT_MAX_LINE_BYTES,
    show_default=True,
    type=click.IntRange(1024, 16 * 1024 * 1024),
    help="Longest stream line accepted; a longer one fails the request.",
)
@click.option("--num-requests", default=100, show_default=True, type=int, help="Measured requests (after warm-up).")
@click.option("--duration", "duration_seconds", type=float, help="Stop issuing requests after this many seconds.")
@click.option("--input-tokens", required=True, help="Prompt tokens: N, LOW-HIGH (uniform) or MEAN~STD (normal).")
@click.option("--output-tokens", required=True, help="Output tokens (max_tokens, ignore_eos): N, LOW-HIGH, MEAN~STD.")
@click.option("--request-rate", type=float, help="Open loop: arrivals at this many requests/s.")
@click.option("--burstiness", default=1.0, show_default=True, help="Gamma shape of arrival gaps (1 = Poisson).")
@click.option("--sweep-points", default=4, show_default=True, help="Rates between synchronous and throughput.")
@click.option(
    "--goal",
    "goals",
    multiple=True,
    help="Latency goal, e.g. ttft_p90_ms=500 (repeatable): implies --profile sla-search; with another profile the "
    "goals only set which requests count in SLO attainment.",
)
@click.option("--search-by", type=click.Choice(["concurrency", "rate"]), default="concurrency", show_default=True)
@click.option("--search-max", default=256.0, show_default=True, help="Highest concurrency or rate the search tries.")
@click.option("--repeats", default=1, show_default=True, help="Runs per load, for means and 95% intervals.")
@click.option("--client-processes", default=1, show_default=True, help="Client processes sharing the load.")
@click.option("--no-oversaturation-stop", is_flag=True, help="Do not stop open-loop runs whose queue keeps growing.")
@click.option("--no-server-metrics", is_flag=True, help="Do not sample the server's Prometheus /metrics.")
@click.option("--dataset", type=click.Choice(["synthetic", "multiturn", "trace"]), default="synthetic")
@click.option("--shared-prefix", default=0.0, show_default=True, help="Share of each prompt common to all (0-1).")
@click.option("--trace", "trace_path", type=click.Path(), help="JSON Lines trace (timestamp, input_tokens, ...).")
@click.option("--time-scale", default=1.0, show_default=True, help="Multiply the trace's arrival times by this.")
@click.option("--turns", default=4, show_default=True, help="Turns per multi-turn session.")
@click.option("--warmup-requests", type=int, help="Unmeasured requests sent first [default: the concurrency].")
@click.option("--chat", is_flag=True, help="Use /v1/chat/completions instead of /v1/completions.")
@click.option("--no-ignore-eos", is_flag=True, help="Do not send ignore_eos (for servers that reject it).")
@click.option("--timeout", "request_timeout_seconds", default=120.0, show_default=True, help="Per-request limit (s).")
@click.option("--max-error-fraction", default=0.05, show_default=True, help="Fail the run above this error share.")
@click.option("--sla-ttft-ms", type=float, help="TTFT limit a request must meet to count in goodput.")
@click.option("--sla-tpot-ms", type=float, help="TPOT limit a request must meet to count in goodput.")
@click.option("--accuracy-tasks", default=0, show_default=True, help="Score this many bundled exact-match tasks.")
@click.option("--seed", default=0, show_default=True, help="Seed of prompts and arrivals.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (benchmark_results column names); a list for sweeps.")
def bench_endpoint(as_json: bool, no_ignore_eos: bool, **options: object) -> None:
    """Measure an OpenAI-compatible streaming server (vLLM, TGI, LMDeploy, SGLang, the emulator).

    TTFT, TPOT, ITL and E2E percentiles (p50 to p99.9), output tokens/s, requests/s, goodput and SLO attainment,
    as vLLM's serving benchmark measures them, under a load profile; quality flags say when a figure is not to be
    trusted. Exit code 1 when the run fails (too many errors, server unreachable), 2 on bad input.

    \b
    Examples:
        benchmark-platform bench-endpoint --base-url http://127.0.0.1:8000 \\
            --model meta-llama/Llama-3.1-8B-Instruct --concurrency 16 --num-requests 200 \\
            --input-tokens 512 --output-tokens 128 --json
        benchmark-platform bench-endpoint --base-url http://127.0.0.1:8000 --model m --profile sla-search \\
            --goal ttft_p90_ms=500 --goal tpot_p90_ms=50 --input-tokens 256-1024 --output-tokens 128
    """
    from benchmark_platform.runners.base import RunnerError
    from benchmark_platform.runners.openai.datasets import DatasetError, DatasetSpec, LengthDistribution
    from benchmark_platform.runners.openai.goals import parse_goal
    from benchmark_platform.runners.openai.profiles import ProfileSettings, measure_profile
    from benchmark_platform.runners.openai.protocol import LoadSettings

    context = click.get_current_context()
    given = {name for name in context.params if context.get_parameter_source(name).name != "DEFAULT"}
    profile_options = {
        name: options.pop(name)
        for name in ("profile", "request_rate", "burstiness", "sweep_points", "goals", "search_by", "search_max")
        + ("repeats", "client_processes", "no_oversaturation_stop", "no_server_metrics", "dataset", "shared_prefix")
        + ("trace_path", "time_scale", "turns")
    }
    dataset_kind = profile_options["dataset"]
    profile_kind = profile_options["profile"] or _default_profile(
        bool(profile_options["goals"]), profile_options["request_rate"] is not None, dataset_kind
    )
    unused = _unused_options(given, profile_kind, profile_options["search_by"], dataset_kind)
    if unused:
        fail("; ".join(unused))
        return
    try:
        inputs = LengthDistribution.parse(str(options.pop("input_tokens")), "input_tokens")
        outputs = LengthDistribution.parse(str(options.pop("output_tokens")), "output_tokens")
        goals = dict(parse_goal(goal) for goal in profile_options["goals"])
        dataset = DatasetSpec(
            kind=dataset_kind,
            input_tokens=inputs,
            output_tokens=outputs,
            shared_prefix_fraction=profile_options["shared_prefix"],
            trace_path=profile_options["trace_path"],
            time_scale=profile_options["time_scale"],
            turns=profile_options["turns"] if dataset_kind == "multiturn" else 1,
        )
        settings = LoadSettings(
            ignore_eos=not no_ignore_eos,
            input_tokens=inputs.typical,
            output_tokens=outputs.typical,
            **options,
        )
        profile = ProfileSettings(
            kind=profile_kind,
            # Open-loop profiles without an explicit --concurrency are capped only by the load generator's ceiling.
            concurrency=settings.concurrency if "concurrency" in given or profile_kind == "concurrent" else None,
            rate=profile_options["request_rate"],
            burstiness=profile_options["burstiness"],
            sweep_points=profile_options["sweep_points"],
            goals=goals,
            search_by=profile_options["search_by"],
            search_max=profile_options["search_max"],
            repeats=profile_options["repeats"],
            client_processes=profile_options["client_processes"],
            stop_when_oversaturated=not profile_options["no_oversaturation_stop"],
            sample_server_metrics=not profile_options["no_server_metrics"],
            dataset=dataset,
        )
    except ValidationError as error:
        fail(_validation_message(error))
        return
    except (DatasetError, ValueError) as error:
        fail(str(error))
        return
    try:
        measurements = measure_profile(settings, profile)
    except RunnerError as error:
        fail(str(error), EXIT_FAILURE)
        return
    results = [_figures(measurement) for measurement in measurements]
    if as_json:
        click.echo(json.dumps(results[0] if len(results) == 1 else results))
        return
    for figures in results:
        for key, value in figures.items():
            if key in ("warnings", "quality_flags", "repeats", "server_metrics", "sla_search"):
                continue
            click.echo(f"{key:>24}  {value:.3f}" if isinstance(value, float) else f"{key:>24}  {value}")
        if figures.get("sla_search"):
            search = figures["sla_search"]
            click.echo(f"{'sla search':>24}  best {search['by']} {search['best']:g} in {search['trials']} trials")
        for name, interval in (figures.get("repeats") or {}).items():
            click.echo(f"{name:>24}  95% CI [{interval['ci95_low']:.3f}, {interval['ci95_high']:.3f}]")
        for name, reason in figures["quality_flags"].items():
            click.echo(f"flag {name}: {reason}", err=True)
        for warning in figures["warnings"]:
            click.echo(f"warning: {warning}", err=True)
        click.echo("")


def _figures(measurement) -> dict:
    """flat_figures plus what the profile added: the load point, intervals, flags, server metrics, search."""
    from benchmark_platform.runners.openai.measurement import flat_figures

    detail = measurement.detailed_metrics
    figures = flat_figures(measurement)
    figures["profile"] = (detail.get("profile") or {}).get("point")
    figures["slo_attainment"] = detail.get("slo_attainment")
    if "goodput_distserve_rps" in detail:
        figures["goodput_distserve_rps"] = detail["goodput_distserve_rps"]
    for name in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms"):
        for percentile in ("p95", "p99.9"):
            figures[f"{name[:-3]}_{percentile}_ms"] = (detail.get(name) or {}).get(percentile)
    figures["repeats"] = (detail.get("repeats") or {}).get("metrics")
    figures["quality_flags"] = detail.get("quality_flags") or {}
    figures["server_metrics"] = detail.get("server_metrics")
    search = detail.get("sla_search")
    figures["sla_search"] = {key: search[key] for key in ("by", "best", "first_miss", "trials")} if search else None
    figures["oversaturated"] = detail.get("oversaturated")
    return figures


OPEN_LOOP_PROFILES = ("constant", "poisson", "throughput", "replay", "sweep")


def _default_profile(goals: bool, rate: bool, dataset: str) -> str:
    """Without --profile: goals ask for the SLA search, a trace for its replay, a rate for Poisson arrivals."""
    if goals:
        return "sla-search"
    if dataset == "trace":
        return "replay"
    return "poisson" if rate else "concurrent"


def _unused_options(given: set[str], profile: str, search_by: str, dataset: str) -> list[str]:
    """Each option given that the chosen profile or dataset would ignore, with where it applies (pure)."""
    search_rate = profile == "sla-search" and search_by == "rate"
    applies = {
        "request_rate": (profile in ("constant", "poisson"), "the constant and poisson profiles"),
        "burstiness": (profile == "poisson" or search_rate, "the poisson profile and --search-by rate"),
        "sweep_points": (profile == "sweep", "the sweep profile"),
        "search_by": (profile == "sla-search", "the sla-search profile"),
        "search_max": (profile == "sla-search", "the sla-search profile"),
        "concurrency": (
            profile not in ("synchronous", "sla-search") or search_rate,
            "every profile but synchronous and the search by concurrency (which sets it)",
        ),
        "no_oversaturation_stop": (profile in OPEN_LOOP_PROFILES or search_rate, "open-loop profiles"),
        "trace_path": (dataset == "trace", "--dataset trace"),
        "time_scale": (dataset == "trace", "--dataset trace"),
        "turns": (dataset == "multiturn", "--dataset multiturn"),
    }
    return [
        f"--{name.removesuffix('_path').replace('_', '-')} applies to {where}; this run is "
        + (f"--dataset {dataset}" if where.startswith("--dataset") else f"the {profile} profile")
        for name, (used, where) in applies.items()
        if name in given and not used
    ]


@main.command("emulate-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option("--model", default="emulator", show_default=True, help="Model name /v1/models lists.")
@click.option("--ttft-ms", default=0.0, show_default=True, help="Delay before the first token.")
@click.option("--tpot-ms", default=0.0, show_default=True, help="Delay between tokens.")
@click.option("--prefill-ms-per-token", default=0.0, show_default=True, help="Extra TTFT per prompt token.")
@click.option("--jitter-ms", default=0.0, show_default=True, help="Spread of every delay.")
@click.option(
    "--jitter-distribution",
    type=click.Choice(["normal", "uniform", "exponential"]),
    default="normal",
    show_default=True,
    help="normal: std dev = jitter; uniform: ± jitter; exponential: mean extra delay = jitter.",
)
@click.option("--tokens-per-chunk", default=1, show_default=True, help="Tokens each stream chunk carries.")
@click.option("--eos-after-tokens", type=int, help="Answer length when the request does not set ignore_eos.")
@click.option("--error-rate", default=0.0, show_default=True, help="Share of requests answered with HTTP 500.")
@click.option("--accuracy-error-rate", default=0.0, show_default=True, help="Share of accuracy answers made wrong.")
@click.option("--max-num-seqs", type=int, help="Requests generating at once; the others queue (TTFT grows).")
@click.option("--preempt-above-running", type=int, help="Count a preemption (in /metrics) above this many running.")
@click.option("--seed", default=0, show_default=True, help="Seed of jitter and injected errors.")
@click.option("--max-model-len", type=int, hidden=True, help="Accepted for launch templates; ignored.")
@click.option("--tensor-parallel-size", type=int, hidden=True, help="Accepted for launch templates; ignored.")
@click.option("--quantization", hidden=True, help="Accepted for launch templates; ignored.")
def emulate_server(host: str, port: int, max_model_len, tensor_parallel_size, quantization, **options) -> None:
    """Serve a fake OpenAI-compatible model with known latency, for tests and for checking the load generator.

    /v1/completions and /v1/chat/completions (streamed, usage in a final chunk when asked), /v1/models, /health.
    Requests for model fault-http-500, fault-malformed, fault-truncated, fault-error-event or fault-hang misbehave
    as named. Prints "emulator listening on URL" once ready; SIGTERM or Ctrl-C stops it.

    \b
    Example:
        benchmark-platform emulate-server --port 8000 --ttft-ms 80 --tpot-ms 15 --jitter-ms 2
    """
    from benchmark_platform.runners.emulator import EmulatorSettings, bound_port, build_server

    try:
        settings = EmulatorSettings(**options)
    except ValidationError as error:
        fail(_validation_message(error))
        return
    server = build_server(settings, host, port)

    def announce() -> None:
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.started:
            click.echo(f"emulator listening on http://{host}:{bound_port(server)}")

    threading.Thread(target=announce, daemon=True).start()
    server.run()
