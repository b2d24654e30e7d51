"""The executor of benchmark runs, chosen by configuration: the same op graph runs locally or as Kubernetes Jobs.

``BENCHMARK_PLATFORM_EXECUTOR``: ``multiprocess`` (default: one local process per step, so replicas run in parallel),
``in_process`` (tests, debugging) or ``k8s`` (dagster-k8s's ``k8s_job_executor``: every step is a Kubernetes Job, and
each benchmark op's ``dagster-k8s/config`` tag pins it to its GPU spot node pool).
"""

from __future__ import annotations

import os

import dagster as dg

from benchmark_platform.k8s_config import EXECUTOR_ENV, K8S_EXECUTOR

EXECUTOR_CHOICES = ("multiprocess", "in_process", K8S_EXECUTOR)


def benchmark_executor() -> dg.ExecutorDefinition:
    choice = os.environ.get(EXECUTOR_ENV, "multiprocess").strip() or "multiprocess"
    if choice == K8S_EXECUTOR:
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor
    raise ValueError(f"{EXECUTOR_ENV}={choice!r}: choose one of {', '.join(EXECUTOR_CHOICES)}")
