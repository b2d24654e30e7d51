"""This runner and peer load generators against the same local emulator, with the same shapes: each tool's TTFT,
TPOT (the peers' per-request inter-token latency: decode time / (output tokens - 1)) and output throughput, and their
differences (goal: within 3 %).

The peers are GuideLLM (``guidellm run``, 0.8) and NVIDIA AIPerf (``aiperf profile``, 0.13); their JSON outputs are
read by the platform's own importers (``interop.parse_guidellm``, ``interop.parse_aiperf``), so a peer file they
cannot read exits 2 naming the field. Both need a tokenizer: one is built locally with the ``tokenizers`` package
(``benchmarks/local_tokenizer.py``); nothing is downloaded (the Hugging Face offline switches are set for the peers).
Every tool sends one warm-up request per concurrent user first and leaves it out of its figures.

    python benchmarks/peer_compare.py --guidellm-bin /tmp/guidellm-venv/bin [--aiperf-bin /tmp/measure-aiperf/bin]
        [--concurrency 4] [--requests 120] [--input-tokens 128] [--output-tokens 64]

Each ``--*-bin`` is the bin folder of a separate virtual environment holding the peer and ``tokenizers``:
``python3.11 -m venv /tmp/guidellm-venv && /tmp/guidellm-venv/bin/pip install torch guidellm`` (GuideLLM's data
loader imports PyTorch; the CPU wheel is enough), ``python3 -m venv /tmp/aiperf-venv && /tmp/aiperf-venv/bin/pip
install aiperf tokenizers``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from benchmark_platform.interop import ImportedResult, ImportFormatError, parse_aiperf, parse_guidellm, read_json
from benchmark_platform.runners.loadgen import LoadSettings
from benchmark_platform.runners.profiles import ProfileSettings, measure_profile

FIGURES = ("ttft_p50_ms", "ttft_p90_ms", "tpot_p50_ms", "tpot_p90_ms", "throughput_tokens_sec")
GOAL_PERCENT = 3.0
# The peers run in their own environments; they must never reach for the Hugging Face hub.
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


@contextmanager
def emulator(ttft_ms: float, tpot_ms: float):
    command = [sys.executable, "-c", "from benchmark_platform.cli import main; main()", "emulate-server", "--port", "0"]
    command += ["--ttft-ms", str(ttft_ms), "--tpot-ms", str(tpot_ms)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def run_ours(url: str, concurrency: int, requests: int, input_tokens: int, output_tokens: int) -> dict[str, float]:
    settings = LoadSettings(
        base_url=url,
        model="emulator",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        concurrency=concurrency,
        num_requests=requests,
    )
    measured = measure_profile(settings, ProfileSettings(concurrency=concurrency, sample_server_metrics=False))[0]
    return {figure: getattr(measured, figure) for figure in FIGURES}


def run_aiperf(
    peer_bin: Path,
    url: str,
    tokenizer: Path,
    artifacts: Path,
    concurrency: int,
    requests: int,
    inputs: int,
    outputs: int,
) -> dict[str, float]:
    command = [
        str(peer_bin / "aiperf"),
        "profile",
        "--model",
        "emulator",
        "--url",
        url,
        "--endpoint-type",
        "completions",
        "--streaming",
        "--tokenizer",
        str(tokenizer),
        "--concurrency",
        str(concurrency),
        "--request-count",
        str(requests),
        "--warmup-request-count",
        str(concurrency),
        "--synthetic-input-tokens-mean",
        str(inputs),
        "--synthetic-input-tokens-stddev",
        "0",
        "--output-tokens-mean",
        str(outputs),
        "--output-tokens-stddev",
        "0",
        "--extra-inputs",
        "ignore_eos:true",
        "--random-seed",
        "1",
        "--artifact-dir",
        str(artifacts),
        "--ui-type",
        "none",
    ]
    # The tokenizer is a local folder, which AIPerf loads without the network (its HF offline mode would instead look
    # the folder up in the hub cache and fail), so AIPerf runs without the offline switches.
    _run_peer("aiperf", command, offline=False)
    export = artifacts / "profile_export_aiperf.json"  # the profiling phase (phases/warmup/ holds the warm-up's)
    if not export.exists():
        raise SystemExit(f"error: aiperf wrote no {export}")
    return _figures(export, parse_aiperf)


def run_guidellm(
    peer_bin: Path,
    url: str,
    tokenizer: Path,
    artifacts: Path,
    concurrency: int,
    requests: int,
    inputs: int,
    outputs: int,
) -> dict[str, float]:
    """GuideLLM's concurrent profile: ``requests`` measured after ``concurrency`` warm-up requests (GuideLLM counts
    warm-up requests in its request limit and leaves them out of its figures)."""
    artifacts.mkdir(parents=True, exist_ok=True)
    output = artifacts / "benchmarks.json"
    profile = {"kind": "concurrent", "streams": concurrency, "warmup": {"value": concurrency, "mode": "requests"}}
    command = [
        str(peer_bin / "guidellm"),
        "run",
        "--backend",
        f"kind=openai_http,target={url.removesuffix('/v1')},model=emulator,request_format=/v1/completions",
        "--profile",
        json.dumps(profile),
        "--constraint",
        f"kind=max_requests,count={requests + concurrency}",
        "--data",
        f"kind=synthetic_text,prompt_tokens={inputs},output_tokens={outputs}",
        "--tokenizer",
        f"kind=huggingface_auto,model={tokenizer}",
        "--seed",
        "kind=static,value=1",
        "--output",
        f"kind=json,path={output}",
        "--disable-console",
    ]
    _run_peer("guidellm", command, offline=True, cwd=artifacts)
    return _figures(output, parse_guidellm)


def _run_peer(name: str, command: list[str], offline: bool, cwd: Path | None = None) -> None:
    environment = os.environ | (OFFLINE if offline else {})
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900, env=environment, cwd=cwd)
    if finished.returncode != 0:
        raise SystemExit(
            f"error: {name} failed ({finished.returncode}):\n{finished.stdout[-3000:]}{finished.stderr[-3000:]}"
        )


def _children_cpu_seconds() -> float:
    """User + system CPU of the finished child processes (a peer's own worker processes included once reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _figures(path: Path, parser: Callable[[object], ImportedResult]) -> dict[str, float]:
    try:
        imported = parser(read_json(path))
    except ImportFormatError as error:
        print(f"error: {path}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return {figure: imported.metrics[figure] for figure in FIGURES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guidellm-bin", type=Path, help="bin folder of the venv holding guidellm")
    parser.add_argument("--aiperf-bin", "--peer-bin", type=Path, help="bin folder of the venv holding aiperf")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--tpot-ms", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs per tool; medians are compared")
    arguments = parser.parse_args()
    if not 1 <= arguments.repeats <= 20:
        parser.error("--repeats must be between 1 and 20")
    for name in ("concurrency", "requests", "input_tokens", "output_tokens"):
        if not 1 <= getattr(arguments, name) <= 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    peers = {
        name: (bin_dir, runner)
        for name, bin_dir, runner in (
            ("guidellm", arguments.guidellm_bin, run_guidellm),
            ("aiperf", arguments.aiperf_bin, run_aiperf),
        )
        if bin_dir is not None
    }
    if not peers:
        parser.error("give --guidellm-bin or --aiperf-bin (or both)")
    for name, (bin_dir, _) in peers.items():
        if not (bin_dir / name).exists():
            parser.error(f"--{name}-bin: no {name} in {bin_dir}")
    shape = (arguments.concurrency, arguments.requests, arguments.input_tokens, arguments.output_tokens)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in ("this runner", *peers)}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in runs}
    with tempfile.TemporaryDirectory(prefix="peer-compare-") as scratch:
        tokenizer = Path(scratch) / "tokenizer"
        first_bin = next(iter(peers.values()))[0]
        subprocess.run(
            [str(first_bin / "python"), str(Path(__file__).with_name("local_tokenizer.py")), str(tokenizer)],
            check=True,
            capture_output=True,
        )
        with emulator(arguments.ttft_ms, arguments.tpot_ms) as url:
            # Interleaved, so a burst of load from other work on the machine falls on every tool alike.
            for repeat in range(arguments.repeats):
                before = time.process_time()
                runs["this runner"].append(run_ours(url, *shape))
                cpu_seconds["this runner"].append(time.process_time() - before)
                for name, (bin_dir, runner) in peers.items():
                    before = _children_cpu_seconds()
                    runs[name].append(runner(bin_dir, url, tokenizer, Path(scratch) / f"{name}-{repeat}", *shape))
                    cpu_seconds[name].append(_children_cpu_seconds() - before)
    results = {
        name: {f: statistics.median(run[f] for run in tool_runs) for f in FIGURES} for name, tool_runs in runs.items()
    }
    print(
        f"emulator: TTFT {arguments.ttft_ms:g} ms, {arguments.tpot_ms:g} ms/token; concurrency {arguments.concurrency},"
        f" {arguments.requests} requests of {arguments.input_tokens} -> {arguments.output_tokens} tokens;"
        f" median of {arguments.repeats} interleaved runs per tool; load average {os.getloadavg()[0]:.1f}"
    )
    ours = results["this runner"]
    header = f"{'figure':<24}{'this runner':>13}"
    for name in peers:
        header += f"{name:>13}{'ours vs ' + name:>18}"
    print(header)
    differences: dict[str, dict[str, float]] = {name: {} for name in peers}
    for figure in FIGURES:
        line = f"{figure:<24}{ours[figure]:>13.2f}"
        for name in peers:
            peer = results[name][figure]
            differences[name][figure] = (ours[figure] - peer) / peer * 100
            line += f"{peer:>13.2f}{differences[name][figure]:>+17.1f}%"
        print(line)
    line = f"{'client CPU s per run':<24}{statistics.median(cpu_seconds['this runner']):>13.2f}"
    for name in peers:
        line += f"{statistics.median(cpu_seconds[name]):>13.2f}{'':>18}"
    print(line)
    print(
        json.dumps(
            {"median": results, "runs": runs, "client_cpu_seconds": cpu_seconds, "difference_percent": differences}
        )
    )
    for name in peers:
        worst = max(abs(value) for value in differences[name].values())
        verdict = "within" if worst <= GOAL_PERCENT else "NOT within"
        print(f"largest difference from {name}: {worst:.1f} %: {verdict} the {GOAL_PERCENT:g} % goal")


if __name__ == "__main__":
    main()
