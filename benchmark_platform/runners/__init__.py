"""Benchmark runners: a claimed config (``RunSpec``) in, a validated ``Measurement`` out.

``RUNNERS`` is the registry: each runner declares once its name, where its class lives, the options a user may set
(the CLI's worker flags and the Dagster resource pick theirs from it) and its default claim batch. ``simulated``
estimates from the roofline model; ``openai`` measures a live OpenAI-compatible server (``runners.openai``).
Adding a runner: a module with a class implementing ``Runner``, and one entry here.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
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


@dataclass(frozen=True)
class RunnerEntry:
    """One runner: ``factory`` is ``module:Class``, imported only when the runner is used (the openai runner pulls
    in an HTTP client and GPU sampling); ``user_options`` are the constructor options a user sets by name;
    ``claim_batch`` is how many configs a worker claims per round trip by default."""

    name: str
    factory: str
    user_options: tuple[str, ...]
    claim_batch: int
    description: str

    def options_from(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The options of ``given`` this runner takes (unset ones, None, left to the runner's own defaults)."""
        return {key: value for key, value in given.items() if key in self.user_options and value is not None}


RUNNERS: dict[str, RunnerEntry] = {
    entry.name: entry
    for entry in (
        # Many configs per claim: a simulated config takes milliseconds, so round trips dominate.
        RunnerEntry(
            "simulated",
            "benchmark_platform.runners.simulated.runner:SimulatedRunner",
            user_options=("simulate_seconds", "seed"),
            claim_batch=20,
            description="roofline estimates, labelled simulated",
        ),
        # One config per claim: a claim's started_at is when its benchmark starts, and one replica should not hoard
        # minutes-long work.
        RunnerEntry(
            "openai",
            "benchmark_platform.runners.openai.runner:OpenAIRunner",
            user_options=("base_url", "model_name", "num_requests", "duration_seconds", "request_rate", "profile"),
            claim_batch=1,
            description="measures an OpenAI-compatible server (launched from the framework's template, or base_url)",
        ),
    )
}
RUNNER_NAMES = tuple(RUNNERS)


def runner_entry(name: str) -> RunnerEntry:
    try:
        return RUNNERS[name]
    except KeyError:
        raise ValueError(f"unknown runner {name!r}; choose one of {', '.join(RUNNER_NAMES)}") from None


def get_runner(name: str, **options: Any) -> Runner:
    """The runner called ``name``, built with ``options`` (a bad name or option raises ValueError)."""
    module, _, class_name = runner_entry(name).factory.partition(":")
    factory = getattr(importlib.import_module(module), class_name)
    try:
        return factory(**options)
    except TypeError as error:
        raise ValueError(f"bad options for runner {name!r}: {error}") from error


__all__ = [
    "METRIC_COLUMNS",
    "RUNNERS",
    "RUNNER_NAMES",
    "RunnerEntry",
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
    "runner_entry",
]
