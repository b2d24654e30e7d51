"""Benchmark runners: a claimed config (``RunSpec``) in, a validated ``Measurement`` out.

``get_runner("simulated", simulate_seconds=0.0, seed=None, should_stop=None)`` estimates from the roofline model;
``get_runner("openai", ...)`` measures a live OpenAI-compatible server (see ``openai_runner.OpenAIRunner``).
"""

from __future__ import annotations

from typing import Any

from benchmark_platform.runners.base import (
    METRIC_COLUMNS,
    FrameworkFacts,
    HardwareFacts,
    Measurement,
    ModelFacts,
    RunInterrupted,
    Runner,
    RunnerError,
    RunSpec,
    WorkloadFacts,
)

RUNNER_NAMES = ("simulated", "openai")


def get_runner(name: str, **options: Any) -> Runner:
    """The runner called ``name``, built with ``options`` (a bad name or option raises ValueError)."""
    if name == "simulated":
        from benchmark_platform.runners.simulated import SimulatedRunner

        factory: Any = SimulatedRunner
    elif name == "openai":
        from benchmark_platform.runners.openai_runner import OpenAIRunner

        factory = OpenAIRunner
    else:
        raise ValueError(f"unknown runner {name!r}; choose one of {', '.join(RUNNER_NAMES)}")
    try:
        return factory(**options)
    except TypeError as error:
        raise ValueError(f"bad options for runner {name!r}: {error}") from error


__all__ = [
    "METRIC_COLUMNS",
    "RUNNER_NAMES",
    "FrameworkFacts",
    "HardwareFacts",
    "Measurement",
    "ModelFacts",
    "RunInterrupted",
    "RunSpec",
    "Runner",
    "RunnerError",
    "WorkloadFacts",
    "get_runner",
]
