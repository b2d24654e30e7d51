"""The ``simulated`` runner: roofline timings plus small seeded noise, labelled runner="simulated".

It lets the whole pipeline (queue, results, ranking) run without GPUs. Its numbers are estimates from spec sheets and
are never presented as measurements; docs/simulator-accuracy.md compares them with published results.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

import numpy as np

import benchmark_platform
from benchmark_platform.runners import roofline
from benchmark_platform.runners.base import Measurement, RunInterrupted, RunnerError, RunSpec
from benchmark_platform.runners.stats import summarize

# Accuracy lost to quantization, in absolute points of an exact-match score: typical of published AWQ/GPTQ/FP8
# evaluations of 7B-70B models (FP8 and INT8 within half a point, 4-bit one to two points).
QUANTIZATION_ACCURACY_PENALTY = {"fp32": 0.0, "fp16": 0.0, "bf16": 0.0, "fp8": 0.003, "int8": 0.006, "int4": 0.015}
# Relative spread (log-normal sigma) of the simulated samples: prefill varies more (scheduling, chunk boundaries)
# than decode steps.
TTFT_NOISE = 0.05
TPOT_NOISE = 0.02
CYCLE_NOISE = 0.01
MIN_SIMULATED_REQUESTS = 200
SLEEP_SLICE_SECONDS = 0.05


def _never_stop() -> bool:
    return False


class SimulatedRunner:
    """Estimates a config from the roofline model.

    ``simulate_seconds`` is wall time spent per config (to exercise queues and leases realistically); it is slept in
    slices of 50 ms, calling ``should_stop`` (e.g. ``threading.Event().is_set``) between slices, and raises
    ``RunInterrupted`` as soon as it returns true. ``seed``, when given, replaces the config's own seed.
    """

    name = "simulated"

    def __init__(
        self,
        simulate_seconds: float = 0.0,
        seed: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        if simulate_seconds < 0 or not math.isfinite(simulate_seconds):
            raise ValueError(f"simulate_seconds must be a finite number >= 0, got {simulate_seconds}")
        self.simulate_seconds = simulate_seconds
        self.seed = seed
        self.should_stop = should_stop or _never_stop

    def run(self, spec: RunSpec) -> Measurement:
        self._spend_wall_time()
        try:
            return simulate(spec, self.seed if self.seed is not None else spec.seed)
        except roofline.DoesNotFitError as error:
            raise RunnerError(f"does not fit in memory: {error}") from error

    def close(self) -> None:
        """Nothing is kept between configs."""

    def _spend_wall_time(self) -> None:
        deadline = time.monotonic() + self.simulate_seconds
        while True:
            if self.should_stop():
                raise RunInterrupted("simulated run stopped before it finished")
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(SLEEP_SLICE_SECONDS, left))


def _rng(spec: RunSpec, seed: int) -> np.random.Generator:
    """A generator that depends only on what is measured and the seed, so a config re-run gives the same numbers."""
    identity = "|".join(
        str(part)
        for part in (
            spec.model.version_key,
            spec.hardware.name,
            spec.framework.name,
            spec.framework.version,
            spec.workload.name,
            spec.batch_size,
            spec.sequence_length,
            seed,
        )
    )
    return np.random.default_rng(int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big"))


def simulated_accuracy(spec: RunSpec) -> float | None:
    """Baseline accuracy minus the quantization penalty; None when the workload scores none or baseline is unknown."""
    if not spec.workload.measure_accuracy or spec.model.baseline_accuracy is None:
        return None
    return max(0.0, spec.model.baseline_accuracy - QUANTIZATION_ACCURACY_PENALTY[spec.model.quantization])


def simulate(spec: RunSpec, seed: int) -> Measurement:
    """A deterministic simulated measurement of ``spec`` (raises ``roofline.DoesNotFitError``)."""
    output_tokens = spec.workload.typical_output_tokens
    estimate = roofline.estimate(
        spec.model, spec.hardware, spec.framework, spec.batch_size, spec.sequence_length, output_tokens
    )
    rng = _rng(spec, seed)
    cycles = math.ceil(max(MIN_SIMULATED_REQUESTS, 4 * spec.batch_size) / spec.batch_size)
    requests = cycles * spec.batch_size
    ttft = np.tile(estimate.ttft_seconds, cycles) * rng.lognormal(0.0, TTFT_NOISE, requests)
    tpot = estimate.tpot_seconds * rng.lognormal(0.0, TPOT_NOISE, requests) if output_tokens > 1 else np.zeros(requests)
    e2e = ttft + tpot * (output_tokens - 1)
    cycle_seconds = estimate.cycle_seconds * rng.lognormal(0.0, CYCLE_NOISE)
    ttft_ms, tpot_ms = summarize(ttft, 1e3), summarize(tpot, 1e3)
    sla_met = np.ones(requests, dtype=bool)
    if spec.workload.sla_ttft_p90_ms is not None:
        sla_met &= ttft * 1e3 <= spec.workload.sla_ttft_p90_ms
    if spec.workload.sla_tpot_p90_ms is not None:
        sla_met &= tpot * 1e3 <= spec.workload.sla_tpot_p90_ms
    requests_per_second = spec.batch_size / cycle_seconds
    return Measurement(
        ttft_p50_ms=ttft_ms["p50"],
        ttft_p90_ms=ttft_ms["p90"],
        ttft_p99_ms=ttft_ms["p99"],
        tpot_p50_ms=tpot_ms["p50"],
        tpot_p90_ms=tpot_ms["p90"],
        tpot_p99_ms=tpot_ms["p99"],
        throughput_tokens_sec=requests_per_second * output_tokens,
        rps_sustained=requests_per_second,
        accuracy_score=simulated_accuracy(spec),
        gpu_utilization_pct=100.0 * estimate.gpu_busy_fraction,
        memory_used_gb=estimate.memory_per_gpu_gb * spec.hardware.gpu_count,
        runner="simulated",
        detailed_metrics={
            "runner_name": "simulated",
            "tool_versions": {"benchmark_platform": benchmark_platform.__version__},
            "seed": seed,
            "load": {
                "mode": "closed-loop",
                "concurrency": spec.batch_size,
                "input_tokens": spec.sequence_length,
                "output_tokens": output_tokens,
                "simulated_requests": requests,
            },
            "ttft_ms": ttft_ms,
            "tpot_ms": tpot_ms,
            "itl_ms": summarize(estimate.decode_step_seconds, 1e3),
            "e2e_ms": summarize(e2e, 1e3),
            "goodput_rps": requests_per_second * float(sla_met.mean()),
            "sla_met_fraction": float(sla_met.mean()),
            "errors": 0,
            "roofline": estimate.as_dict(),
            "assumptions": {
                "noise_sigma": {"ttft": TTFT_NOISE, "tpot": TPOT_NOISE, "cycle": CYCLE_NOISE},
                "prefill_chunk_tokens": roofline.PREFILL_CHUNK_TOKENS,
                "step_overhead_ms": roofline.STEP_OVERHEAD_SECONDS * 1e3,
                "allreduce_latency_us": roofline.ALLREDUCE_LATENCY_SECONDS * 1e6,
                "prefill_efficiency": spec.framework.prefill_efficiency,
                "decode_efficiency": spec.framework.decode_efficiency,
                "accuracy_penalty": QUANTIZATION_ACCURACY_PENALTY[spec.model.quantization],
                "gpu_utilization": "roofline GPU-busy share of the cycle",
                "memory_used_gb": "weights + KV cache at full context + runtime reserve, all GPUs",
            },
        },
    )
