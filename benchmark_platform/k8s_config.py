"""Where a benchmark step pod runs on Kubernetes: the ``dagster-k8s/config`` op tag for one hardware config.

The orchestration attaches the tag to each benchmark op; dagster-k8s's ``k8s_job_executor`` deep-merges it over
the run launcher's and the code location's settings when it creates the step's Job. Pure data in, a dict out
(no Dagster or Kubernetes imports), so op tags can be computed when definitions load and the tests can render
the result through dagster-k8s's own job builder.

Each cloud marks its GPU spot nodes differently; ``SpotNodeSettings`` presets ("gke", "eks-karpenter", "aks",
"generic") name the node labels and taints to select and tolerate, matching the node pools in k8s/node-pools/.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import typing
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from benchmark_platform.settings import DATABASE_URL_ENV

K8S_CONFIG_TAG_KEY = "dagster-k8s/config"
GPU_POOL_TAG_KEY = "benchmark-platform/gpu-pool"
HARDWARE_LABEL_KEY = "benchmark-platform/hardware"
COMPONENT_LABEL_KEY = "benchmark-platform/component"
STEP_COMPONENT = "benchmark-step"
PART_OF_LABEL_KEY = "app.kubernetes.io/part-of"
PART_OF_LABEL_VALUE = "benchmark-platform"
OWN_GPU_TYPE_LABEL_KEY = "benchmark-platform/gpu-type"
EXECUTOR_ENV = "BENCHMARK_PLATFORM_EXECUTOR"
K8S_EXECUTOR = "k8s"
PRESET_ENV = "BENCHMARK_PLATFORM_K8S_PRESET"
SETTINGS_ENV_PREFIX = "BENCHMARK_PLATFORM_K8S_"
GPU_RESOURCE_BY_VENDOR = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
HOME_VOLUME = "benchmark-home"
SHM_VOLUME = "benchmark-dshm"

_MAX_LABEL_VALUE = 63
_NON_LABEL_CHARS = re.compile(r"[^a-z0-9]+")


class SpotNodeSettings(BaseModel):
    """How GPU spot nodes are labelled and tainted in this cluster, and what a step pod needs to run there.

    Defaults are the "generic" preset: the labels and taints our own node pools apply. Names of secrets, the
    service account and the image must match k8s/manifests/ and k8s/values.yaml.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_type_label_key: str = Field(
        OWN_GPU_TYPE_LABEL_KEY, min_length=1, description="node label whose value names the GPU model"
    )
    gpu_type_label_values: dict[str, str] = Field(
        default_factory=dict,
        description="catalog GPU type (or its family, or family-<vram>gb) -> label value; empty: the label "
        "carries gpu_type_slug(gpu_type), as our node pools set it",
    )
    spot_node_labels: dict[str, str] = Field(
        default_factory=lambda: {"benchmark-platform/capacity-type": "spot"}, min_length=1
    )
    spot_taint_key: str = Field("benchmark-platform/spot", min_length=1)
    termination_grace_period_seconds: int = Field(
        120, ge=30, le=3600, description="time between SIGTERM and SIGKILL: long enough to release claims"
    )
    gpu_image: str | None = Field(None, description="image with the inference frameworks; None: the code location's")
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    service_account_name: str = Field("benchmark-platform-step", min_length=1)
    database_secret_name: str = Field("benchmark-platform-db", min_length=1)
    database_url_secret_key: str = Field("database-url", min_length=1)
    model_hub_secret_name: str | None = Field(
        "benchmark-platform-model-hub", description="optional Secret with a model hub token (gated models)"
    )
    model_hub_token_secret_key: str = Field("token", min_length=1)
    model_hub_token_env: str = Field("HF_TOKEN", min_length=1)
    cpu_per_gpu: float = Field(3.0, gt=0, description="sized to fit the smallest one-GPU instances (4 vCPU)")
    memory_gib_per_gpu: int = Field(12, gt=0, description="sized to fit the smallest one-GPU instances (16 GiB)")
    shm_gib_per_gpu: int = Field(2, ge=1, description="memory-backed /dev/shm for tensor-parallel workers")
    home_cache_gib: int = Field(200, gt=0, description="emptyDir at $HOME: model weights and compile caches")
    home_dir: str = Field("/home/app", pattern=r"^/.+", description="the image's $HOME (see k8s/Dockerfile)")
    run_as_user: int = Field(10001, gt=0, description="the image's non-root uid (see k8s/Dockerfile)")
    read_only_root_filesystem: bool = True
    amd_supplemental_groups: list[int] = Field(
        default_factory=lambda: [44],
        description="groups owning /dev/kfd and /dev/dri on AMD nodes (video=44; add the node OS's render gid)",
    )

    @field_validator("gpu_type_label_values")
    @classmethod
    def _slug_keys(cls, table: dict[str, str]) -> dict[str, str]:
        return {gpu_type_slug(key): value for key, value in table.items()}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> SpotNodeSettings:
        """A named preset ("gke", "eks-karpenter", "aks", "generic") with some fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown node preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls.model_validate({**PRESETS[name], **overrides})

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> SpotNodeSettings:
        """From a config mapping: an optional "preset" key plus field overrides."""
        fields = dict(config)
        return cls.preset(str(fields.pop("preset", "generic")), **fields)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SpotNodeSettings:
        """From BENCHMARK_PLATFORM_K8S_PRESET and BENCHMARK_PLATFORM_K8S_<FIELD> variables (JSON for maps/lists)."""
        environ = os.environ if environ is None else environ
        overrides: dict[str, Any] = {}
        for field_name, field in cls.model_fields.items():
            variable = SETTINGS_ENV_PREFIX + field_name.upper()
            raw = environ.get(variable, "").strip()
            if not raw:
                continue
            if typing.get_origin(field.annotation) in (dict, list):
                try:
                    overrides[field_name] = json.loads(raw)
                except json.JSONDecodeError as error:
                    raise ValueError(f"{variable} must be JSON: {error}") from error
            else:
                overrides[field_name] = raw
        return cls.preset(environ.get(PRESET_ENV, "").strip() or "generic", **overrides)


_GKE_ACCELERATORS = {  # values of cloud.google.com/gke-accelerator (GKE "About GPUs")
    "b200": "nvidia-b200",
    "h200": "nvidia-h200-141gb",
    "h100-mega": "nvidia-h100-mega-80gb",
    "h100": "nvidia-h100-80gb",
    "a100-80gb": "nvidia-a100-80gb",
    "a100-40gb": "nvidia-tesla-a100",
    "l4": "nvidia-l4",
    "t4": "nvidia-tesla-t4",
    "v100": "nvidia-tesla-v100",
}
_KARPENTER_GPU_NAMES = {  # values of karpenter.k8s.aws/instance-gpu-name (lower-case GPU model)
    family: family for family in ("b200", "h200", "h100", "a100", "a10g", "l40s", "l4", "t4", "v100")
}

PRESETS: dict[str, dict[str, Any]] = {
    "generic": {},
    "gke": {
        "gpu_type_label_key": "cloud.google.com/gke-accelerator",
        "gpu_type_label_values": _GKE_ACCELERATORS,
        "spot_node_labels": {"cloud.google.com/gke-spot": "true"},
        "spot_taint_key": "cloud.google.com/gke-spot",
    },
    "eks-karpenter": {
        "gpu_type_label_key": "karpenter.k8s.aws/instance-gpu-name",
        "gpu_type_label_values": _KARPENTER_GPU_NAMES,
        "spot_node_labels": {"karpenter.sh/capacity-type": "spot"},
        "spot_taint_key": "benchmark-platform/spot",
    },
    "aks": {  # AKS has no GPU-model label: our node pools add benchmark-platform/gpu-type
        "spot_node_labels": {"kubernetes.azure.com/scalesetpriority": "spot"},
        "spot_taint_key": "kubernetes.azure.com/scalesetpriority",
    },
}


class _StepHardware(BaseModel):
    """The hardware facts a step pod depends on, checked at the edge."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    gpu_type: str = Field(min_length=1)
    gpu_count: int = Field(gt=0)
    vendor: Literal["nvidia", "amd"]
    vram_per_gpu_gb: int | None = Field(None, gt=0)
    spot_available: bool = True


def gpu_type_slug(gpu_type: str) -> str:
    """A catalog GPU type as a label value: "H100-SXM" -> "h100-sxm"."""
    slug = _NON_LABEL_CHARS.sub("-", gpu_type.lower()).strip("-")
    if not slug:
        raise ValueError(f"GPU type {gpu_type!r} has no letters or digits")
    return slug


def _label_value(text: str) -> str:
    """A valid Kubernetes label value (<= 63 chars, [a-z0-9-]); long names keep a hash so they stay unique."""
    value = _NON_LABEL_CHARS.sub("-", text.lower()).strip("-")
    if not value:
        raise ValueError(f"{text!r} has no letters or digits to name a Kubernetes label value")
    if len(value) > _MAX_LABEL_VALUE:
        digest = hashlib.sha256(value.encode()).hexdigest()[:8]
        value = value[: _MAX_LABEL_VALUE - 9].rstrip("-") + "-" + digest
    return value


def pool_name(hardware_name: str) -> str:
    """The GPU pool of a hardware config: a Dagster pool name and the value of the gpu-pool tag and label."""
    return _label_value(f"gpu-{_label_value(hardware_name)}")


def _field(source: Any, key: str, default: Any = None) -> Any:
    if isinstance(source, Mapping):
        return source.get(key, default)
    return getattr(source, key, default)


def _step_hardware(hardware: Any) -> _StepHardware:
    specs = _field(hardware, "specs")
    vendor = _field(specs, "vendor") if specs is not None else None
    facts = {
        "name": _field(hardware, "name"),
        "gpu_type": _field(hardware, "gpu_type"),
        "gpu_count": _field(hardware, "gpu_count"),
        "vendor": vendor or _field(hardware, "vendor"),
        "vram_per_gpu_gb": _field(hardware, "vram_per_gpu_gb"),
        "spot_available": _field(hardware, "spot_available", True),
    }
    try:
        return _StepHardware.model_validate(facts)
    except ValidationError as error:
        raise ValueError(f"hardware {facts['name']!r} cannot describe a step pod: {error}") from error


def _gpu_label_value(hardware: _StepHardware, settings: SpotNodeSettings) -> str:
    slug = gpu_type_slug(hardware.gpu_type)
    table = settings.gpu_type_label_values
    if not table:
        return slug
    family = slug.split("-")[0]
    candidates = [slug]
    if hardware.vram_per_gpu_gb:
        candidates.append(f"{family}-{hardware.vram_per_gpu_gb}gb")
    candidates.append(family)
    for candidate in candidates:
        if candidate in table:
            return table[candidate]
    raise ValueError(
        f"no {settings.gpu_type_label_key} value for GPU type {hardware.gpu_type!r} (tried {candidates}); "
        "add it to gpu_type_label_values"
    )


def _quantity(cores: float) -> str:
    return str(int(cores)) if float(cores).is_integer() else f"{round(cores * 1000)}m"


def step_k8s_config(hardware: Any, settings: SpotNodeSettings | None = None) -> dict[str, Any]:
    """The ``dagster-k8s/config`` tag value for a benchmark step on ``hardware`` (a mapping or object with
    name, gpu_type, gpu_count, specs.vendor, optional vram_per_gpu_gb and spot_available).

    Spot capacity is required only when the hardware is offered on spot; the spot taint is always tolerated.
    Requests equal limits so the pod is Guaranteed QoS, the last to be evicted under node pressure.
    """
    settings = settings or SpotNodeSettings()
    facts = _step_hardware(hardware)
    gpu_resource = GPU_RESOURCE_BY_VENDOR[facts.vendor]
    pool = pool_name(facts.name)

    resources = {
        "cpu": _quantity(settings.cpu_per_gpu * facts.gpu_count),
        "memory": f"{settings.memory_gib_per_gpu * facts.gpu_count}Gi",
        gpu_resource: str(facts.gpu_count),
    }
    node_selector = {settings.gpu_type_label_key: _gpu_label_value(facts, settings)}
    if facts.spot_available:
        node_selector.update(settings.spot_node_labels)
    tolerations = [
        {"key": settings.spot_taint_key, "operator": "Exists", "effect": "NoSchedule"},
        {"key": gpu_resource, "operator": "Exists", "effect": "NoSchedule"},
    ]
    env: list[dict[str, Any]] = [
        {
            "name": DATABASE_URL_ENV,
            "value_from": {
                "secret_key_ref": {"name": settings.database_secret_name, "key": settings.database_url_secret_key}
            },
        },
        {"name": EXECUTOR_ENV, "value": K8S_EXECUTOR},
        {"name": "HOME", "value": settings.home_dir},
        {"name": "TMPDIR", "value": settings.home_dir},
    ]
    if settings.model_hub_secret_name:
        env.append(
            {
                "name": settings.model_hub_token_env,
                "value_from": {
                    "secret_key_ref": {
                        "name": settings.model_hub_secret_name,
                        "key": settings.model_hub_token_secret_key,
                        "optional": True,
                    }
                },
            }
        )
    container_config: dict[str, Any] = {
        "image_pull_policy": settings.image_pull_policy,
        "resources": {"requests": resources, "limits": dict(resources)},
        "env": env,
        "volume_mounts": [
            {"name": HOME_VOLUME, "mount_path": settings.home_dir},
            {"name": SHM_VOLUME, "mount_path": "/dev/shm"},
        ],
        "security_context": {
            "allow_privilege_escalation": False,
            "read_only_root_filesystem": settings.read_only_root_filesystem,
            "run_as_non_root": True,
            "run_as_user": settings.run_as_user,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if settings.gpu_image:
        container_config["image"] = settings.gpu_image

    pod_security_context: dict[str, Any] = {
        "run_as_non_root": True,
        "run_as_user": settings.run_as_user,
        "run_as_group": settings.run_as_user,
        "fs_group": settings.run_as_user,
        "seccomp_profile": {"type": "RuntimeDefault"},
    }
    if facts.vendor == "amd":
        pod_security_context["supplemental_groups"] = list(settings.amd_supplemental_groups)
    labels = {
        PART_OF_LABEL_KEY: PART_OF_LABEL_VALUE,
        COMPONENT_LABEL_KEY: STEP_COMPONENT,
        GPU_POOL_TAG_KEY: pool,
        HARDWARE_LABEL_KEY: _label_value(facts.name),
    }
    return {
        "container_config": container_config,
        "pod_spec_config": {
            "node_selector": node_selector,
            "tolerations": tolerations,
            "termination_grace_period_seconds": settings.termination_grace_period_seconds,
            "service_account_name": settings.service_account_name,
            "automount_service_account_token": False,
            "security_context": pod_security_context,
            "volumes": [
                {"name": HOME_VOLUME, "empty_dir": {"size_limit": f"{settings.home_cache_gib}Gi"}},
                {
                    "name": SHM_VOLUME,
                    "empty_dir": {"medium": "Memory", "size_limit": f"{settings.shm_gib_per_gpu * facts.gpu_count}Gi"},
                },
            ],
        },
        "pod_template_spec_metadata": {"labels": labels},
        "job_metadata": {"labels": dict(labels)},
        "merge_behavior": "DEEP",
    }


def step_op_tags(hardware: Any, settings: SpotNodeSettings | None = None) -> dict[str, Any]:
    """Op tags for a benchmark op on ``hardware``: its step pod config and its GPU pool."""
    config = step_k8s_config(hardware, settings)
    pool = config["pod_template_spec_metadata"]["labels"][GPU_POOL_TAG_KEY]
    return {K8S_CONFIG_TAG_KEY: config, GPU_POOL_TAG_KEY: pool}
