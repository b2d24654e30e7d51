"""Results from peer tools in, results out (pure parsing and shaping; the CLI writes and reads the database).

The tools name the same quantities differently; each importer maps them onto this platform's definitions
(``runners/openai/protocol.py``):

- our TPOT (per request: (E2E − TTFT) / (output tokens − 1), percentiles over requests) is vLLM's ``tpot``,
  GuideLLM's ``inter_token_latency_ms`` (decode-only per-request average; GuideLLM's ``time_per_output_token_ms``
  also counts the first token, so it is NOT our TPOT) and AIPerf's ``inter_token_latency`` (the same per-request
  decode average);
- our ITL (gaps between chunks) is vLLM's ``itl``; GuideLLM and AIPerf keep no per-gap distribution;
- output throughput and request throughput are the same in all three.

A missing or malformed figure raises ``ImportFormatError`` naming the field path; nothing is partly imported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmark_platform import files
from benchmark_platform.domain import SERVING_OPTION_COLUMNS
from benchmark_platform.runners.base import METRIC_COLUMNS
from benchmark_platform.runners.stats import PERCENTILE_METHOD

SourceFormat = Literal["guidellm", "vllm", "aiperf"]
FORMATS: tuple[SourceFormat, ...] = ("guidellm", "vllm", "aiperf")
PERCENTILES = ("p50", "p90", "p99")


class ImportFormatError(ValueError):
    """The file is not what its format promises; the message names the field (or line)."""


@dataclass(frozen=True)
class ImportedResult:
    """One result row's metrics and detail, before the CLI attaches it to a model version and hardware."""

    metrics: dict[str, float | None]
    detail: dict[str, Any]
    mean_prompt_tokens: float | None


def read_json(path: str | Path) -> Any:
    """The file's JSON, read and checked by ``files.read_json`` (size, kind, depth, finite numbers)."""
    try:
        return files.read_json(path)
    except files.FileInputError as error:
        raise ImportFormatError(str(error)) from error


def _get(data: Any, path: str) -> Any:
    node = data
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise ImportFormatError(f"field {path}: missing")
    return node


def _number(data: Any, path: str, positive: bool = False) -> float:
    value = _get(data, path)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ImportFormatError(f"field {path}: expected a finite number, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ImportFormatError(f"field {path}: expected a {'positive' if positive else 'non-negative'} number")
    return float(value)


def _optional(data: Any, path: str) -> float | None:
    try:
        return _number(data, path)
    except ImportFormatError as error:
        if str(error).endswith("missing"):
            return None
        raise


def _columns(ttft: dict[str, float], tpot: dict[str, float], output_tps: float, rps: float) -> dict:
    columns: dict[str, float | None] = {f"ttft_{p}_ms": ttft[p] for p in PERCENTILES}
    columns |= {f"tpot_{p}_ms": tpot[p] for p in PERCENTILES}
    for metric, values in (("ttft", ttft), ("tpot", tpot)):
        if not values["p50"] <= values["p90"] <= values["p99"]:
            raise ImportFormatError(f"{metric} percentiles out of order: {values}")
    columns |= {"throughput_tokens_sec": output_tps, "rps_sustained": rps}
    columns |= {"accuracy_score": None, "gpu_utilization_pct": None, "memory_used_gb": None}
    return columns


def parse_guidellm(data: Any, benchmark_index: int = 0) -> ImportedResult:
    """One benchmark of a GuideLLM 0.8 ``benchmarks.json`` (``guidellm run --output kind=json,path=...``). Its
    figures leave out the warm-up and cool-down requests; the per-request records (``requests``) are not read."""
    base = f"benchmarks.{benchmark_index}"
    benchmark = _get(data, base)
    metrics = f"{base}.metrics"

    def distribution(name: str) -> dict[str, float]:
        return {p: _number(data, f"{metrics}.{name}.successful.percentiles.{p}") for p in PERCENTILES}

    ttft = distribution("time_to_first_token_ms")
    tpot = distribution("inter_token_latency_ms")  # decode-only per request: our TPOT (see the module docstring)
    output_tps = _number(data, f"{metrics}.output_tokens_per_second.successful.mean", positive=True)
    rps = _number(data, f"{metrics}.requests_per_second.successful.mean", positive=True)
    totals = _get(data, metrics).get("request_totals")  # a dict: its distributions were read above
    detail = {
        "ttft_ms": _summary(data, f"{metrics}.time_to_first_token_ms.successful"),
        "tpot_ms": _summary(data, f"{metrics}.inter_token_latency_ms.successful"),
        "e2e_ms": _summary(data, f"{metrics}.request_latency.successful", scale=1e3),
        "guidellm_time_per_output_token_ms": _summary(data, f"{metrics}.time_per_output_token_ms.successful"),
        "completed_requests": (totals or {}).get("successful"),
        "errors": (totals or {}).get("errored"),
        "source_profile": _strategy(benchmark),
    }
    prompt = _optional(data, f"{metrics}.prompt_token_count.successful.mean")
    return ImportedResult(_columns(ttft, tpot, output_tps, rps), detail, prompt)


def _strategy(benchmark: Any) -> Any:
    try:
        return _get(benchmark, "config.strategy")
    except ImportFormatError:
        return None


def _summary(data: Any, path: str, scale: float = 1.0) -> dict[str, float] | None:
    try:
        node = _get(data, path)
    except ImportFormatError:
        return None
    percentiles = node.get("percentiles") or {}
    summary = {p: float(percentiles[p]) * scale for p in ("p50", "p90", "p95", "p99", "p999") if p in percentiles}
    if "mean" in node:
        summary["mean"] = float(node["mean"]) * scale
    return summary or None


def parse_vllm(data: Any) -> ImportedResult:
    """A ``vllm bench serve --save-result`` JSON. Percentiles come from ``--metric-percentiles`` (``p90_ttft_ms``
    ...), or are recomputed from the per-request lists that ``--save-detailed`` keeps."""
    ttft = _vllm_percentiles(data, "ttft")
    tpot = _vllm_percentiles(data, "tpot")
    output_tps = _number(data, "output_throughput", positive=True)
    rps = _number(data, "request_throughput", positive=True)
    completed = _optional(data, "completed")
    detail: dict[str, Any] = {
        "ttft_ms": {p: ttft[p] for p in PERCENTILES} | {"mean": _optional(data, "mean_ttft_ms")},
        "tpot_ms": {p: tpot[p] for p in PERCENTILES} | {"mean": _optional(data, "mean_tpot_ms")},
        "itl_ms": {"p50": _optional(data, "median_itl_ms"), "mean": _optional(data, "mean_itl_ms")},
        "e2e_ms": {"p50": _optional(data, "median_e2el_ms"), "mean": _optional(data, "mean_e2el_ms")},
        "completed_requests": int(completed) if completed is not None else None,
        "goodput_rps": _optional(data, "request_goodput"),
        "source_profile": {
            key: data.get(key) for key in ("request_rate", "burstiness", "max_concurrency") if isinstance(data, dict)
        },
    }
    total_input = _optional(data, "total_input_tokens")
    prompt = total_input / completed if total_input is not None and completed else None
    return ImportedResult(_columns(ttft, tpot, output_tps, rps), detail, prompt)


def _vllm_percentiles(data: Any, metric: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for p in PERCENTILES:
        key = "median_" + metric + "_ms" if p == "p50" else f"{p}_{metric}_ms"
        found = _optional(data, key) if p != "p50" else _optional(data, key) or _optional(data, f"p50_{metric}_ms")
        if found is not None:
            values[p] = found
    missing = [p for p in PERCENTILES if p not in values]
    if missing:
        samples = _vllm_samples(data, metric)
        if samples is None:
            raise ImportFormatError(
                f"field {missing[0]}_{metric}_ms: missing (run vllm bench serve with --metric-percentiles 50,90,99 "
                "or --save-detailed)"
            )
        # All three from the samples, so the percentiles come from one method and stay ordered.
        values = {p: float(np.percentile(samples, float(p[1:]), method=PERCENTILE_METHOD)) for p in PERCENTILES}
    return values


def _vllm_samples(data: Any, metric: str) -> np.ndarray | None:
    """Per-request values (ms) from ``--save-detailed`` lists: ``ttfts`` (s), TPOT from ``itls`` and lengths."""
    if not isinstance(data, dict) or "ttfts" not in data:
        return None
    ttfts = data["ttfts"]
    if not isinstance(ttfts, list) or not all(isinstance(v, int | float) for v in ttfts):
        raise ImportFormatError("field ttfts: expected a list of numbers")
    if metric == "ttft":
        return np.array(ttfts, dtype=float) * 1e3
    itls, lengths = data.get("itls"), data.get("output_lens")
    if not isinstance(itls, list) or not isinstance(lengths, list) or len(itls) != len(lengths):
        raise ImportFormatError("field itls: expected one list of gaps per request, as many as output_lens")
    tpots = [sum(gaps) / (n - 1) * 1e3 for gaps, n in zip(itls, lengths, strict=True) if n > 1 and gaps]
    return np.array(tpots, dtype=float)


def parse_aiperf(data: Any) -> ImportedResult:
    """AIPerf's ``profile_export_aiperf.json`` (metrics at the top level, or under ``records``)."""
    root = data.get("records", data) if isinstance(data, dict) else data
    prefix = "records." if root is not data else ""

    def distribution(name: str) -> dict[str, float]:
        unit = (_get(root, name) or {}).get("unit", "ms") if isinstance(_get(root, name), dict) else "ms"
        if unit not in ("ms", "milliseconds"):
            raise ImportFormatError(f"field {prefix}{name}.unit: expected ms, got {unit!r}")
        try:
            return {p: _number(root, f"{name}.{p}") for p in PERCENTILES}
        except ImportFormatError as error:
            raise ImportFormatError(f"{prefix}{error}") from None

    ttft = distribution("time_to_first_token")
    tpot = distribution("inter_token_latency")  # per-request decode average: our TPOT (see the module docstring)
    try:
        output_tps = _number(root, "output_token_throughput.avg", positive=True)
        rps = _number(root, "request_throughput.avg", positive=True)
    except ImportFormatError as error:
        raise ImportFormatError(f"{prefix}{error}") from None
    count = _optional(root, "request_count.avg")
    detail = {
        "ttft_ms": ttft | {"mean": _optional(root, "time_to_first_token.avg")},
        "tpot_ms": tpot | {"mean": _optional(root, "inter_token_latency.avg")},
        "e2e_ms": {p: _optional(root, f"request_latency.{p}") for p in PERCENTILES},
        "completed_requests": int(count) if count is not None else None,
        "errors": _optional(root, "error_request_count.avg"),
    }
    return ImportedResult(_columns(ttft, tpot, output_tps, rps), detail, _optional(root, "input_sequence_length.avg"))


def parse(source: SourceFormat, path: str | Path, benchmark_index: int = 0) -> ImportedResult:
    data = read_json(path)
    try:
        if source == "guidellm":
            return parse_guidellm(data, benchmark_index)
        if source == "vllm":
            return parse_vllm(data)
        return parse_aiperf(data)
    except ImportFormatError as error:
        raise ImportFormatError(f"{path}: {error}") from None


EXPORT_CONFIG_COLUMNS = (
    "result_id",
    "benchmark_date",
    "version_key",
    "hardware_name",
    "gpu_type",
    "gpu_count",
    "framework_name",
    "workload_type",
    "batch_size",
    "sequence_length",
    "tensor_parallel",
    *SERVING_OPTION_COLUMNS,
    "runner",
)
# Every metric a result row stores (the runners' METRIC_COLUMNS, so a metric added by a migration is exported too).
EXPORT_COLUMNS = (*EXPORT_CONFIG_COLUMNS, *METRIC_COLUMNS, "quality_flags", "source_tool")
