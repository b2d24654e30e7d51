"""The one interface every runner implements: a claimed config in, a validated measurement out.

The facts a ``RunSpec`` carries (model, hardware, framework, workload) are ``benchmark_platform.domain``'s, re-exported
here for the runners.

A runner raises ``RunnerError`` (with a message a person can act on) instead of returning a partial result;
the worker turns that into the config's failure message.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from benchmark_platform.domain import (
    FrameworkFacts,
    HardwareFacts,
    ModelFacts,
    ServingOptions,
    WorkloadFacts,
    require_runnable_options,
)

METRIC_COLUMNS = (
    "ttft_p50_ms",
    "ttft_p90_ms",
    "ttft_p99_ms",
    "tpot_p50_ms",
    "tpot_p90_ms",
    "tpot_p99_ms",
    "throughput_tokens_sec",
    "rps_sustained",
    "accuracy_score",
    "gpu_utilization_pct",
    "memory_used_gb",
    # Revision 0002: the field's serving figures. throughput_tokens_sec above is output tokens/s per node.
    "total_tokens_sec",
    "output_tokens_sec_per_gpu",
    "total_tokens_sec_per_gpu",
    "interactivity_tokens_sec",
    "cost_per_million_output_tokens",
    "cost_per_million_total_tokens",
    "energy_per_output_token_j",
)


class RunnerError(RuntimeError):
    """A benchmark could not produce a trustworthy measurement; the message says why."""


class RunInterrupted(RunnerError):
    """The run was asked to stop (``should_stop`` turned true, e.g. on SIGTERM) before it finished; nothing was
    measured, so the worker may release the config without counting an attempt."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunSpec(_Frozen):
    """A claimed config, fully resolved: everything needed to run it without touching the database.

    The node serves ``replicas = gpu_count / tensor_parallel`` copies of the model, each on ``tensor_parallel``
    GPUs; ``batch_size`` is the number of concurrent requests per replica. Left out, ``tensor_parallel`` is the
    node's GPU count (one replica: the shape every config had before revision 0002).
    """

    config_id: uuid.UUID | None = None
    model: ModelFacts
    hardware: HardwareFacts
    framework: FrameworkFacts
    workload: WorkloadFacts
    batch_size: int = Field(gt=0, description="concurrent requests per replica")
    sequence_length: int = Field(gt=0, description="prompt length in tokens")
    tensor_parallel: int = Field(default=0, ge=0, description="GPUs per replica; 0 = all of the node's GPUs")
    options: ServingOptions = Field(default_factory=ServingOptions, description="the engine options beyond TP")
    seed: int = 0

    @model_validator(mode="after")
    def _deployment_is_valid(self) -> RunSpec:
        if self.tensor_parallel == 0:
            object.__setattr__(self, "tensor_parallel", self.hardware.gpu_count)
        if self.hardware.gpu_count % self.tensor_parallel:
            raise ValueError(
                f"tensor_parallel {self.tensor_parallel} does not divide {self.hardware.name}'s "
                f"{self.hardware.gpu_count} GPUs"
            )
        require_runnable_options(self.model, self.tensor_parallel, self.options)
        return self

    @property
    def replicas(self) -> int:
        return self.hardware.gpu_count // self.tensor_parallel


class Measurement(BaseModel):
    """Every metric column of `benchmark_results`, validated, plus raw detail and the runner label."""

    model_config = ConfigDict(extra="forbid")

    ttft_p50_ms: float = Field(ge=0)
    ttft_p90_ms: float = Field(ge=0)
    ttft_p99_ms: float = Field(ge=0)
    tpot_p50_ms: float = Field(ge=0)
    tpot_p90_ms: float = Field(ge=0)
    tpot_p99_ms: float = Field(ge=0)
    throughput_tokens_sec: float = Field(gt=0)
    rps_sustained: float = Field(gt=0)
    accuracy_score: float | None = Field(default=None, ge=0, le=1)
    gpu_utilization_pct: float | None = Field(default=None, ge=0, le=100)
    memory_used_gb: float | None = Field(default=None, ge=0)
    total_tokens_sec: float | None = Field(default=None, gt=0, description="input + output tokens/s, whole node")
    output_tokens_sec_per_gpu: float | None = Field(default=None, gt=0)
    total_tokens_sec_per_gpu: float | None = Field(default=None, gt=0)
    interactivity_tokens_sec: float | None = Field(default=None, gt=0, description="1000 / TPOT p50: tok/s per user")
    cost_per_million_output_tokens: float | None = Field(default=None, gt=0, description="at detailed price basis")
    cost_per_million_total_tokens: float | None = Field(default=None, gt=0)
    energy_per_output_token_j: float | None = Field(default=None, gt=0)
    detailed_metrics: dict[str, Any] = Field(default_factory=dict)
    runner: Literal["measured", "simulated"]

    @model_validator(mode="after")
    def _percentiles_ordered(self) -> Measurement:
        for metric in ("ttft", "tpot"):
            p50, p90, p99 = (getattr(self, f"{metric}_p{p}_ms") for p in (50, 90, 99))
            if not p50 <= p90 <= p99:
                raise ValueError(f"{metric} percentiles out of order: p50={p50} p90={p90} p99={p99}")
        return self

    def result_columns(self) -> dict[str, Any]:
        """The values to insert into `benchmark_results` (metric columns, detail and label)."""
        return self.model_dump(include=set(METRIC_COLUMNS) | {"detailed_metrics", "runner"})


class Runner(Protocol):
    """Runs one config. ``close`` releases what the runner keeps between configs (an inference server)."""

    name: str

    def run(self, spec: RunSpec) -> Measurement: ...

    def close(self) -> None: ...


__all__ = [
    "METRIC_COLUMNS",
    "FrameworkFacts",
    "HardwareFacts",
    "Measurement",
    "ModelFacts",
    "RunInterrupted",
    "Runner",
    "RunnerError",
    "RunSpec",
    "WorkloadFacts",
]
