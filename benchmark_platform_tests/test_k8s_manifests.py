"""The Kubernetes deployment in k8s/: every manifest against the Kubernetes OpenAPI schemas (custom resources
against CRD schema subsets in data/), the Helm values against the Dagster chart's values schema, and the pieces
against each other: the step pods that benchmark_platform.k8s_config renders over the chart's settings must use
the labels, tolerations, service account, secrets and env var names the manifests define."""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dagster_k8s
import jsonschema
import kubernetes_validate
import pytest
import yaml
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import DagsterK8sJobConfig, UserDefinedDagsterK8sConfig, construct_dagster_k8s_job
from kubernetes.client import ApiClient
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from benchmark_platform.k8s_config import (
    EXECUTOR_ENV,
    GPU_POOL_TAG_KEY,
    K8S_CONFIG_TAG_KEY,
    K8S_EXECUTOR,
    PART_OF_LABEL_KEY,
    PART_OF_LABEL_VALUE,
    PRESET_ENV,
    PRESETS,
    SETTINGS_ENV_PREFIX,
    SpotNodeSettings,
    pool_name,
    step_k8s_config,
    step_op_tags,
)
from benchmark_platform.settings import DATABASE_URL_ENV, REPORTS_DIR_ENV
from benchmark_platform_tests.factories import KUBERNETES_VERSIONS, render_step_job

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "k8s"
DATA = Path(__file__).parent / "data"
NAMESPACE = "benchmark-platform"
CHART_K8S_DEFINITIONS = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"
CUSTOM_RESOURCE_SCHEMAS = {
    ("karpenter.sh/v1", "NodePool"): "karpenter_nodepool_v1.schema.json",
    ("karpenter.k8s.aws/v1", "EC2NodeClass"): "karpenter_ec2nodeclass_v1.schema.json",
    ("container.cnrm.cloud.google.com/v1beta1", "ContainerNodePool"): "cnrm_containernodepool_v1beta1.schema.json",
}
# GKE taints every GPU node itself (and labels it cloud.google.com/gke-accelerator); the pool adds the rest.
GKE_GPU_NODE_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
WEIGHT_DOWNLOADS = ("huggingface-cli download", "hf download", "snapshot_download", "hf_hub_download", "git lfs")
DATABASE_CA_DIR = "/etc/benchmark-platform/postgresql-ca"


def manifest_documents() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted([*K8S.glob("manifests/*.yaml"), *K8S.glob("node-pools/*.yaml")]):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                yield f"{path.relative_to(K8S)}:{document['kind']}/{document['metadata']['name']}", document


MANIFESTS = dict(manifest_documents())


def manifests_of_kind(kind: str) -> list[dict[str, Any]]:
    return [document for document in MANIFESTS.values() if document["kind"] == kind]


def the_manifest(kind: str, name: str) -> dict[str, Any]:
    (document,) = [document for document in manifests_of_kind(kind) if document["metadata"]["name"] == name]
    return document


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load((K8S / "values.yaml").read_text())


@pytest.fixture(scope="module")
def code_location(values: dict[str, Any]) -> dict[str, Any]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    return deployment


@pytest.fixture(scope="module")
def step_settings(code_location: dict[str, Any]) -> SpotNodeSettings:
    """The settings the code server computes op tags with: its env in k8s/values.yaml."""
    plain_env = {item["name"]: item["value"] for item in code_location["env"] if "value" in item}
    return SpotNodeSettings.from_env(plain_env)


# ---- every manifest is a valid object ---------------------------------------------------------------------------


@pytest.mark.parametrize("document_id", sorted(MANIFESTS))
def test_every_manifest_is_a_valid_kubernetes_object(document_id: str) -> None:
    document = MANIFESTS[document_id]
    schema_file = CUSTOM_RESOURCE_SCHEMAS.get((document["apiVersion"], document["kind"]))
    if schema_file:
        jsonschema.Draft202012Validator(json.loads((DATA / schema_file).read_text())).validate(document)
        return
    for kubernetes_version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(document, kubernetes_version, strict=True)


def misspell_karpenter_taint_effect(document: dict[str, Any]) -> None:
    document["spec"]["template"]["spec"]["taints"][0]["effect"] = "NoScheduled"


def use_kubernetes_spelling_for_gke_taint_effect(document: dict[str, Any]) -> None:
    document["spec"]["nodeConfig"]["taint"][0]["effect"] = "NoSchedule"  # the GKE API wants NO_SCHEDULE


def drop_karpenter_node_role(document: dict[str, Any]) -> None:
    del document["spec"]["role"]


@pytest.mark.parametrize(
    ("document_id", "mistake"),
    [
        ("node-pools/eks-karpenter.yaml:NodePool/benchmark-gpu-nvidia-spot", misspell_karpenter_taint_effect),
        ("node-pools/eks-karpenter.yaml:EC2NodeClass/benchmark-gpu", drop_karpenter_node_role),
        (
            "node-pools/gke-config-connector.yaml:ContainerNodePool/benchmark-gpu-l4-spot",
            use_kubernetes_spelling_for_gke_taint_effect,
        ),
    ],
)
def test_custom_resource_schemas_reject_mistakes(document_id: str, mistake: Any) -> None:
    document = json.loads(json.dumps(MANIFESTS[document_id]))
    mistake(document)
    schema = json.loads((DATA / CUSTOM_RESOURCE_SCHEMAS[(document["apiVersion"], document["kind"])]).read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(document)


def test_namespaced_manifests_live_in_the_platform_namespace() -> None:
    assert (
        the_manifest("Namespace", NAMESPACE)["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    )
    cluster_scoped = {"Namespace", "NodePool", "EC2NodeClass", "ContainerNodePool"}
    for document_id, document in MANIFESTS.items():
        if document["kind"] not in cluster_scoped:
            assert document["metadata"].get("namespace") == NAMESPACE, document_id


# ---- the Helm values ------------------------------------------------------------------------------------------------


def without_required(schema: Any) -> Any:
    """Helm validates the chart's defaults merged with these values, so keys the defaults supply may be absent."""
    if isinstance(schema, dict):
        return {key: without_required(value) for key, value in schema.items() if key != "required"}
    if isinstance(schema, list):
        return [without_required(item) for item in schema]
    return schema


def chart_values_validators(
    schema_file: str = "dagster_helm_values.schema.json",
) -> list[jsonschema.protocols.Validator]:
    """A chart's values schema, its Kubernetes references resolved offline to kubernetes-validate's strict schemas."""
    chart_schema = json.loads((DATA / schema_file).read_text())
    if schema_file == "dagster_helm_values.schema.json":
        addition = json.loads((DATA / "dagster_helm_values_concurrency.schema.json").read_text())
        chart_schema["properties"] |= addition["properties"]
        chart_schema["definitions"] |= addition["definitions"]
    refs = set(re.findall(r'"\$ref": "([^"#]*)#', json.dumps(chart_schema))) - {""}
    assert refs == {CHART_K8S_DEFINITIONS}, "a new copy of the chart schema refers elsewhere: map it here"
    kubernetes_version = kubernetes_validate.utils.latest_version()
    definitions = kubernetes_validate.utils.schema_contents(
        f"kubernetes-json-schema/v{kubernetes_version}-local-strict/_definitions.json", kubernetes_version
    )
    # The chart points at #/definitions/..., the bundled file's own references at #/$defs/...: offer both.
    contents = {"definitions": definitions["$defs"], "$defs": definitions["$defs"]}
    registry = Registry().with_resource(
        CHART_K8S_DEFINITIONS, Resource.from_contents(contents, default_specification=DRAFT202012)
    )
    schema = without_required(chart_schema)
    return [
        jsonschema.Draft7Validator(schema, registry=registry),
        jsonschema.Draft202012Validator(schema, registry=registry),
    ]


def schema_errors(validators: list[jsonschema.protocols.Validator], instance: dict[str, Any]) -> list[str]:
    return [
        f"{'.'.join(map(str, error.absolute_path))}: {error.message}"
        for validator in validators
        for error in validator.iter_errors(instance)
    ]


def test_helm_values_use_only_keys_and_types_the_chart_accepts(values: dict[str, Any]) -> None:
    assert schema_errors(chart_values_validators(), values) == []
    # Helm hands a subchart its own section plus `global`, and checks them against the subchart's schema.
    subchart_values = {**values["dagster-user-deployments"], "global": values["global"]}
    assert schema_errors(chart_values_validators("dagster_user_deployments_values.schema.json"), subchart_values) == []


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("dagsterWebserver", "replicas", 2),
        ("dagsterDaemon", "tolerations", [{"key": "x", "tolerationSeconds": "soon"}]),
        ("dagsterWebserver", "podSecurityContext", {"runAsNonRoot": "yes"}),
    ],
)
def test_the_chart_schema_check_catches_mistakes(values: dict[str, Any], section: str, key: str, value: Any) -> None:
    broken = json.loads(json.dumps(values))
    broken[section][key] = value
    for validator in chart_values_validators():
        assert list(validator.iter_errors(broken)), f"{section}.{key}={value!r} passed"


@pytest.mark.parametrize(
    ("concurrency", "valid"),
    [
        ({"enabled": True, "pools": {"defaultLimit": 4}}, True),
        ({"enabled": True, "pools": {"defaultlimit": 4}}, False),
        ({"enabled": True, "runs": {"tagConcurrencyLimits": [{"key": "k", "limit": "four"}]}}, False),
    ],
)
def test_the_chart_schema_knows_the_concurrency_section(values: dict[str, Any], concurrency: dict, valid: bool) -> None:
    """The pool default limit the values' comments point to exists where they say, and typos in it are caught."""
    assert "concurrency.pools.defaultLimit" in (K8S / "values.yaml").read_text()
    assert (schema_errors(chart_values_validators(), {**values, "concurrency": concurrency}) == []) is valid


def test_values_and_readme_pin_the_chart_to_the_installed_dagster(values: dict[str, Any]) -> None:
    pinned = f"--version {version('dagster')}"
    assert pinned in (K8S / "values.yaml").read_text()
    assert pinned in (K8S / "README.md").read_text()


def test_the_code_location_gets_the_env_the_platform_reads(
    values: dict[str, Any], code_location: dict[str, Any]
) -> None:
    env = {item["name"]: item for item in code_location["env"]}
    settings = SpotNodeSettings()
    assert env[DATABASE_URL_ENV]["valueFrom"]["secretKeyRef"] == {
        "name": settings.database_secret_name,
        "key": settings.database_url_secret_key,
    }
    assert env[EXECUTOR_ENV]["value"] == K8S_EXECUTOR
    assert env[PRESET_ENV]["value"] in PRESETS
    settings_variables = {SETTINGS_ENV_PREFIX + field.upper() for field in SpotNodeSettings.model_fields}
    assert {name for name in env if name.startswith(SETTINGS_ENV_PREFIX)} <= settings_variables | {PRESET_ENV}
    assert code_location["dagsterApiGrpcArgs"] == ["--module-name", "benchmark_platform.definitions"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["dagster"]["module_name"] == "benchmark_platform.definitions"
    assert values["global"]["postgresqlSecretName"] == settings.database_secret_name
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False


def test_the_run_queue_limits_benchmark_runs_by_the_tag_the_benchmark_job_carries(values: dict[str, Any]) -> None:
    from benchmark_platform.defs.jobs import BENCHMARK_RUN_TAGS, benchmark_job

    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    limits = coordinator["config"]["queuedRunCoordinator"]["tagConcurrencyLimits"]
    assert [(limit["key"], limit["value"]) for limit in limits] == list(BENCHMARK_RUN_TAGS.items())
    assert benchmark_job.tags.items() >= BENCHMARK_RUN_TAGS.items()


def test_each_drain_op_declares_the_pool_of_its_gpu_hardware() -> None:
    from benchmark_platform import catalogs
    from benchmark_platform.defs.benchmarks import benchmark_results

    pools = {
        node.definition.tags[GPU_POOL_TAG_KEY]: node.definition.pool
        for node in benchmark_results.node_def.nodes_in_topological_order
        if node.definition.name.startswith("drain_")
    }
    assert set(pools) == {pool_name(hardware.name) for hardware in catalogs.load_hardware()}
    assert all(tag == pool for tag, pool in pools.items())


# ---- the step and run pods over the chart's settings ----------------------------------------------------------------


def run_launcher_context(values: dict[str, Any]) -> K8sContainerContext:
    """What the chart's K8sRunLauncher adds to run and step pods (templates/helpers/instance/_run-launcher.tpl)."""
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    run_k8s_config = {
        re.sub(r"([A-Z])", lambda match: "_" + match.group(1).lower(), key): section
        for key, section in (launcher.get("runK8sConfig") or {}).items()
    }
    return K8sContainerContext(
        image_pull_policy=launcher["imagePullPolicy"],
        service_account_name=values["global"]["serviceAccountName"],
        env_config_maps=["dagster-pipeline-env", *(item["name"] for item in launcher["envConfigMaps"])],
        env_secrets=[item["name"] for item in launcher["envSecrets"]],
        env_vars=launcher["envVars"],
        volume_mounts=launcher["volumeMounts"],
        volumes=launcher["volumes"],
        labels=launcher.get("labels") or {},
        namespace=launcher.get("jobNamespace") or NAMESPACE,
        resources=launcher.get("resources") or {},
        security_context=launcher.get("securityContext") or {},
        run_k8s_config=UserDefinedDagsterK8sConfig.from_dict(run_k8s_config),
    )


def code_location_context(values: dict[str, Any], deployment: dict[str, Any]) -> K8sContainerContext:
    """The container context the chart hands to launched runs (includeConfigInLaunchedRuns: the subchart's
    dagsterUserDeployments.k8sContainerContext helper)."""
    assert deployment["includeConfigInLaunchedRuns"]["enabled"] is True
    context = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [f"dagster-dagster-user-deployments-{deployment['name']}-user-env"],
        "env_secrets": [item["name"] for item in deployment.get("envSecrets", [])],
        "volume_mounts": deployment.get("volumeMounts", []),
        "volumes": deployment.get("volumes", []),
        "labels": deployment.get("labels", {}),
        "resources": deployment.get("resources", {}),
        "namespace": NAMESPACE,
        "service_account_name": values["global"]["serviceAccountName"],
        "env": deployment["env"],
        "run_k8s_config": {"pod_spec_config": {"automount_service_account_token": True}},
    }
    return K8sContainerContext.create_from_config({"k8s": context})


def chart_job_config(values: dict[str, Any], deployment: dict[str, Any]) -> DagsterK8sJobConfig:
    image = deployment["image"]
    return DagsterK8sJobConfig(
        job_image=f"{image['repository']}:{image['tag']}",
        dagster_home=values["global"]["dagsterHome"],
        instance_config_map="dagster-instance",
        postgres_password_secret=values["global"]["postgresqlSecretName"],
    )


H100_X8 = {"name": "aws-h100-sxm-x8", "gpu_type": "H100", "gpu_count": 8, "specs": {"vendor": "nvidia"}}


@pytest.fixture(scope="module")
def step_job(values: dict[str, Any], code_location: dict[str, Any], step_settings: SpotNodeSettings) -> dict[str, Any]:
    """The step Job of a benchmark op, merged as the k8s_job_executor merges it: run launcher, then the code
    location's context, then the op's dagster-k8s/config tag."""
    base = run_launcher_context(values).merge(code_location_context(values, code_location))
    assert base.namespace == NAMESPACE
    return render_step_job(
        step_op_tags(H100_X8, step_settings), base_context=base, job_config=chart_job_config(values, code_location)
    )


@pytest.fixture(scope="module")
def run_job(values: dict[str, Any], code_location: dict[str, Any]) -> dict[str, Any]:
    context = run_launcher_context(values).merge(code_location_context(values, code_location))
    job = construct_dagster_k8s_job(
        job_config=chart_job_config(values, code_location),
        args=["dagster", "api", "execute_run"],
        job_name="dagster-run-0123456789abcdef",
        component="run_worker",
        user_defined_k8s_config=context.run_k8s_config,
        labels={"dagster/job": "benchmark"},
    )
    return ApiClient().sanitize_for_serialization(job)


def test_run_and_step_pods_over_the_charts_settings_are_valid(
    step_job: dict[str, Any], run_job: dict[str, Any]
) -> None:
    for job in (step_job, run_job):
        for kubernetes_version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(job, kubernetes_version, strict=True)
        spec = job["spec"]["template"]["spec"]
        names = [volume["name"] for volume in spec["volumes"]]
        (container,) = spec["containers"]
        mount_paths = [mount["mountPath"] for mount in container["volumeMounts"]]
        assert len(names) == len(set(names)) and len(mount_paths) == len(set(mount_paths))
        assert {mount["name"] for mount in container["volumeMounts"]} <= set(names)
        assert {"/tmp", "/opt/dagster/dagster_home"} <= set(mount_paths)  # writable under a read-only root
        env_names = [item["name"] for item in container["env"]]
        assert env_names.count(DATABASE_URL_ENV) == 1, env_names


def test_step_pods_use_the_step_account_secrets_and_image_the_manifests_define(
    step_job: dict[str, Any], code_location: dict[str, Any], step_settings: SpotNodeSettings
) -> None:
    spec = step_job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    gpu_image = {item["name"]: item.get("value") for item in code_location["env"]}[SETTINGS_ENV_PREFIX + "GPU_IMAGE"]
    assert container["image"] == gpu_image == step_settings.gpu_image

    account = the_manifest("ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False and spec["automountServiceAccountToken"] is False
    bound = {subject["name"] for binding in manifests_of_kind("RoleBinding") for subject in binding["subjects"]}
    assert spec["serviceAccountName"] not in bound

    secrets = {secret["metadata"]["name"]: secret["stringData"] for secret in manifests_of_kind("Secret")}
    for item in container["env"]:
        reference = item.get("valueFrom", {}).get("secretKeyRef")
        if reference:
            assert reference["key"] in secrets[reference["name"]], reference

    resources = container["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"] == "8"
    assert resources["requests"]["memory"] == resources["limits"]["memory"] == "96Gi"
    assert spec["terminationGracePeriodSeconds"] == step_settings.termination_grace_period_seconds


def test_run_pods_use_the_platform_account_and_are_sized_by_the_code_location(
    run_job: dict[str, Any], values: dict[str, Any], code_location: dict[str, Any]
) -> None:
    spec = run_job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert spec["serviceAccountName"] == values["global"]["serviceAccountName"]
    assert spec["automountServiceAccountToken"] is True  # the executor calls the Kubernetes API from here
    assert container["resources"] == code_location["resources"]
    assert "nvidia.com/gpu" not in json.dumps(run_job)


@pytest.mark.parametrize("job_fixture", ["step_job", "run_job"])
def test_run_and_step_pods_are_non_root_and_reach_postgresql(job_fixture: str, request: pytest.FixtureRequest) -> None:
    job = request.getfixturevalue(job_fixture)
    spec = job["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == SpotNodeSettings().run_as_user
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    assert admits(PLATFORM_NAMESPACE_LABELS, job["spec"]["template"]["metadata"]["labels"], POSTGRESQL_POD, 5432)


# ---- the control plane ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("component", ["dagsterWebserver", "dagsterDaemon", "code-location"])
def test_control_plane_pods_are_locked_down_and_reach_postgresql(
    values: dict[str, Any], code_location: dict[str, Any], component: str
) -> None:
    pod = code_location if component == "code-location" else values[component]
    assert pod["podSecurityContext"]["runAsNonRoot"] is True
    assert pod["podSecurityContext"]["runAsUser"] == SpotNodeSettings().run_as_user
    assert pod["podSecurityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    for resources in (pod["resources"], pod.get("initContainerResources", pod["resources"])):
        assert set(resources) == {"requests", "limits"}
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
    # Dagster writes to /tmp and DAGSTER_HOME (run pods also to the shared reports volume); everything else is
    # read-only, the database's CA included.
    mounts = {mount["mountPath"]: mount for mount in pod["volumeMounts"]}
    reports = {REPORTS_MOUNT} if component == "code-location" else set()
    assert set(mounts) == {"/tmp", values["global"]["dagsterHome"], DATABASE_CA_DIR} | reports
    assert mounts[DATABASE_CA_DIR]["readOnly"] is True
    assert admits(PLATFORM_NAMESPACE_LABELS, pod["labels"], POSTGRESQL_POD, 5432)
    assert pod["labels"][PART_OF_LABEL_KEY] == PART_OF_LABEL_VALUE
    assert pod["image"] == values["dagsterWebserver"]["image"]  # one image, one Dagster version


REPORTS_MOUNT = "/reports"


def test_run_pods_write_the_report_to_the_shared_volume(code_location: dict[str, Any]) -> None:
    env = {item["name"]: item.get("value") for item in code_location["env"]}
    assert env[REPORTS_DIR_ENV] == REPORTS_MOUNT
    [mount] = [mount for mount in code_location["volumeMounts"] if mount["mountPath"] == REPORTS_MOUNT]
    [volume] = [volume for volume in code_location["volumes"] if volume["name"] == mount["name"]]
    claim = the_manifest("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert "ReadWriteMany" in claim["spec"]["accessModes"]  # any run pod, on any node, may refresh the report


def test_the_webserver_listens_on_a_port_a_non_root_process_may_bind(values: dict[str, Any]) -> None:
    webserver = values["dagsterWebserver"]
    assert webserver["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert webserver["service"]["port"] >= 1024
    assert webserver["readinessProbe"]["httpGet"]["port"] == webserver["service"]["port"]
    assert values["dagster-user-deployments"]["deployments"][0]["port"] >= 1024


def test_pod_disruption_budgets_select_the_webserver_and_daemon(values: dict[str, Any]) -> None:
    budgets = {budget["metadata"]["name"]: budget for budget in manifests_of_kind("PodDisruptionBudget")}
    webserver_labels = values["dagsterWebserver"]["labels"]
    daemon_labels = values["dagsterDaemon"]["labels"]
    assert budgets["dagster-webserver"]["spec"]["selector"]["matchLabels"].items() <= webserver_labels.items()
    assert budgets["dagster-daemon"]["spec"]["selector"]["matchLabels"].items() <= daemon_labels.items()
    assert budgets["dagster-webserver"]["spec"]["minAvailable"] < values["dagsterWebserver"]["replicaCount"]


def dagster_k8s_api_permissions() -> set[tuple[str, str]]:
    """(resource, verb) pairs for the Kubernetes API calls of the installed run launcher and executor, read from
    their source: ``batch_api.read_namespaced_job_status(`` needs ``get`` on ``jobs/status``."""
    source = "".join(
        (Path(dagster_k8s.__file__).parent / name).read_text() for name in ("client.py", "launcher.py", "executor.py")
    )
    verbs = {"create": "create", "delete": "delete", "list": "list", "read": "get", "patch": "patch"}
    resources = {"job": "jobs", "pod": "pods", "event": "events"}
    permissions = set()
    for action, target in set(re.findall(r"(?:batch|core)_api\.(\w+?)_namespaced_(\w+)\(", source)):
        kind, _, subresource = target.partition("_")
        resource = f"{resources[kind]}/{subresource}" if subresource else resources[kind]
        permissions.add((resource, verbs[action]))
    return permissions


def test_rbac_grants_what_dagster_k8s_calls_in_the_namespace_only(values: dict[str, Any]) -> None:
    (role,) = manifests_of_kind("Role")
    granted = {(resource, verb) for rule in role["rules"] for resource in rule["resources"] for verb in rule["verbs"]}
    needed = dagster_k8s_api_permissions()
    assert {("jobs", "create"), ("pods/log", "get"), ("jobs/status", "get")} <= needed
    assert needed <= granted
    assert {permission for permission in granted - needed if permission[1] != "watch"} == set()
    assert not manifests_of_kind("ClusterRole") and not manifests_of_kind("ClusterRoleBinding")
    (binding,) = manifests_of_kind("RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert [subject["name"] for subject in binding["subjects"]] == [values["global"]["serviceAccountName"]]
    assert values["serviceAccount"] == {
        "create": False,
        "name": values["global"]["serviceAccountName"],
        "annotations": {},
    }
    assert values["rbacEnabled"] is False and values["dagster-user-deployments"]["rbacEnabled"] is False
    the_manifest("ServiceAccount", values["global"]["serviceAccountName"])


def test_the_secret_template_holds_no_real_values() -> None:
    for secret in manifests_of_kind("Secret"):
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            assert "CHANGE_ME" in value, f"{secret['metadata']['name']}.{key} looks like a real value"


# ---- the node pools admit the step pods of their preset -----------------------------------------------------------


def unadmitted(node_labels: dict[str, set[str]], taints: list[dict[str, str]], pod_spec_config: dict) -> list[str]:
    """Why a pod with this node selector and these tolerations could not run on the node; empty if it could."""
    problems = [
        f"node label {key}={value} not offered (offers {sorted(node_labels.get(key, []))})"
        for key, value in pod_spec_config["node_selector"].items()
        if value not in node_labels.get(key, set())
    ]
    for taint in taints:
        tolerated = any(
            toleration["key"] == taint["key"]
            and (toleration["operator"] == "Exists" or toleration.get("value") == taint.get("value"))
            and toleration.get("effect") in (None, taint["effect"])
            for toleration in pod_spec_config["tolerations"]
        )
        if not tolerated:
            problems.append(f"taint {taint} not tolerated")
    return problems


def test_karpenter_gpu_pool_admits_the_eks_presets_step_pods() -> None:
    node_pool = the_manifest("NodePool", "benchmark-gpu-nvidia-spot")["spec"]["template"]
    offered = {
        requirement["key"]: set(requirement["values"])
        for requirement in node_pool["spec"]["requirements"]
        if requirement["operator"] == "In"
    }
    offered.update({key: {value} for key, value in node_pool.get("metadata", {}).get("labels", {}).items()})
    the_manifest("EC2NodeClass", node_pool["spec"]["nodeClassRef"]["name"])
    settings = SpotNodeSettings.preset("eks-karpenter")
    for gpu_name in sorted(offered["karpenter.k8s.aws/instance-gpu-name"]):
        hardware = {**H100_X8, "gpu_type": gpu_name.upper(), "name": f"aws-{gpu_name}"}
        config = step_k8s_config(hardware, settings)["pod_spec_config"]
        assert unadmitted(offered, node_pool["spec"]["taints"], config) == [], gpu_name


@pytest.mark.parametrize("pool", [pool["metadata"]["name"] for pool in manifests_of_kind("ContainerNodePool")])
def test_gke_gpu_pools_admit_the_gke_presets_step_pods(pool: str) -> None:
    node_config = the_manifest("ContainerNodePool", pool)["spec"]["nodeConfig"]
    (accelerator,) = node_config["guestAccelerator"]
    offered = {key: {value} for key, value in node_config.get("labels", {}).items()}
    offered["cloud.google.com/gke-accelerator"] = {accelerator["type"]}
    if node_config.get("spot"):
        offered["cloud.google.com/gke-spot"] = {"true"}
    effects = {"NO_SCHEDULE": "NoSchedule", "PREFER_NO_SCHEDULE": "PreferNoSchedule", "NO_EXECUTE": "NoExecute"}
    taints = [{**taint, "effect": effects[taint["effect"]]} for taint in node_config["taint"]] + [GKE_GPU_NODE_TAINT]
    settings = SpotNodeSettings.preset("gke")
    gpu_type = next(key for key, value in settings.gpu_type_label_values.items() if value == accelerator["type"])
    hardware = {**H100_X8, "gpu_type": gpu_type, "gpu_count": accelerator["count"], "name": f"gcp-{pool}"}
    config = step_k8s_config(hardware, settings)
    assert unadmitted(offered, taints, config["pod_spec_config"]) == []
    assert config["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == str(accelerator["count"])


# ---- the image ----------------------------------------------------------------------------------------------------


def dockerfile_stages() -> dict[str, list[tuple[str, str]]]:
    """The Dockerfile's stages by alias: (instruction, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (K8S / "Dockerfile").read_text())
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            alias = re.search(r"\bAS\s+(\S+)", arguments, re.IGNORECASE)
            current = stages.setdefault(alias.group(1) if alias else f"stage{len(stages)}", [])
        current.append((instruction, " ".join(arguments.split())))
    return stages


PIP_INSTALL_PROJECT = re.compile(r"pip install (?:[^&;|]*\s)?\.(?:\s|$)")
PIP_WHEEL_PROJECT = re.compile(r"pip wheel (?:[^&;|]*\s)?\.(?:\s|$)")


def installs_project(stages: dict[str, list[tuple[str, str]]], stage: str) -> bool:
    """The stage installs the project from pyproject.toml: `pip install .`, the venv of a stage that did, or the
    project's wheel built by `pip wheel .` (its metadata carries every dependency)."""
    runs = [arguments for instruction, arguments in stages[stage] if instruction == "RUN"]
    if any(PIP_INSTALL_PROJECT.search(run) for run in runs):
        return True
    for instruction, arguments in stages[stage]:
        copied = re.fullmatch(r"--from=(\S+) (\S+) (\S+)", arguments) if instruction == "COPY" else None
        if not copied:
            continue
        source_stage, source_path = copied.group(1), copied.group(2)
        source_runs = [a for i, a in stages[source_stage] if i == "RUN"]
        if source_path == "/opt/venv" and installs_project(stages, source_stage):
            return True
        if any(PIP_WHEEL_PROJECT.search(run) and source_path in run for run in source_runs):
            if any(re.search(rf"pip install .*{re.escape(source_path)}/\*\.whl", run) for run in runs):
                return True
    return False


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_the_image_installs_the_project_with_all_its_dependencies(target: str) -> None:
    stages = dockerfile_stages()
    assert installs_project(stages, target)
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = [pattern.rstrip("*") for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]]
    copied = " ".join(arguments for instruction, arguments in stages["build"] if instruction == "COPY")
    for needed in ["pyproject.toml", "README*", *packages]:
        assert needed in copied.split(), f"the build stage does not copy {needed}"
    assert Path(REPO / pyproject["project"]["readme"]).match("README*")
    ignore = (K8S / "Dockerfile.dockerignore").read_text().split()
    for needed in ["pyproject.toml", "README*", *(f"{package}/" for package in packages)]:
        assert f"!{needed}" in ignore, f"Dockerfile.dockerignore leaves out {needed}"


@pytest.mark.parametrize("target", ["cpu", "gpu"])
def test_the_image_runs_as_the_non_root_user_the_pods_expect(target: str, values: dict[str, Any]) -> None:
    instructions = dockerfile_stages()[target]
    user = [arguments for instruction, arguments in instructions if instruction == "USER"][-1]
    uid = int(user.split(":")[0])
    settings = SpotNodeSettings()
    assert uid != 0
    assert uid == settings.run_as_user == values["dagsterWebserver"]["podSecurityContext"]["runAsUser"]
    env = " ".join(arguments for instruction, arguments in instructions if instruction == "ENV")
    assert f"HOME={settings.home_dir}" in env.split()
    # Dagster passes the command as container args: the entrypoint must only wrap it.
    entrypoint = [arguments for instruction, arguments in instructions if instruction == "ENTRYPOINT"][-1]
    assert json.loads(entrypoint) == ["/usr/bin/tini", "--"]


def test_the_image_build_fetches_no_model_weights() -> None:
    runs = [
        arguments for stage in dockerfile_stages().values() for instruction, arguments in stage if instruction == "RUN"
    ]
    assert not [run for run in runs for download in WEIGHT_DOWNLOADS if download in run]


def test_step_op_tags_name_their_pool_in_both_places() -> None:
    tags = step_op_tags(H100_X8)
    assert tags[GPU_POOL_TAG_KEY] == tags[K8S_CONFIG_TAG_KEY]["pod_template_spec_metadata"]["labels"][GPU_POOL_TAG_KEY]


# ---- images as the chart renders them -----------------------------------------------------------------------------

# The chart's own default for postgresql.image.registry (helm/dagster/values.yaml): Helm merges it under ours.
CHART_POSTGRESQL_REGISTRY = "docker.io"
IMAGE_BY_DIGEST = re.compile(
    r"(?P<registry>[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?)/(?P<path>[a-z0-9]+(?:[._/-][a-z0-9]+)*)"
    r":(?P<tag>\w[\w.-]{0,127})@sha256:[0-9a-f]{64}"
)


def postgresql_image(image: dict[str, Any]) -> str:
    """The wait-for-database init container's image: dagster.externalPostgresImage.name, `registry/repository:tag`
    (templates/helpers/_helpers.tpl), with the chart's default registry when the values set none."""
    return f"{image.get('registry', CHART_POSTGRESQL_REGISTRY)}/{image['repository']}:{image['tag']}"


def dagster_image(image: dict[str, Any]) -> str:
    """dagster.dagsterImage.name: `repository@digest` when a digest is set, else `repository:tag`."""
    return (
        f"{image['repository']}@{image['digest']}" if image.get("digest") else f"{image['repository']}:{image['tag']}"
    )


def rendered_images(values: dict[str, Any]) -> dict[str, str]:
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    gpu_image = {item["name"]: item.get("value") for item in deployment["env"]}[SETTINGS_ENV_PREFIX + "GPU_IMAGE"]
    busybox = values["busybox"]["image"]
    return {
        "webserver wait-for-database": postgresql_image(values["postgresql"]["image"]),
        "webserver wait-for-code-server": f"{busybox['repository']}:{busybox['tag']}",  # dagster.externalImage.name
        "webserver": dagster_image(values["dagsterWebserver"]["image"]),
        "daemon": dagster_image(values["dagsterDaemon"]["image"]),
        "code server, run pods": dagster_image(deployment["image"]),
        "benchmark step pods": gpu_image,
    }


def image_problem(reference: str) -> str | None:
    """Why a rendered reference would not pull the intended image, or None: it must name its registry once, then
    a repository whose first part is not a registry host, and pin a digest."""
    match = IMAGE_BY_DIGEST.fullmatch(reference)
    if not match:
        return "not registry/repository:tag@sha256:digest"
    first = match.group("path").split("/")[0]
    if "." in first or first == "localhost":
        return f"the repository starts with a second registry ({first})"
    return None


def test_every_image_renders_to_one_registry_and_a_pinned_digest(values: dict[str, Any]) -> None:
    images = rendered_images(values)
    assert images["webserver wait-for-database"].startswith("docker.io/library/postgres:16-alpine@sha256:")
    assert {name: image_problem(image) for name, image in images.items()} == dict.fromkeys(images)


def test_the_image_check_catches_a_registry_given_twice(values: dict[str, Any]) -> None:
    """What the values said before: the repository named docker.io, and the chart prefixed its default again."""
    doubled = {**values["postgresql"]["image"], "repository": "docker.io/library/postgres"}
    doubled.pop("registry")
    assert postgresql_image(doubled).startswith("docker.io/docker.io/library/postgres:")
    assert image_problem(postgresql_image(doubled)) == "the repository starts with a second registry (docker.io)"
    assert image_problem("docker.io/library/postgres:16-alpine") == "not registry/repository:tag@sha256:digest"


def test_pull_secrets_reach_the_code_server_deployment_too() -> None:
    """The subchart's Deployment reads dagster-user-deployments.imagePullSecrets, not the top-level list; the
    values set it from the same anchor, so one edit reaches both."""
    text = (K8S / "values.yaml").read_text()
    assert "imagePullSecrets: &imagePullSecrets []" in text
    edited = yaml.safe_load(text.replace("&imagePullSecrets []", "&imagePullSecrets [{name: regcred}]"))
    assert edited["imagePullSecrets"] == edited["dagster-user-deployments"]["imagePullSecrets"] == [{"name": "regcred"}]
    subchart_values = {**edited["dagster-user-deployments"], "global": edited["global"]}
    assert schema_errors(chart_values_validators("dagster_user_deployments_values.schema.json"), subchart_values) == []


def test_dagster_storage_verifies_the_database_certificate(values: dict[str, Any], code_location) -> None:
    params = values["postgresql"]["postgresqlParams"]
    assert params["sslmode"] == "verify-full"
    assert Path(params["sslrootcert"]).parent == Path(DATABASE_CA_DIR)
    volumes = {volume["name"]: volume for volume in code_location["volumes"]}
    (mount,) = [mount for mount in code_location["volumeMounts"] if mount["mountPath"] == DATABASE_CA_DIR]
    ca_secret = volumes[mount["name"]]["secret"]["secretName"]
    secrets = {secret["metadata"]["name"]: secret["stringData"] for secret in manifests_of_kind("Secret")}
    assert "ca.crt" in secrets[ca_secret] and Path(params["sslrootcert"]).name == "ca.crt"
    assert (
        "sslmode=verify-full&sslrootcert=" + params["sslrootcert"] in secrets["benchmark-platform-db"]["database-url"]
    )


# ---- who may connect to whom ----------------------------------------------------------------------------------------

PLATFORM_NAMESPACE_LABELS = {"kubernetes.io/metadata.name": NAMESPACE}
INGRESS_NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "ingress-nginx"}
OTHER_NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "default"}
POSTGRESQL_POD = {"app.kubernetes.io/name": "postgresql"}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels is evaluated here"
    return selector.get("matchLabels", {}).items() <= labels.items()


def admits(source_namespace: dict[str, str], source: dict[str, str], target: dict[str, str], port: int) -> bool:
    """Whether the NetworkPolicies in k8s/manifests let a pod with labels ``source`` in a namespace with labels
    ``source_namespace`` open ``port`` on a platform pod with labels ``target`` (Kubernetes' semantics: a pod
    selected by any Ingress policy accepts only what one of those policies' rules allows)."""
    policies = [
        policy["spec"]
        for policy in manifests_of_kind("NetworkPolicy")
        if "Ingress" in policy["spec"]["policyTypes"] and _selects(policy["spec"]["podSelector"], target)
    ]
    if not policies:
        return True
    same_namespace = source_namespace == PLATFORM_NAMESPACE_LABELS

    def peer_matches(peer: dict[str, Any]) -> bool:
        if "namespaceSelector" in peer and not _selects(peer["namespaceSelector"], source_namespace):
            return False
        if "namespaceSelector" not in peer and not same_namespace:
            return False
        return "podSelector" not in peer or _selects(peer["podSelector"], source)

    return any(
        any(peer_matches(peer) for peer in rule.get("from", [{"podSelector": {}}]))
        and any(item["port"] == port for item in rule.get("ports", [{"port": port}]))
        for policy in policies
        for rule in policy.get("ingress", [])
    )


def test_the_namespace_denies_incoming_connections_by_default() -> None:
    (policy,) = [policy for policy in manifests_of_kind("NetworkPolicy") if policy["spec"]["podSelector"] == {}]
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in policy["spec"]


def test_only_the_ingress_namespace_reaches_the_webserver_and_only_dagster_the_code_server(
    values: dict[str, Any], code_location: dict[str, Any], run_job: dict[str, Any], step_job: dict[str, Any]
) -> None:
    webserver, daemon = values["dagsterWebserver"]["labels"], values["dagsterDaemon"]["labels"]
    code_server = code_location["labels"]
    run_pod, step_pod = (job["spec"]["template"]["metadata"]["labels"] for job in (run_job, step_job))
    ingress_controller = {"app.kubernetes.io/name": "ingress-nginx"}
    stranger = {"app": "something-else"}
    web_port, grpc_port = values["dagsterWebserver"]["service"]["port"], code_location["port"]
    platform = PLATFORM_NAMESPACE_LABELS

    assert admits(INGRESS_NAMESPACE_LABELS, ingress_controller, webserver, web_port)
    assert not admits(INGRESS_NAMESPACE_LABELS, ingress_controller, webserver, grpc_port)
    for namespace, source in [
        (platform, stranger),
        (platform, step_pod),
        (platform, run_pod),
        (OTHER_NAMESPACE_LABELS, {}),
    ]:
        assert not admits(namespace, source, webserver, web_port), source

    for source in (webserver, daemon, run_pod):
        assert admits(platform, source, code_server, grpc_port), source
    for namespace, source in [
        (platform, step_pod),
        (platform, stranger),
        (INGRESS_NAMESPACE_LABELS, ingress_controller),
    ]:
        assert not admits(namespace, source, code_server, grpc_port), source

    for target in (daemon, run_pod, step_pod):
        assert not admits(platform, webserver, target, web_port), target
    for source in (webserver, daemon, code_server, run_pod, step_pod):
        assert admits(platform, source, POSTGRESQL_POD, 5432), source
    assert not admits(platform, stranger, POSTGRESQL_POD, 5432)


# ---- the dependency lock -------------------------------------------------------------------------------------------


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_image_installs_every_dependency_from_the_hash_locked_file() -> None:
    lock = (K8S / "requirements.lock").read_text()
    pinned = {
        _normalized(match.group(1)): match.group(2)
        for match in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", lock, re.MULTILINE)
    }
    blocks = re.split(r"\n(?=[A-Za-z0-9])", lock)
    assert all("--hash=sha256:" in block for block in blocks if re.match(r"[A-Za-z0-9]", block))
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    required = {
        _normalized(re.split(r"[\s<>=!~;\[]", requirement)[0]) for requirement in pyproject["project"]["dependencies"]
    }
    assert required - set(pinned) == set()
    assert {"setuptools", "wheel"} <= set(pinned)
    assert pinned["dagster"] == version("dagster")
    # The embedded database is an extra the images skip: its wheels do not exist for every image platform.
    assert "pgserver" not in required and "pgserver" not in pinned
    assert pyproject["project"]["optional-dependencies"]["embedded"] == ["pgserver>=0.1.4"]

    build = dockerfile_stages()["build"]
    runs = [arguments for instruction, arguments in build if instruction == "RUN"]
    assert any("pip install --require-hashes --no-deps -r k8s/requirements.lock" in run for run in runs)
    assert ("COPY", "k8s/requirements.lock ./k8s/requirements.lock") in build
    assert "!k8s/requirements.lock" in (K8S / "Dockerfile.dockerignore").read_text().split()
    for stage in ("build", "gpu", "cpu"):
        assert "embedded" not in json.dumps(dockerfile_stages()[stage])
