"""The server's own view of a run, from its Prometheus ``/metrics`` (vLLM and SGLang expose one).

Sampled during the measured window and summarized: running and waiting requests (mean and peak), KV-cache usage,
prefix-cache hit rate over the window, preemptions, and the prompt and generation tokens the server counted. Gauges
are averaged over samples; counters are differences between the first and the last sample. A server without
``/metrics`` (or without these names) gives no summary and the run goes on. A read is capped at ``MAX_METRICS_BYTES``
and ``READ_SECONDS``: a server answering without end ends the sampling with an error, not the worker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from dataclasses import dataclass, field

import httpx

from benchmark_platform.http_bodies import IDENTITY, BodyTooLarge, aread_body

# Each figure and the names the frameworks publish it under (vLLM V1 and V0 names, SGLang). Values are summed over
# label sets (one per model or engine).
GAUGES = {
    "running": ("vllm:num_requests_running", "sglang:num_running_reqs"),
    "waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs"),
    "kv_cache_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),
}
COUNTERS = {
    "prefix_cache_hits": ("vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total"),
    "prefix_cache_queries": ("vllm:prefix_cache_queries_total", "vllm:gpu_prefix_cache_queries_total"),
    "preemptions": ("vllm:num_preemptions_total",),
    "prompt_tokens": ("vllm:prompt_tokens_total", "sglang:prompt_tokens_total"),
    "generation_tokens": ("vllm:generation_tokens_total", "sglang:generation_tokens_total"),
}
SAMPLE_INTERVAL_SECONDS = 0.5
METRICS_PATH = "/metrics"
MAX_METRICS_BYTES = 4 << 20  # vLLM's /metrics, histograms included, is about 100 kB
READ_SECONDS = 5.0  # a whole read, however slowly the server trickles it
_SAMPLE_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def parse_prometheus(text: str) -> dict[str, float]:
    """Metric name → value summed over its label sets (comments, histograms' buckets and bad lines ignored)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _SAMPLE_LINE.match(line)
        if match is None:
            continue
        try:
            value = float(match.group(3))
        except ValueError:
            continue
        if math.isfinite(value):
            values[match.group(1)] = values.get(match.group(1), 0.0) + value
    return values


def _first(values: dict[str, float], names: tuple[str, ...]) -> float | None:
    return next((values[name] for name in names if name in values), None)


@dataclass
class ServerMetricSamples:
    samples: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None

    def summary(self) -> dict | None:
        """The run's summary, or None when the server exposed none of the known metrics."""
        useful = [
            s
            for s in self.samples
            if any(_first(s, names) is not None for names in (*GAUGES.values(), *COUNTERS.values()))
        ]
        if not useful:
            return None
        result: dict = {"samples": len(useful)}
        for figure, names in GAUGES.items():
            series = [value for sample in useful if (value := _first(sample, names)) is not None]
            result[figure] = {"mean": sum(series) / len(series), "max": max(series)} if series else None
        for figure, names in COUNTERS.items():
            first, last = _first(useful[0], names), _first(useful[-1], names)
            result[figure] = None if first is None or last is None else max(0.0, last - first)
        hits, queries = result["prefix_cache_hits"], result["prefix_cache_queries"]
        result["prefix_cache_hit_rate"] = hits / queries if hits is not None and queries else None
        return result


async def sample_server_metrics(
    client: httpx.AsyncClient,
    stop: asyncio.Event,
    into: ServerMetricSamples,
    interval: float = SAMPLE_INTERVAL_SECONDS,
    first_read: asyncio.Event | None = None,
) -> None:
    """Read ``/metrics`` now (then set ``first_read``), every ``interval`` until ``stop`` is set, and once more
    after; the first failure ends it."""
    first_read = first_read or asyncio.Event()
    while True:
        try:
            async with asyncio.timeout(READ_SECONDS):
                async with client.stream("GET", METRICS_PATH, headers=IDENTITY) as response:
                    if response.status_code != 200:
                        into.error = f"{METRICS_PATH} answered HTTP {response.status_code}"
                        return
                    body = await aread_body(response, MAX_METRICS_BYTES)
            into.samples.append(parse_prometheus(body.decode("utf-8", errors="replace")))
        except (httpx.HTTPError, TimeoutError, BodyTooLarge) as error:
            into.error = f"{METRICS_PATH}: {type(error).__name__}: {error}"[:300]
            return
        finally:
            first_read.set()
        if stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)
