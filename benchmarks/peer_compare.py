"""This runner and peer load generators against the same local emulator, with the same shapes: each tool's TTFT,
TPOT (the peers' per-request inter-token latency: decode time / (output tokens - 1)) and output throughput, and their
differences (goal: within 3 %).

The peers are GuideLLM (``guidellm run``, 0.8) and NVIDIA AIPerf (``aiperf profile``, 0.13); their JSON outputs are
read by the platform's own importers (``interop.parse_guidellm``, ``interop.parse_aiperf``), so a peer file they
cannot read exits 2 naming the field. Both need a tokenizer: one is built locally with the ``tokenizers`` package
(``benchmarks/local_tokenizer.py``); nothing is downloaded (the Hugging Face offline switches are set for the peers).
Every tool sends one warm-up request per concurrent user first and leaves it out of its figures.

By default the tools take turns (``--repeats`` rounds; medians compared). On a machine whose load moves, turns see
different conditions, so ``--alongside`` runs this runner while each peer runs (the peer with three times the
requests, so it outlasts ours): both then measure the same server under the same load at the same moment.

    python benchmarks/peer_compare.py --guidellm-bin /tmp/guidellm-venv/bin [--aiperf-bin /tmp/measure-aiperf/bin]
        [--alongside] [--repeats 3] [--concurrency 4] [--requests 120] [--input-tokens 128] [--output-tokens 64]

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
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmark_platform.interop import ImportedResult, ImportFormatError, parse_aiperf, parse_guidellm, read_json
from benchmark_platform.runners.openai.profiles import ProfileSettings, measure_profile
from benchmark_platform.runners.openai.protocol import LoadSettings

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
    return {figure: getattr(measured, figure) for figure in FIGURES} | {
        "requests": measured.detailed_metrics["completed_requests"]
    }


@dataclass(frozen=True)
class PeerRun:
    """How to run one peer measurement and where its JSON lands."""

    name: str
    command: list[str]
    output: Path
    parser: Callable[[object], ImportedResult]
    offline: bool
    cwd: Path | None = None

    def start(self) -> subprocess.Popen:
        environment = os.environ | (OFFLINE if self.offline else {})
        return subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment, cwd=self.cwd
        )

    def finish(self, process: subprocess.Popen) -> dict[str, float]:
        output, _ = process.communicate(timeout=900)
        if process.returncode != 0:
            raise SystemExit(f"error: {self.name} failed ({process.returncode}):\n{output[-6000:]}")
        if not self.output.exists():
            raise SystemExit(f"error: {self.name} wrote no {self.output}")
        try:
            imported = self.parser(read_json(self.output))
        except ImportFormatError as error:
            print(f"error: {self.output}: {error}", file=sys.stderr)
            raise SystemExit(2) from None
        figures = {figure: imported.metrics[figure] for figure in FIGURES}
        return figures | {"requests": imported.detail["completed_requests"]}


def aiperf(
    peer_bin: Path,
    url: str,
    tokenizer: Path,
    artifacts: Path,
    concurrency: int,
    requests: int,
    inputs: int,
    outputs: int,
) -> PeerRun:
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
        # This runner's side samples neither the server's /metrics nor GPUs; AIPerf would do both by default.
        "--no-server-metrics",
        "--no-gpu-telemetry",
    ]
    # The tokenizer is a local folder, which AIPerf loads without the network (its HF offline mode would instead look
    # the folder up in the hub cache and fail), so AIPerf runs without the offline switches. Its top-level export
    # holds the profiling phase (phases/warmup/ the warm-up's).
    return PeerRun("aiperf", command, artifacts / "profile_export_aiperf.json", parse_aiperf, offline=False)


def guidellm(
    peer_bin: Path,
    url: str,
    tokenizer: Path,
    artifacts: Path,
    concurrency: int,
    requests: int,
    inputs: int,
    outputs: int,
) -> PeerRun:
    """GuideLLM's concurrent profile: ``requests`` measured after ``concurrency`` warm-up requests. GuideLLM counts
    warm-up requests in its request limit, and its warm-up ends when the request after them starts, which it leaves
    out too: hence one more."""
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
        f"kind=max_requests,count={requests + concurrency + 1}",
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
    return PeerRun("guidellm", command, output, parse_guidellm, offline=True, cwd=artifacts)


def alongside(peer: PeerRun, url: str, shape: tuple[int, int, int, int]) -> tuple[dict, dict, bool]:
    """The peer and this runner at the same time: this runner starts once the peer's requests reach the emulator
    and measures while the peer goes on, so both see the same machine and server. True when the peer outlasted it."""
    process = peer.start()
    deadline = time.monotonic() + 300
    while _running_requests(url) == 0:
        if process.poll() is not None or time.monotonic() > deadline:
            peer.finish(process)
            raise SystemExit(f"error: {peer.name} sent no request within 300 s")
        time.sleep(0.2)
    time.sleep(2)  # past the peer's warm-up requests
    ours = run_ours(url, *shape)
    overlapped = process.poll() is None
    return ours, peer.finish(process), overlapped


def _running_requests(url: str) -> float:
    text = httpx.get(f"{url.removesuffix('/v1')}/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith("vllm:num_requests_running"))


def _children_cpu_seconds() -> float:
    """User + system CPU of the finished child processes (a peer's own worker processes included once reaped)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


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
    parser.add_argument(
        "--alongside", action="store_true", help="run this runner while each peer runs, not one after the other"
    )
    arguments = parser.parse_args()
    if not 1 <= arguments.repeats <= 20:
        parser.error("--repeats must be between 1 and 20")
    for name in ("concurrency", "requests", "input_tokens", "output_tokens"):
        if not 1 <= getattr(arguments, name) <= 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    peers = {
        name: (bin_dir, runner)
        for name, bin_dir, runner in (
            ("guidellm", arguments.guidellm_bin, guidellm),
            ("aiperf", arguments.aiperf_bin, aiperf),
        )
        if bin_dir is not None
    }
    if not peers:
        parser.error("give --guidellm-bin or --aiperf-bin (or both)")
    for name, (bin_dir, _) in peers.items():
        if not (bin_dir / name).exists():
            parser.error(f"--{name}-bin: no {name} in {bin_dir}")
    shape = (arguments.concurrency, arguments.requests, arguments.input_tokens, arguments.output_tokens)
    ours_names = [f"this runner beside {name}" for name in peers] if arguments.alongside else ["this runner"]
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in (*ours_names, *peers)}
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
                for name, (bin_dir, build) in peers.items():
                    artifacts = Path(scratch) / f"{name}-{repeat}"
                    if arguments.alongside:
                        # The peer runs three times as many requests, so that it outlasts this runner.
                        peer = build(bin_dir, url, tokenizer, artifacts, shape[0], 3 * shape[1], *shape[2:])
                        ours, theirs, overlapped = alongside(peer, url, shape)
                        runs[f"this runner beside {name}"].append(ours)
                        runs[name].append(theirs)
                        if not overlapped:
                            print(f"warning: {name} ended before this runner (repeat {repeat})", file=sys.stderr)
                        continue
                    if name == next(iter(peers)):
                        before = time.process_time()
                        runs["this runner"].append(run_ours(url, *shape))
                        cpu_seconds["this runner"].append(time.process_time() - before)
                    peer = build(bin_dir, url, tokenizer, artifacts, *shape)
                    before = _children_cpu_seconds()
                    runs[name].append(peer.finish(peer.start()))
                    cpu_seconds[name].append(_children_cpu_seconds() - before)
    results = {
        name: {f: statistics.median(run[f] for run in tool_runs) for f in FIGURES} for name, tool_runs in runs.items()
    }
    print(
        f"emulator: TTFT {arguments.ttft_ms:g} ms, {arguments.tpot_ms:g} ms/token; concurrency {arguments.concurrency},"
        f" {arguments.requests} requests of {arguments.input_tokens} -> {arguments.output_tokens} tokens;"
        f" median of {arguments.repeats} {'runs alongside each peer' if arguments.alongside else 'interleaved runs'}"
        f" per tool; load average {os.getloadavg()[0]:.1f}"
    )
    differences: dict[str, dict[str, float]] = {}
    for name in peers:
        ours_name = f"this runner beside {name}" if arguments.alongside else "this runner"
        ours, theirs = results[ours_name], results[name]
        print(f"\n{'figure':<24}{ours_name:>26}{name:>12}{'difference':>12}")
        differences[name] = {figure: (ours[figure] - theirs[figure]) / theirs[figure] * 100 for figure in FIGURES}
        for figure in FIGURES:
            print(f"{figure:<24}{ours[figure]:>26.2f}{theirs[figure]:>12.2f}{differences[name][figure]:>+11.1f}%")
        print(f"{'requests measured':<24}{runs[ours_name][0]['requests']!s:>26}{runs[name][0]['requests']!s:>12}")
        if cpu_seconds[name]:
            mine, peer_cpu = statistics.median(cpu_seconds[ours_name]), statistics.median(cpu_seconds[name])
            print(f"{'client CPU s per run':<24}{mine:>26.2f}{peer_cpu:>12.2f}")
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
