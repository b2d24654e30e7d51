"""Commands to measure any OpenAI-compatible endpoint and to run the local emulator."""

from __future__ import annotations

import json
import threading
import time

import click
from pydantic import ValidationError

from benchmark_platform.cli.app import EXIT_FAILURE, fail, main


def _validation_message(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'input'}: {item['msg']}" for item in error.errors()
    )


@main.command("bench-endpoint")
@click.option("--base-url", required=True, help="Server root, e.g. http://127.0.0.1:8000 (a trailing /v1 is fine).")
@click.option("--model", "model", required=True, help="Model name to put in requests (as /v1/models lists it).")
@click.option("--concurrency", default=1, show_default=True, type=int, help="Requests in flight (closed loop).")
@click.option("--num-requests", default=100, show_default=True, type=int, help="Measured requests (after warm-up).")
@click.option("--duration", "duration_seconds", type=float, help="Stop issuing requests after this many seconds.")
@click.option("--input-tokens", required=True, type=int, help="Prompt length in tokens.")
@click.option("--output-tokens", required=True, type=int, help="Output tokens per request (max_tokens, ignore_eos).")
@click.option("--request-rate", type=float, help="Open loop: Poisson arrivals at this many requests/s.")
@click.option("--warmup-requests", type=int, help="Unmeasured requests sent first [default: the concurrency].")
@click.option("--chat", is_flag=True, help="Use /v1/chat/completions instead of /v1/completions.")
@click.option("--no-ignore-eos", is_flag=True, help="Do not send ignore_eos (for servers that reject it).")
@click.option("--timeout", "request_timeout_seconds", default=120.0, show_default=True, help="Per-request limit (s).")
@click.option("--max-error-fraction", default=0.05, show_default=True, help="Fail the run above this error share.")
@click.option("--sla-ttft-ms", type=float, help="TTFT limit a request must meet to count in goodput.")
@click.option("--sla-tpot-ms", type=float, help="TPOT limit a request must meet to count in goodput.")
@click.option("--accuracy-tasks", default=0, show_default=True, help="Score this many bundled exact-match tasks.")
@click.option("--seed", default=0, show_default=True, help="Seed of prompts and arrivals.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (benchmark_results column names).")
def bench_endpoint(as_json: bool, no_ignore_eos: bool, **options: object) -> None:
    """Measure an OpenAI-compatible streaming server (vLLM, TGI, LMDeploy, SGLang, the emulator).

    TTFT, TPOT, ITL and E2E percentiles, output tokens/s, requests/s and goodput, as vLLM's serving benchmark
    measures them. Exit code 1 when the run fails (too many errors, server unreachable), 2 on bad input.

    \b
    Example:
        benchmark-platform bench-endpoint --base-url http://127.0.0.1:8000 \\
            --model meta-llama/Llama-3.1-8B-Instruct --concurrency 16 --num-requests 200 \\
            --input-tokens 512 --output-tokens 128 --json
    """
    from benchmark_platform.runners.base import RunnerError
    from benchmark_platform.runners.loadgen import LoadSettings, flat_figures, measure_endpoint

    try:
        settings = LoadSettings(ignore_eos=not no_ignore_eos, **options)
    except ValidationError as error:
        fail(_validation_message(error))
        return
    try:
        measurement = measure_endpoint(settings)
    except RunnerError as error:
        fail(str(error), EXIT_FAILURE)
        return
    figures = flat_figures(measurement)
    if as_json:
        click.echo(json.dumps(figures))
        return
    for key, value in figures.items():
        if key == "warnings":
            continue
        click.echo(f"{key:>24}  {value:.3f}" if isinstance(value, float) else f"{key:>24}  {value}")
    for warning in figures["warnings"]:
        click.echo(f"warning: {warning}", err=True)


@main.command("emulate-server")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, help="Port to listen on (0 picks a free one).")
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
