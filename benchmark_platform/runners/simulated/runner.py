"""The ``simulated`` runner: one replica's serving simulated, scaled to the node, labelled runner="simulated".

The simulation is ``serving_sim.simulate_serving`` (continuous batching with chunked prefill, KV-cache admission,
roofline step costs).

It lets the whole pipeline (queue, results, ranking) run without GPUs. The simulator predicts ONE replica (one
tensor-parallel group of ``spec.tensor_parallel`` GPUs at ``spec.batch_size`` concurrent requests); this module
turns that into the config's result: per node = replicas x replica figures, per GPU = per node / gpu_count, cost at
the node's price, energy = board power x busy share. Its numbers are estimates from spec sheets and are never
presented as measurements; docs/simulator-accuracy.md compares them with published results, and every result
states beside its predictor how far that predictor was off on the held-out rows nearest it
(``detailed_metrics.predictor.held_out_error``, ``held_out``).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable

import numpy as np

import benchmark_platform
from benchmark_platform.runners.base import (
    FrameworkFacts,
    HardwareFacts,
    Measurement,
    ModelFacts,
    RunInterrupted,
    RunnerError,
    RunSpec,
)
from benchmark_platform.runners.serving_metrics import deployment_figures, simulated_node_power_watts
from benchmark_platform.runners.simulated import roofline
from benchmark_platform.runners.simulated.held_out import held_out_error
from benchmark_platform.runners.simulated.serving_sim import ServingSimulation, simulate_serving
from benchmark_platform.runners.stats import summarize
from benchmark_platform.workloads import SHARED_PREFIX_FRACTION

# Accuracy lost to quantization, in absolute points of an exact-match score: typical of published AWQ/GPTQ/FP8
# evaluations of 7B-70B models (FP8 and INT8 within half a point, 4-bit one to two points).
# fp4 (NVFP4 / MXFP4) as int4, another 4-bit weight format: a planning figure until accuracy rows of its own fit it.
QUANTIZATION_ACCURACY_PENALTY = {
    "fp32": 0.0,
    "fp16": 0.0,
    "bf16": 0.0,
    "fp8": 0.003,
    "int8": 0.006,
    "int4": 0.015,
    "fp4": 0.015,
}
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


def config_seed(spec: RunSpec, seed: int) -> int:
    """A seed that depends only on what is measured and ``seed``, so a config re-run gives the same numbers."""
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
            spec.tensor_parallel,
            seed,
        )
    )
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big")


def simulated_accuracy(spec: RunSpec) -> float | None:
    """Baseline accuracy minus the quantization penalty; None when the workload scores none or baseline is unknown."""
    if not spec.workload.measure_accuracy or spec.model.baseline_accuracy is None:
        return None
    return max(0.0, spec.model.baseline_accuracy - QUANTIZATION_ACCURACY_PENALTY[spec.model.quantization])


def measurement_from_replica(
    replica: ServingSimulation,
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    *,
    tensor_parallel: int,
    concurrency: int | None,
    input_tokens: int,
    output_tokens: int,
    sla_ttft_p90_ms: float | None = None,
    sla_tpot_p90_ms: float | None = None,
    accuracy_score: float | None = None,
    seed: int = 0,
) -> Measurement:
    """The node's result from one replica's simulation: per node = replicas x replica, per GPU = node / GPUs."""
    replicas = hardware.gpu_count // tensor_parallel
    ttft_ms, tpot_ms = summarize(replica.ttft_s, 1e3), summarize(replica.tpot_s, 1e3)
    ttft, tpot = replica.ttft_s, replica.tpot_s
    sla_met = np.ones(ttft.size, dtype=bool)
    if sla_ttft_p90_ms is not None:
        sla_met &= ttft * 1e3 <= sla_ttft_p90_ms
    if sla_tpot_p90_ms is not None:
        sla_met &= tpot * 1e3 <= sla_tpot_p90_ms
    node_rps = replicas * replica.requests_per_s
    figures, basis = deployment_figures(
        hardware,
        output_tokens_per_s_node=replicas * replica.output_tokens_per_s,
        total_tokens_per_s_node=replicas * replica.total_tokens_per_s,
        tpot_p50_ms=tpot_ms["p50"],
        node_power_watts=simulated_node_power_watts(hardware, replica.gpu_busy_fraction),
    )
    return Measurement(
        ttft_p50_ms=ttft_ms["p50"],
        ttft_p90_ms=ttft_ms["p90"],
        ttft_p99_ms=ttft_ms["p99"],
        tpot_p50_ms=tpot_ms["p50"],
        tpot_p90_ms=tpot_ms["p90"],
        tpot_p99_ms=tpot_ms["p99"],
        rps_sustained=node_rps,
        accuracy_score=accuracy_score,
        gpu_utilization_pct=100.0 * replica.gpu_busy_fraction,
        memory_used_gb=replica.memory_per_gpu_gb * hardware.gpu_count,
        runner="simulated",
        **figures,
        detailed_metrics={
            "runner_name": "simulated",
            "predictor": replica.predictor
            | {"held_out_error": held_out_error(replica.predictor, model, hardware, framework)},
            "tool_versions": {"benchmark_platform": benchmark_platform.__version__},
            "seed": seed,
            "deployment": {
                "tensor_parallel": tensor_parallel,
                "replicas": replicas,
                "gpu_count": hardware.gpu_count,
                "node_figures": "replicas x one simulated replica; per GPU = node / gpu_count",
            },
            "load": {
                "mode": "closed-loop" if concurrency is not None else "open-loop",
                "concurrency_per_replica": concurrency,
                "concurrency_node": concurrency * replicas if concurrency is not None else None,
                "request_rate_node": node_rps if concurrency is None else None,
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "simulated_requests": replica.completed_requests,
                "window_seconds": replica.duration_s,
            },
            "ttft_ms": ttft_ms,
            "tpot_ms": tpot_ms,
            "itl_ms": summarize(replica.itl_s, 1e3),
            "e2e_ms": summarize(replica.e2e_s, 1e3),
            "goodput_rps": node_rps * float(sla_met.mean()),
            "sla_met_fraction": float(sla_met.mean()),
            "errors": 0,
            "replica": {
                "output_tokens_per_s": replica.output_tokens_per_s,
                "total_tokens_per_s": replica.total_tokens_per_s,
                "requests_per_s": replica.requests_per_s,
                "memory_per_gpu_gb": replica.memory_per_gpu_gb,
                "gpu_busy_fraction": replica.gpu_busy_fraction,
                "preemptions": replica.preemptions,
                "prefill_bound": replica.prefill_bound,
                "decode_bound": replica.decode_bound,
                "kv_capacity_tokens": replica.kv_capacity_tokens,
                "max_running_sequences": replica.max_running_sequences,
                "mean_running_sequences": replica.mean_running_sequences,
            },
            "cost": {**basis, "note": "node price / node tokens per hour"},
            "energy": "simulated: board power (tdp_watts) x GPU busy share x GPUs / output tokens per second",
            "assumptions": replica.assumptions
            | {
                "gpu_utilization": "simulated GPU-busy share of the window",
                "memory_used_gb": "per-GPU peak (weights + KV cache in use + runtime reserve) x the node's GPUs",
            },
        },
    )


def simulate(spec: RunSpec, seed: int) -> Measurement:
    """A deterministic simulated measurement of ``spec`` (raises ``roofline.DoesNotFitError``)."""
    output_tokens = spec.workload.typical_output_tokens
    replica = simulate_serving(
        spec.model,
        spec.hardware,
        spec.framework,
        tensor_parallel=spec.tensor_parallel,
        input_tokens=spec.sequence_length,
        output_tokens=output_tokens,
        concurrency=spec.batch_size,
        seed=config_seed(spec, seed),
        # what prefix caching can skip and whose speculative acceptance applies: the use case's dataset
        shared_prefix_fraction=SHARED_PREFIX_FRACTION.get(spec.workload.dataset, 0.0),
        dataset=spec.workload.dataset,
        options=spec.options,
    )
    measurement = measurement_from_replica(
        replica,
        spec.model,
        spec.hardware,
        spec.framework,
        tensor_parallel=spec.tensor_parallel,
        concurrency=spec.batch_size,
        input_tokens=spec.sequence_length,
        output_tokens=output_tokens,
        sla_ttft_p90_ms=spec.workload.sla_ttft_p90_ms,
        sla_tpot_p90_ms=spec.workload.sla_tpot_p90_ms,
        accuracy_score=simulated_accuracy(spec),
        seed=seed,
    )
    measurement.detailed_metrics["assumptions"]["accuracy_penalty"] = QUANTIZATION_ACCURACY_PENALTY[
        spec.model.quantization
    ]
    return measurement
