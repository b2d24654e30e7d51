"""The step pod config, rendered the way dagster-k8s's k8s_job_executor renders it: op tags parsed by
``get_user_defined_k8s_config``, merged over a base container context, built into a Job by
``construct_dagster_k8s_job`` and validated against the Kubernetes OpenAPI schema. No cluster needed."""

from __future__ import annotations

import json
import re
from typing import Any

import dagster as dg
import kubernetes_validate
import pytest
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import (
    USER_DEFINED_K8S_CONFIG_KEY,
    UserDefinedDagsterK8sConfig,
    get_user_defined_k8s_config,
)

from benchmark_platform.k8s_config import (
    GPU_POOL_TAG_KEY,
    K8S_CONFIG_TAG_KEY,
    OWN_GPU_TYPE_LABEL_KEY,
    PART_OF_LABEL_KEY,
    PRESETS,
    SpotNodeSettings,
    gpu_type_slug,
    pool_name,
    step_k8s_config,
    step_op_tags,
)
from benchmark_platform.settings import DATABASE_URL_ENV
from benchmark_platform_tests.factories import CODE_LOCATION_IMAGE, KUBERNETES_VERSIONS, render_step_job

GPU_IMAGE = "ghcr.io/example/benchmark-platform:0.1.0-gpu"

H100_X8 = {
    "name": "aws-h100-sxm-x8",
    "gpu_type": "H100-SXM",
    "gpu_count": 8,
    "vram_per_gpu_gb": 80,
    "spot_available": True,
    "cloud_provider": "aws",
    "specs": {"vendor": "nvidia", "memory_bandwidth_gbps": 3350},
}
MI300X_X8 = {
    "name": "azure-mi300x-x8",
    "gpu_type": "MI300X",
    "gpu_count": 8,
    "vram_per_gpu_gb": 192,
    "spot_available": True,
    "specs": {"vendor": "amd"},
}


def assert_valid_kubernetes(resource: dict[str, Any]) -> None:
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(resource, version, strict=True)


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def test_an_nvidia_step_pod_asks_for_its_gpus_on_spot_nodes_of_its_model() -> None:
    settings = SpotNodeSettings.preset("eks-karpenter", gpu_image=GPU_IMAGE)
    job = render_step_job({K8S_CONFIG_TAG_KEY: step_k8s_config(H100_X8, settings)})
    assert_valid_kubernetes(job)

    spec = pod_spec(job)
    (container,) = spec["containers"]
    assert container["image"] == GPU_IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"] == ["dagster", "api", "execute_step"]
    assert container["resources"]["limits"] == {"cpu": "24", "memory": "96Gi", "nvidia.com/gpu": "8"}
    assert container["resources"]["requests"] == container["resources"]["limits"]
    assert spec["nodeSelector"] == {"karpenter.k8s.aws/instance-gpu-name": "h100", "karpenter.sh/capacity-type": "spot"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"key": "benchmark-platform/spot", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["terminationGracePeriodSeconds"] == 120
    assert spec["serviceAccountName"] == "benchmark-platform-step"
    assert spec["automountServiceAccountToken"] is False
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 0  # a preempted step fails and the op's RetryPolicy retries it

    env = {item["name"]: item for item in container["env"]}
    assert env[DATABASE_URL_ENV]["valueFrom"]["secretKeyRef"] == {
        "name": "benchmark-platform-db",
        "key": "database-url",
    }
    assert env["BENCHMARK_PLATFORM_EXECUTOR"]["value"] == "k8s"
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True
    assert env["DAGSTER_RUN_JOB_NAME"]["value"] == "benchmark"
    assert env["DAGSTER_HOME"]["value"] == "/opt/dagster/dagster_home"

    labels = job["spec"]["template"]["metadata"]["labels"]
    assert labels[PART_OF_LABEL_KEY] == "benchmark-platform"  # overrides dagster-k8s's own part-of=dagster
    assert labels[GPU_POOL_TAG_KEY] == "gpu-aws-h100-sxm-x8"
    assert labels["benchmark-platform/hardware"] == "aws-h100-sxm-x8"
    assert labels["dagster/op"] == "run_benchmark"
    assert job["metadata"]["labels"][GPU_POOL_TAG_KEY] == "gpu-aws-h100-sxm-x8"


def test_a_step_pod_is_non_root_with_writable_home_and_shared_memory() -> None:
    job = render_step_job({K8S_CONFIG_TAG_KEY: step_k8s_config(H100_X8)})
    spec = pod_spec(job)
    (container,) = spec["containers"]
    assert spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "capabilities": {"drop": ["ALL"]},
    }
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    assert volumes[mounts["/home/app"]]["emptyDir"] == {"sizeLimit": "200Gi"}
    assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": "16Gi"}
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["HOME"] == env["TMPDIR"] == "/home/app"


def test_without_a_gpu_image_the_step_runs_the_code_location_image() -> None:
    job = render_step_job({K8S_CONFIG_TAG_KEY: step_k8s_config(H100_X8, SpotNodeSettings())})
    assert pod_spec(job)["containers"][0]["image"] == CODE_LOCATION_IMAGE


def test_an_amd_step_pod_asks_for_amd_gpus_and_the_device_groups() -> None:
    job = render_step_job({K8S_CONFIG_TAG_KEY: step_k8s_config(MI300X_X8, SpotNodeSettings.preset("aks"))})
    assert_valid_kubernetes(job)
    spec = pod_spec(job)
    limits = spec["containers"][0]["resources"]["limits"]
    assert limits["amd.com/gpu"] == "8" and "nvidia.com/gpu" not in limits
    assert {"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Exists", "effect": "NoSchedule"} in spec[
        "tolerations"
    ]
    assert spec["nodeSelector"] == {
        "benchmark-platform/gpu-type": "mi300x",
        "kubernetes.azure.com/scalesetpriority": "spot",
    }
    assert spec["securityContext"]["supplementalGroups"] == [44]


def test_hardware_without_spot_capacity_does_not_require_spot_nodes() -> None:
    on_demand_only = {**H100_X8, "spot_available": False}
    spec = pod_spec(render_step_job({K8S_CONFIG_TAG_KEY: step_k8s_config(on_demand_only)}))
    assert spec["nodeSelector"] == {"benchmark-platform/gpu-type": "h100-sxm"}


def test_the_op_tag_wins_over_cpu_defaults_of_the_run_launcher_and_code_location() -> None:
    defaults = K8sContainerContext(
        service_account_name="benchmark-platform",
        resources={"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
        labels={PART_OF_LABEL_KEY: "benchmark-platform", "benchmark-platform/component": "code-location"},
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(
            {"pod_spec_config": {"automount_service_account_token": True}}
        ),
    )
    job = render_step_job({K8S_CONFIG_TAG_KEY: step_k8s_config(H100_X8)}, base_context=defaults)
    assert_valid_kubernetes(job)
    spec = pod_spec(job)
    resources = spec["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "24", "memory": "96Gi", "nvidia.com/gpu": "8"}
    assert resources["limits"] == resources["requests"]
    assert spec["serviceAccountName"] == "benchmark-platform-step"
    assert spec["automountServiceAccountToken"] is False
    assert job["spec"]["template"]["metadata"]["labels"]["benchmark-platform/component"] == "benchmark-step"


def test_dagster_accepts_the_op_tags_and_hands_them_to_the_executor_unchanged() -> None:
    tags = step_op_tags(H100_X8, SpotNodeSettings.preset("gke"))

    @dg.op(tags=tags)
    def run_benchmark() -> None:
        """A stand-in benchmark op: only its tags matter here."""

    assert run_benchmark.tags[GPU_POOL_TAG_KEY] == "gpu-aws-h100-sxm-x8"
    parsed = get_user_defined_k8s_config(run_benchmark.tags)
    assert parsed.pod_spec_config["node_selector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
        "cloud.google.com/gke-spot": "true",
    }
    assert parsed.merge_behavior.value == "DEEP"
    assert json.loads(run_benchmark.tags[USER_DEFINED_K8S_CONFIG_KEY]) == tags[K8S_CONFIG_TAG_KEY]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_renders_a_valid_job(preset: str) -> None:
    hardware = {**H100_X8, "gpu_type": "L4", "gpu_count": 1, "vram_per_gpu_gb": 24, "name": "gcp-l4-x1"}
    assert_valid_kubernetes(render_step_job(step_op_tags(hardware, SpotNodeSettings.preset(preset))))


@pytest.mark.parametrize(
    ("gpu_type", "vram", "gke", "karpenter"),
    [
        ("H100-SXM", 80, "nvidia-h100-80gb", "h100"),
        ("H100-MEGA", 80, "nvidia-h100-mega-80gb", "h100"),
        ("A100-SXM4-80GB", 80, "nvidia-a100-80gb", "a100"),
        ("A100", 40, "nvidia-tesla-a100", "a100"),
        ("L4", 24, "nvidia-l4", "l4"),
        ("L40S", 48, None, "l40s"),
    ],
)
def test_cloud_presets_translate_catalog_gpu_types_to_node_label_values(
    gpu_type: str, vram: int, gke: str | None, karpenter: str
) -> None:
    hardware = {**H100_X8, "gpu_type": gpu_type, "vram_per_gpu_gb": vram}
    eks = step_k8s_config(hardware, SpotNodeSettings.preset("eks-karpenter"))
    assert eks["pod_spec_config"]["node_selector"]["karpenter.k8s.aws/instance-gpu-name"] == karpenter
    if gke is None:
        with pytest.raises(ValueError, match="cloud.google.com/gke-accelerator.*L40S.*gpu_type_label_values"):
            step_k8s_config(hardware, SpotNodeSettings.preset("gke"))
    else:
        gke_config = step_k8s_config(hardware, SpotNodeSettings.preset("gke"))
        assert gke_config["pod_spec_config"]["node_selector"]["cloud.google.com/gke-accelerator"] == gke


def test_a_translation_table_can_be_extended_for_a_new_gpu_type() -> None:
    settings = SpotNodeSettings.preset("gke", gpu_type_label_values={"nvidia-rtx-pro-6000": "nvidia-rtx-pro-6000"})
    hardware = {**H100_X8, "gpu_type": "NVIDIA RTX PRO 6000"}
    selector = step_k8s_config(hardware, settings)["pod_spec_config"]["node_selector"]
    assert selector["cloud.google.com/gke-accelerator"] == "nvidia-rtx-pro-6000"


def test_pool_names_are_valid_label_values_and_stay_distinct() -> None:
    assert pool_name("aws-h100-sxm-x8") == "gpu-aws-h100-sxm-x8"
    assert pool_name("Azure ND H100 v5 (x8)") == "gpu-azure-nd-h100-v5-x8"
    long_a, long_b = pool_name("a" * 80 + "-1"), pool_name("a" * 80 + "-2")
    assert long_a != long_b and len(long_a) <= 63 and len(long_b) <= 63
    for name in (long_a, long_b, pool_name("x")):
        assert kubernetes_label_value_is_valid(name)
    assert gpu_type_slug("H100-SXM") == "h100-sxm"
    with pytest.raises(ValueError, match="no letters or digits"):
        pool_name("")


def kubernetes_label_value_is_valid(value: str) -> bool:
    return len(value) <= 63 and re.fullmatch(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]", value) is not None


def test_settings_load_from_environment_variables() -> None:
    environ = {
        "BENCHMARK_PLATFORM_K8S_PRESET": "gke",
        "BENCHMARK_PLATFORM_K8S_GPU_IMAGE": GPU_IMAGE,
        "BENCHMARK_PLATFORM_K8S_TERMINATION_GRACE_PERIOD_SECONDS": "90",
        "BENCHMARK_PLATFORM_K8S_SPOT_NODE_LABELS": '{"cloud.google.com/gke-spot": "true", "pool": "bench"}',
        "BENCHMARK_PLATFORM_K8S_MODEL_HUB_SECRET_NAME": "",
    }
    settings = SpotNodeSettings.from_env(environ)
    assert settings.gpu_type_label_key == "cloud.google.com/gke-accelerator"
    assert settings.gpu_image == GPU_IMAGE
    assert settings.termination_grace_period_seconds == 90
    assert settings.spot_node_labels == {"cloud.google.com/gke-spot": "true", "pool": "bench"}
    assert settings.model_hub_secret_name == "benchmark-platform-model-hub"  # empty means unset
    assert SpotNodeSettings.from_env({}) == SpotNodeSettings()
    assert SpotNodeSettings.from_mapping({"preset": "aks", "cpu_per_gpu": 4}).cpu_per_gpu == 4


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BENCHMARK_PLATFORM_K8S_PRESET": "openshift"}, "unknown node preset 'openshift'"),
        (
            {"BENCHMARK_PLATFORM_K8S_SPOT_NODE_LABELS": "spot=true"},
            "BENCHMARK_PLATFORM_K8S_SPOT_NODE_LABELS must be JSON",
        ),
        ({"BENCHMARK_PLATFORM_K8S_TERMINATION_GRACE_PERIOD_SECONDS": "5"}, "greater than or equal to 30"),
        ({"BENCHMARK_PLATFORM_K8S_IMAGE_PULL_POLICY": "Sometimes"}, "image_pull_policy"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SpotNodeSettings.from_env(environ)


@pytest.mark.parametrize(
    ("hardware", "message"),
    [
        ({**H100_X8, "gpu_count": 0}, "gpu_count"),
        ({**H100_X8, "specs": {"vendor": "intel"}}, "vendor"),
        ({key: value for key, value in H100_X8.items() if key != "specs"}, "vendor"),
        ({**H100_X8, "gpu_type": "--"}, "no letters or digits"),
    ],
)
def test_hardware_that_cannot_describe_a_step_pod_is_refused(hardware: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        step_k8s_config(hardware)


def test_hardware_objects_work_like_mappings() -> None:
    class Hardware:
        name = "aws-l4-x1"
        gpu_type = "L4"
        gpu_count = 1
        vram_per_gpu_gb = 24
        spot_available = True
        specs = {"vendor": "nvidia"}

    assert step_k8s_config(Hardware()) == step_k8s_config(
        {"name": "aws-l4-x1", "gpu_type": "L4", "gpu_count": 1, "vram_per_gpu_gb": 24, "specs": {"vendor": "nvidia"}}
    )


def test_every_drain_op_of_the_results_asset_renders_its_gpu_step_job() -> None:
    """The real op graph, not a stand-in: each GPU pool's drain op becomes a valid Job pinned to that pool."""
    from benchmark_platform import catalogs
    from benchmark_platform.defs.benchmarks import benchmark_results

    hardware = {hw.name: hw for hw in catalogs.load_hardware()}
    drains = [
        n.definition for n in benchmark_results.node_def.nodes_in_topological_order if n.name.startswith("drain_")
    ]
    assert len(drains) == len(hardware)
    for op in drains:
        job = render_step_job(op.tags)
        assert_valid_kubernetes(job)
        spec = pod_spec(job)
        labels = job["spec"]["template"]["metadata"]["labels"]
        hw = hardware[labels["benchmark-platform/hardware"]]
        gpu_resource = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}[hw.specs.vendor]
        (container,) = spec["containers"]
        assert container["resources"]["limits"][gpu_resource] == str(hw.gpu_count), op.name
        assert container["image"] == CODE_LOCATION_IMAGE
        assert spec["nodeSelector"][OWN_GPU_TYPE_LABEL_KEY] == gpu_type_slug(hw.gpu_type)
        assert {"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert any(t["key"] == "benchmark-platform/spot" for t in spec["tolerations"])
        assert ("benchmark-platform/capacity-type" in spec["nodeSelector"]) == hw.spot_available
        assert spec["terminationGracePeriodSeconds"] >= 60
        assert DATABASE_URL_ENV in {item["name"] for item in container["env"]}
        assert labels[GPU_POOL_TAG_KEY] == op.pool == pool_name(hw.name)
