"""How fast is the load generator itself? Drives the emulator with zero injected delay through the production path
(one trial of the concurrent profile, warm-up excluded) and prints the most requests/s and streamed tokens/s one
client process (one event loop, one core) sustains, and the latency it adds per token.

The emulator runs in its own process, pinned to another core where there is one, so the two do not share a GIL.
When the client's CPU share is near 100 % the client is the limit; otherwise the emulator is, and the client's
ceiling is higher than printed. The last section spreads the same loads over 1 and then 2 client processes
(``--client-processes``; unpinned, so they may share cores with the emulator on a small machine).

    python benchmarks/loadgen_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from contextlib import contextmanager

from benchmark_platform.runners.openai.profiles import ProfileSettings, measure_profile
from benchmark_platform.runners.openai.protocol import LoadSettings

CLIENT_CORE, SERVER_CORE = 0, 1


@contextmanager
def emulator(*flags: str):
    pin = ["taskset", "-c", str(SERVER_CORE)] if _cores() > 1 and _has_taskset() else []
    command = [*pin, sys.executable, "-c", "from benchmark_platform.cli import main; main()"]
    process = subprocess.Popen([*command, "emulate-server", "--port", "0", *flags], stdout=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)


def _cores() -> int:
    return len(os.sched_getaffinity(0))


def _has_taskset() -> bool:
    return subprocess.run(["which", "taskset"], capture_output=True).returncode == 0


def run(url: str, concurrency: int, processes: int = 1, **load) -> dict:
    """One trial of the production path (the concurrent profile) with ``concurrency`` users over ``processes``."""
    settings = LoadSettings(base_url=url, model="emulator", input_tokens=32, concurrency=concurrency, **load)
    profile = ProfileSettings(concurrency=concurrency, client_processes=processes, sample_server_metrics=False)
    measured = measure_profile(settings, profile)[0]
    detail = measured.detailed_metrics
    client = detail["client"]
    return {
        "rps": measured.rps_sustained,
        "tokens_per_s": measured.throughput_tokens_sec,
        "client_cpu_cores": client["cpu_fraction_of_one_core"],
        "client_cpu_us_per_token": client["cpu_seconds"] / detail["output_tokens_total"] * 1e6,
        "lag_p99_ms": client["event_loop_lag_ms"]["p99"],
        "ttft_p50_ms": measured.ttft_p50_ms,
        "tpot_p50_ms": measured.tpot_p50_ms,
        "tpot_p99_ms": measured.tpot_p99_ms,
    }


def show(label: str, figures: dict) -> None:
    values = "  ".join(f"{key}={value:,.3g}" for key, value in figures.items())
    print(f"{label:<40} {values}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke run)")
    scale = 0.25 if parser.parse_args().quick else 1.0
    if _cores() > 1:
        os.sched_setaffinity(0, {CLIENT_CORE})
    print(f"client on 1 of {os.cpu_count()} cores, emulator on another; load average {os.getloadavg()[0]:.1f}")
    best_rps = best_tokens = 0.0
    with emulator() as url:
        for concurrency in (16, 64):
            figures = run(url, concurrency, output_tokens=2, num_requests=int(2000 * scale))
            show(f"2-token requests, c={concurrency}", figures)
            best_rps = max(best_rps, figures["rps"])
        for concurrency in (1, 32):
            requests = int(max(8, concurrency * 4) * scale) or 2
            figures = run(url, concurrency, output_tokens=1024, num_requests=requests)
            show(f"1024-token streams, c={concurrency}", figures)
            best_tokens = max(best_tokens, figures["tokens_per_s"])

    tpot_ms, added = 10.0, []
    with emulator("--tpot-ms", str(tpot_ms), "--ttft-ms", "20") as url:
        for concurrency in (1, 64):
            requests = max(int(concurrency * 3 * scale), 8)
            figures = run(url, concurrency, output_tokens=64, num_requests=requests)
            show(f"{tpot_ms:g} ms/token injected, c={concurrency}", figures)
            added.append((concurrency, figures["tpot_p50_ms"] - tpot_ms, figures["tpot_p99_ms"] - tpot_ms))

    print(f"\nmost requests/s sustained: {best_rps:,.0f}")
    print(f"most streamed tokens/s:    {best_tokens:,.0f}")
    for concurrency, p50, p99 in added:
        print(f"added latency per token at c={concurrency}: p50 {p50 * 1e3:+.0f} us, p99 {p99 * 1e3:+.0f} us")

    if _cores() > 1:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    by_processes = {}
    for processes in (1, 2):
        with emulator() as url:
            streams = run(url, 32, processes, output_tokens=1024, num_requests=max(int(128 * scale), 32))
        show(f"1024-token streams, c=32, {processes} client process(es)", streams)
        with emulator("--tpot-ms", str(tpot_ms), "--ttft-ms", "20") as url:
            timed = run(url, 64, processes, output_tokens=64, num_requests=max(int(192 * scale), 64))
        show(f"{tpot_ms:g} ms/token injected, c=64, {processes} process(es)", timed)
        by_processes[processes] = (
            streams["tokens_per_s"],
            timed["tpot_p50_ms"] - tpot_ms,
            timed["tpot_p99_ms"] - tpot_ms,
        )
    print()
    for processes, (tokens, p50, p99) in by_processes.items():
        print(
            f"{processes} client process(es): most streamed tokens/s {tokens:,.0f}; added latency per token at c=64 "
            f"p50 {p50 * 1e3:+.0f} us, p99 {p99 * 1e3:+.0f} us"
        )


if __name__ == "__main__":
    main()
