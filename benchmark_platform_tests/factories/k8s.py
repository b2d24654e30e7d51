"""A step Job as dagster-k8s renders it. Imports kubernetes, so only the Kubernetes tests load it (the package
imports it on first use of one of its names)."""

from __future__ import annotations

import json
from typing import Any

import kubernetes
import kubernetes_validate
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config

# --- a step Job as dagster-k8s renders it -------------------------------------------------------------------------

KUBERNETES_VERSIONS = ("1.32", kubernetes_validate.utils.latest_version())
CODE_LOCATION_IMAGE = "ghcr.io/example/benchmark-platform:0.1.0"


def render_step_job(
    op_tags: dict[str, Any],
    base_context: K8sContainerContext | None = None,
    job_config: DagsterK8sJobConfig | None = None,
) -> dict[str, Any]:
    """The step Job dagster-k8s would create for an op with ``op_tags``, as the API server receives it."""
    string_tags = {key: value if isinstance(value, str) else json.dumps(value) for key, value in op_tags.items()}
    context = (base_context or K8sContainerContext()).merge(
        K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(string_tags))
    )
    job = construct_dagster_k8s_job(
        job_config=job_config
        or DagsterK8sJobConfig(job_image=CODE_LOCATION_IMAGE, dagster_home="/opt/dagster/dagster_home"),
        args=["dagster", "api", "execute_step"],
        job_name="dagster-step-0123456789abcdef",
        pod_name="dagster-step-0123456789abcdef",
        component="step_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": "benchmark", "dagster/op": "run_benchmark"},
        env_vars=[{"name": "DAGSTER_RUN_JOB_NAME", "value": "benchmark"}],
    )
    return kubernetes.client.ApiClient().sanitize_for_serialization(job)
