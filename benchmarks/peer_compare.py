"""This runner and a peer load generator against the same local emulator, with the same shapes: both tools' TTFT,
TPOT (the peer's per-request inter-token latency) and output throughput, and their differences (goal: within 3 %).

The peer is NVIDIA AIPerf (``aiperf profile``); its JSON export is read by the platform's own importer
(``interop.parse_aiperf``), so a peer file it cannot read exits 2 naming the field. The peer needs a tokenizer:
one is built locally with the ``tokenizers`` package (``benchmarks/local_tokenizer.py``), nothing is downloaded.
GuideLLM 0.8.1 (the issue's first choice) needs PyTorch for its data loader, which cannot be installed beside
it here; ``--peer guidellm`` is therefore not offered.

    python benchmarks/peer_compare.py --peer-bin /tmp/measure-aiperf/bin [--concurrency 4] [--requests 120]

``--peer-bin`` is the bin folder of a separate virtual environment holding ``aiperf`` and ``tokenizers``
(``python3 -m venv /tmp/aiperf-venv && /tmp/aiperf-venv/bin/pip install aiperf tokenizers``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from benchmark_platform.interop import ImportFormatError, parse_aiperf, read_json
from benchmark_platform.runners.loadgen import LoadSettings
from benchmark_platform.runners.profiles import ProfileSettings, measure_profile

FIGURES = ("ttft_p50_ms", "ttft_p90_ms", "tpot_p50_ms", "tpot_p90_ms", "throughput_tokens_sec")
GOAL_PERCENT = 3.0


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
    # the folder up in the hub cache and fail).
    finished = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if finished.returncode != 0:
        raise SystemExit(
            f"error: aiperf failed ({finished.returncode}):\n{finished.stdout[-3000:]}{finished.stderr[-3000:]}"
        )
    exports = sorted(artifacts.rglob("profile_export_aiperf.json"))
    if not exports:
        raise SystemExit(f"error: aiperf wrote no profile_export_aiperf.json under {artifacts}")
    try:
        imported = parse_aiperf(read_json(exports[-1]))
    except ImportFormatError as error:
        print(f"error: {exports[-1]}: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return {figure: imported.metrics[figure] for figure in FIGURES}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-bin", type=Path, required=True, help="bin folder of the venv holding aiperf")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--input-tokens", type=int, default=128)
    parser.add_argument("--output-tokens", type=int, default=64)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--tpot-ms", type=float, default=10.0)
    arguments = parser.parse_args()
    for name in ("concurrency", "requests", "input_tokens", "output_tokens"):
        if not 1 <= getattr(arguments, name) <= 100_000:
            parser.error(f"--{name.replace('_', '-')} must be between 1 and 100000")
    with tempfile.TemporaryDirectory(prefix="peer-compare-") as scratch:
        tokenizer = Path(scratch) / "tokenizer"
        subprocess.run(
            [str(arguments.peer_bin / "python"), str(Path(__file__).with_name("local_tokenizer.py")), str(tokenizer)],
            check=True,
            capture_output=True,
        )
        shape = (arguments.concurrency, arguments.requests, arguments.input_tokens, arguments.output_tokens)
        with emulator(arguments.ttft_ms, arguments.tpot_ms) as url:
            ours = run_ours(url, *shape)
            peer = run_aiperf(arguments.peer_bin, url, tokenizer, Path(scratch) / "artifacts", *shape)
    print(
        f"emulator: TTFT {arguments.ttft_ms:g} ms, {arguments.tpot_ms:g} ms/token; concurrency {arguments.concurrency},"
        f" {arguments.requests} requests of {arguments.input_tokens} -> {arguments.output_tokens} tokens; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'figure':<24}{'this runner':>14}{'aiperf':>14}{'difference':>12}")
    worst = 0.0
    for figure in FIGURES:
        difference = (ours[figure] - peer[figure]) / peer[figure] * 100
        worst = max(worst, abs(difference))
        print(f"{figure:<24}{ours[figure]:>14.2f}{peer[figure]:>14.2f}{difference:>+11.1f}%")
    verdict = "within" if worst <= GOAL_PERCENT else "NOT within"
    print(json.dumps({"ours": ours, "aiperf": peer, "largest_difference_percent": worst}))
    print(f"largest difference {worst:.1f} %: {verdict} the {GOAL_PERCENT:g} % goal")


if __name__ == "__main__":
    main()
