"""From the records of a finished trial to a validated ``Measurement`` (pure: no I/O).

Per run: percentiles over successful requests (numpy linear interpolation), output throughput = output tokens / wall
time of the measured window, goodput = requests meeting the SLA per second. The client watches its own event-loop lag
and warns when it may be the bottleneck.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

import benchmark_platform
from benchmark_platform.runners.base import METRIC_COLUMNS, Measurement, RunnerError
from benchmark_platform.runners.openai.protocol import LoadSettings, RequestRecord, TooManyErrors
from benchmark_platform.runners.stats import PERCENTILE_METHOD, encode_samples, summarize

LAG_WARNING_MS = 5.0


@dataclass
class LoadRun:
    """What one run produced before summarizing: measured requests, the window, the client's own health."""

    records: list[RequestRecord]
    wall_seconds: float
    prompt_words: int
    warmup_prompt_tokens: int | None
    loop_lag_seconds: list[float]
    client_cpu_seconds: float
    accuracy_correct: int | None = None
    accuracy_total: int | None = None
    warnings: list[str] = field(default_factory=list)


def _percentile_columns(prefix: str, summary: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_p{p}_ms": summary[f"p{p}"] for p in (50, 90, 99)}


def build_measurement(
    run: LoadRun,
    settings: LoadSettings,
    gpu_utilization_pct: float | None = None,
    memory_used_gb: float | None = None,
    extra_detail: dict[str, Any] | None = None,
) -> Measurement:
    """The validated measurement of a finished run (pure: no I/O)."""
    completed = [record for record in run.records if record.error is None]
    errors = [record.error for record in run.records if record.error]
    if not completed:
        raise TooManyErrors(f"no request completed; first error: {errors[0] if errors else 'none sent'}")
    ttft = np.array([record.ttft for record in completed])
    tpot = np.array([record.tpot for record in completed if record.tpot is not None])
    itl = np.concatenate([np.diff(record.token_times) for record in completed])
    e2e = np.array([record.e2e for record in completed])
    if tpot.size == 0:
        raise RunnerError("no request returned more than one token, so TPOT is undefined (is max_tokens honoured?)")
    output_tokens = sum(record.output_tokens for record in completed)
    wall = run.wall_seconds
    meets_sla = np.ones(len(completed), dtype=bool)
    tpot_or_zero = np.array([record.tpot or 0.0 for record in completed])
    if settings.sla_ttft_ms is not None:
        meets_sla &= ttft * 1e3 <= settings.sla_ttft_ms
    if settings.sla_tpot_ms is not None:
        meets_sla &= tpot_or_zero * 1e3 <= settings.sla_tpot_ms
    lag = summarize(run.loop_lag_seconds, 1e3)
    warnings = list(run.warnings)
    if lag and lag["p99"] > LAG_WARNING_MS:
        warnings.append(
            f"client event loop lagged (p99 {lag['p99']:.1f} ms): client-side timings may be inflated; "
            "lower the concurrency or spread the load over more client processes"
        )
    short = sum(record.output_tokens < (record.max_tokens or settings.output_tokens) for record in completed)
    if short:
        asked = {record.max_tokens or settings.output_tokens for record in completed}
        wanted = f"{asked.pop()} tokens" if len(asked) == 1 else "the max_tokens asked"
        warnings.append(f"{short} of {len(completed)} requests returned fewer than {wanted} (ignore_eos not honoured?)")
    prompt_tokens = [record.prompt_tokens for record in completed if record.prompt_tokens]
    ttft_ms, tpot_ms = summarize(ttft, 1e3), summarize(tpot, 1e3)
    assert ttft_ms is not None and tpot_ms is not None
    detail: dict[str, Any] = {
        "runner_name": "openai",
        "endpoint": f"{settings.base_url}{settings.path}",
        "served_model": settings.model,
        "load": settings.model_dump(exclude={"base_url", "model"}),
        "ttft_ms": ttft_ms,
        "tpot_ms": tpot_ms,
        "itl_ms": summarize(itl, 1e3),
        "e2e_ms": summarize(e2e, 1e3),
        "percentile_method": PERCENTILE_METHOD,
        "completed_requests": len(completed),
        "errors": len(errors),
        "error_samples": errors[:5],
        "output_tokens_total": output_tokens,
        "token_count_source": "usage" if all(record.usage_reported for record in completed) else "chunks",
        "mean_prompt_tokens": float(np.mean(prompt_tokens)) if prompt_tokens else None,
        "prompt_words": run.prompt_words,
        "warmup_prompt_tokens": run.warmup_prompt_tokens,
        "wall_seconds": wall,
        "goodput_rps": float(meets_sla.sum()) / wall,
        "sla": {"ttft_ms": settings.sla_ttft_ms, "tpot_ms": settings.sla_tpot_ms},
        "client": {
            "event_loop_lag_ms": lag,
            "request_build_ms": summarize([record.sent - record.queued for record in completed], 1e3),
            "cpu_seconds": run.client_cpu_seconds,
            "cpu_fraction_of_one_core": run.client_cpu_seconds / wall if wall else None,
        },
        "accuracy": {"correct": run.accuracy_correct, "tasks": run.accuracy_total},
        "tool_versions": {
            "benchmark_platform": benchmark_platform.__version__,
            "httpx": httpx.__version__,
            "python": platform.python_version(),
        },
        "warnings": warnings,
    }
    detail.update(extra_detail or {})
    return Measurement(
        **_percentile_columns("ttft", ttft_ms),
        **_percentile_columns("tpot", tpot_ms),
        throughput_tokens_sec=output_tokens / wall,
        rps_sustained=len(completed) / wall,
        accuracy_score=run.accuracy_correct / run.accuracy_total if run.accuracy_total else None,
        gpu_utilization_pct=gpu_utilization_pct,
        memory_used_gb=memory_used_gb,
        detailed_metrics=detail,
        runner="measured",
    )


def samples_of(records: list[RequestRecord], started: float) -> dict:
    """The completed requests' raw samples (integer microseconds), in send order."""
    done = sorted((r for r in records if r.error is None and r.token_times), key=lambda r: r.sent)
    us = 1e6

    def column(values: Any) -> list[int]:
        return [round(value) for value in values]

    itl = [round(gap * us) for record in done for gap in np.diff(record.token_times)]
    return encode_samples(
        {
            "sent_us": column((r.sent - started) * us for r in done),
            "ttft_us": column(r.ttft * us for r in done),
            "e2e_us": column(r.e2e * us for r in done),
            "output_tokens": [r.output_tokens for r in done],
            "prompt_tokens": [r.prompt_tokens or 0 for r in done],
            "itl_count": [len(r.token_times) - 1 for r in done],
        },
        itl,
    )


def flat_figures(measurement: Measurement) -> dict[str, Any]:
    """One flat object: the benchmark_results metric columns, then the extra figures (for ``--json``)."""
    detail = measurement.detailed_metrics
    figures: dict[str, Any] = {column: getattr(measurement, column) for column in METRIC_COLUMNS}
    figures["runner"] = measurement.runner
    for name in ("itl_ms", "e2e_ms"):
        summary = detail.get(name) or {}
        figures |= {f"{name[:-3]}_p{p}_ms": summary.get(f"p{p}") for p in (50, 90, 99)}
        figures[f"{name[:-3]}_mean_ms"] = summary.get("mean")
    for key in (
        "goodput_rps",
        "completed_requests",
        "errors",
        "output_tokens_total",
        "mean_prompt_tokens",
        "wall_seconds",
        "token_count_source",
        "warnings",
    ):
        figures[key] = detail.get(key)
    lag = (detail.get("client") or {}).get("event_loop_lag_ms") or {}
    figures["client_loop_lag_p99_ms"] = lag.get("p99")
    return figures
