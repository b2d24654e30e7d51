"""Shared builders for the tests, so that no test module imports another: the real catalogs and an example model
in the test database, results rows and frames, runner facts and specs, a step Job as dagster-k8s renders it, and a
gate for tests that need a system program."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import kubernetes
import kubernetes_validate
import numpy as np
import pandas as pd
import pytest
from dagster_k8s.container_context import K8sContainerContext
from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from benchmark_platform import catalogs, manifests, orm
from benchmark_platform.orm import BenchmarkResult, HardwareConfig, InferenceFramework, Model, ModelVersion, UseCase
from benchmark_platform.ranking import RESULT_FRAME_COLUMNS, UseCaseCriteria
from benchmark_platform.ranking.frames import METRIC_COLUMNS
from benchmark_platform.runners import FrameworkFacts, HardwareFacts, ModelFacts, RunSpec, WorkloadFacts

# --- system programs ------------------------------------------------------------------------------------------------

REQUIRE_SYSTEM_PROGRAMS_ENV = "BENCHMARK_PLATFORM_REQUIRE_SYSTEM_PROGRAMS"


def system_program(name: str, debian_package: str, why: str) -> str:
    """The path of a program a test needs. Missing, the test skips naming the package to install, so the README's
    test command passes on a bare machine; CI sets BENCHMARK_PLATFORM_REQUIRE_SYSTEM_PROGRAMS=1, which turns the
    skip into a failure so the test always runs there."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = f"{name} is not installed, so {why}: run `apt-get install -y {debian_package}` (Debian's package)"
    if os.environ.get(REQUIRE_SYSTEM_PROGRAMS_ENV, "").strip() not in ("", "0"):
        pytest.fail(f"{message}; {REQUIRE_SYSTEM_PROGRAMS_ENV} is set, so it may not be skipped")
    pytest.skip(message)


# --- the catalogs and an example model in the database --------------------------------------------------------------

DEFAULT_VERSION_KEY = "llama-3.1-8b@int4-awq"

# A result file of vLLM's serving benchmark (`vllm bench serve --save-result`), for the importers' tests.
VLLM_SERVE_RESULT = {
    "backend": "vllm",
    "model_id": "Qwen/Qwen2.5-7B-Instruct-AWQ",
    "num_prompts": 200,
    "request_rate": "inf",
    "burstiness": 1.0,
    "max_concurrency": 16,
    "duration": 16.0,
    "completed": 200,
    "total_input_tokens": 102400,
    "total_output_tokens": 25600,
    "request_throughput": 12.5,
    "request_goodput": 11.0,
    "output_throughput": 1600.0,
    "total_token_throughput": 8000.0,
    "mean_ttft_ms": 85.0,
    "median_ttft_ms": 80.0,
    "std_ttft_ms": 10.0,
    "p90_ttft_ms": 120.0,
    "p99_ttft_ms": 150.0,
    "mean_tpot_ms": 8.4,
    "median_tpot_ms": 8.2,
    "p90_tpot_ms": 9.1,
    "p99_tpot_ms": 10.2,
    "mean_itl_ms": 8.4,
    "median_itl_ms": 8.0,
    "p99_itl_ms": 15.0,
    "mean_e2el_ms": 1150.0,
    "median_e2el_ms": 1100.0,
    "p99_e2el_ms": 1600.0,
}


def seed_with_model(engine: Engine, version_key: str = DEFAULT_VERSION_KEY) -> uuid.UUID:
    """Seed the bundled catalogs, register the version's example manifest, and return the version's id."""
    catalogs.seed(engine)
    model_name = version_key.rpartition("@")[0]
    manifests.register_model(engine, manifests.load_manifest(manifests.EXAMPLE_MANIFESTS_DIR / f"{model_name}.yaml"))
    with engine.connect() as connection:
        return manifests.resolve_model_version(connection, version_key)


def hardware_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as connection:
        return connection.execute(text("SELECT id FROM hardware_configs WHERE name = :n"), {"n": name}).scalar_one()


def framework_id(engine: Engine, name: str) -> uuid.UUID:
    with engine.connect() as connection:
        return connection.execute(text("SELECT id FROM inference_frameworks WHERE name = :n"), {"n": name}).scalar_one()


def table_counts(engine: Engine) -> dict[str, int]:
    """Rows per table of the platform, in one round trip."""
    tables = orm.Base.metadata.sorted_tables
    counts = select(*(select(func.count()).select_from(table).scalar_subquery() for table in tables))
    with engine.connect() as connection:
        return dict(zip((table.name for table in tables), connection.execute(counts).one(), strict=True))


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT status, count(*) FROM benchmark_configs GROUP BY status")).all()
    return {status: count for status, count in rows}


def worker_command(*arguments: str) -> list[str]:
    """`benchmark-platform worker …` as this interpreter runs it (the console script's own code path)."""
    return [sys.executable, "-m", "benchmark_platform.cli", "worker", *arguments]


# --- results rows, frames and use cases ---------------------------------------------------------------------------

DAY = date(2026, 1, 5)
CHATBOT_WEIGHTS = {
    "ttft_p90": 0.3,
    "tpot_p90": 0.25,
    "throughput": 0.1,
    "cost_per_million_tokens": 0.2,
    "accuracy": 0.15,
}


def uid(kind: str, name: str) -> uuid.UUID:
    """A stable id derived from a name, so rows naming the same model share its id."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{name}")


def result_row(
    model: str = "llama",
    version: str = "fp16",
    hardware: str = "aws-h100",
    framework: str = "vllm",
    **overrides: Any,
) -> dict[str, Any]:
    """One results-frame row; ids derive from the names, so rows of the same model share its id."""
    row: dict[str, Any] = {
        "result_id": uuid.uuid4(),
        "benchmark_date": DAY,
        "created_at": datetime(2026, 1, 5, 12, tzinfo=UTC),
        "workload_type": "chatbot",
        "batch_size": 8,
        "sequence_length": 512,
        "tensor_parallel": 1,
        "runner": "measured",
        "model_id": uid("model", model),
        "model_name": model,
        "model_version_id": uid("version", f"{model}@{version}"),
        "version_key": f"{model}@{version}",
        "hardware_config_id": uid("hardware", hardware),
        "hardware_name": hardware,
        "gpu_type": "H100-SXM",
        "gpu_count": 1,
        "cost_per_hour_usd": 4.0,
        "spot_cost_per_hour_usd": None,
        "spot_available": False,
        "framework_id": uid("framework", framework),
        "framework_name": framework,
        **{column: np.nan for column in METRIC_COLUMNS},
        "ttft_p90_ms": 100.0,
        "tpot_p50_ms": 16.0,
        "tpot_p90_ms": 20.0,
        "throughput_tokens_sec": 1000.0,
    }
    row.update(overrides)
    return row


def results_frame(*rows: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows), columns=list(RESULT_FRAME_COLUMNS))
    return frame.astype({column: float for column in METRIC_COLUMNS})


def chatbot(**overrides: Any) -> UseCaseCriteria:
    fields: dict[str, Any] = {
        "subcategory": "chatbot",
        "sla_ttft_p90_ms": 500,
        "sla_tpot_p90_ms": 50,
        "weights": CHATBOT_WEIGHTS,
    }
    return UseCaseCriteria(**(fields | overrides))


def insert_use_case(
    engine: Engine, subcategory: str = "chatbot", sla: dict | None = None, weights: dict | None = None
) -> uuid.UUID:
    with engine.begin() as connection:
        return connection.execute(
            insert(UseCase)
            .values(
                category="conversational",
                subcategory=subcategory,
                pipeline_tag="text-generation",
                characteristics={"typical_input_tokens": 512, "typical_output_tokens": 256, "sla": sla or {}},
                default_weights=weights or CHATBOT_WEIGHTS,
            )
            .returning(UseCase.id)
        ).scalar_one()


def insert_results(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert the models, versions, hardware and frameworks the rows name (once each), then the results."""
    with engine.begin() as connection:
        for row in rows:
            connection.execute(
                pg_insert(Model)
                .values(id=row["model_id"], name=row["model_name"], architecture="llama", parameters=8_000_000_000)
                .on_conflict_do_nothing()
            )
            connection.execute(
                pg_insert(ModelVersion)
                .values(
                    id=row["model_version_id"],
                    model_id=row["model_id"],
                    version=row["version_key"].split("@", 1)[1],
                    quantization="fp16",
                    quantization_bits=16,
                    format="safetensors",
                    artifact_uri=f"hf://{row['model_name']}",
                    vram_requirement_gb=19.2,
                )
                .on_conflict_do_nothing()
            )
            connection.execute(
                pg_insert(HardwareConfig)
                .values(
                    id=row["hardware_config_id"],
                    name=row["hardware_name"],
                    gpu_type=row["gpu_type"],
                    gpu_count=row["gpu_count"],
                    vram_per_gpu_gb=80,
                    total_vram_gb=80 * row["gpu_count"],
                    cost_per_hour_usd=row["cost_per_hour_usd"],
                    spot_cost_per_hour_usd=row["spot_cost_per_hour_usd"],
                    spot_available=row["spot_available"],
                    cloud_provider="aws",
                    instance_type="p5.48xlarge",
                )
                .on_conflict_do_nothing()
            )
            connection.execute(
                pg_insert(InferenceFramework)
                .values(id=row["framework_id"], name=row["framework_name"], version="0.6")
                .on_conflict_do_nothing()
            )
        connection.execute(
            insert(BenchmarkResult),
            [
                {
                    "id": row["result_id"],
                    "model_version_id": row["model_version_id"],
                    "hardware_config_id": row["hardware_config_id"],
                    "framework_id": row["framework_id"],
                    "benchmark_date": row["benchmark_date"],
                    "workload_type": row["workload_type"],
                    "batch_size": row["batch_size"],
                    "sequence_length": row["sequence_length"],
                    "tensor_parallel": row["tensor_parallel"],
                    "runner": row["runner"],
                    **{column: None if pd.isna(row[column]) else row[column] for column in METRIC_COLUMNS},
                }
                for row in rows
            ],
        )


# --- runner facts and specs ---------------------------------------------------------------------------------------

H100 = HardwareFacts(
    name="aws-h100-sxm-x1",
    gpu_type="H100-SXM",
    gpu_count=1,
    vendor="nvidia",
    vram_per_gpu_gb=80,
    memory_bandwidth_gbps=3350,
    fp16_tflops=989,
    fp8_tflops=1979,
    int8_tops=1979,
    interconnect_bandwidth_gbps=450,
)
VLLM = FrameworkFacts(
    name="vllm",
    version="0.6.3",
    launch_command="vllm serve {model} --port {port} --tensor-parallel-size {tp}",
    prefill_efficiency=0.6,
    decode_efficiency=0.8,
)
CHATBOT = WorkloadFacts(
    name="chatbot",
    typical_input_tokens=512,
    typical_output_tokens=256,
    chat=True,
    measure_accuracy=True,
    sla_ttft_p90_ms=500,
    sla_tpot_p90_ms=50,
)


def llama_8b(quantization: str = "bf16", bits: int = 16, fmt: str = "safetensors", **overrides) -> ModelFacts:
    facts = dict(
        name="llama-3.1-8b",
        version_key=f"llama-3.1-8b@{quantization}",
        artifact_uri="hf://meta-llama/Llama-3.1-8B-Instruct",
        parameters=8_030_000_000,
        quantization=quantization,
        quantization_bits=bits,
        format=fmt,
        num_layers=32,
        hidden_size=4096,
        num_kv_heads=8,
        head_dim=128,
        baseline_accuracy=0.80,
    )
    return ModelFacts(**(facts | overrides))


def make_spec(**overrides) -> RunSpec:
    fields = dict(
        model=llama_8b(), hardware=H100, framework=VLLM, workload=CHATBOT, batch_size=8, sequence_length=512, seed=1
    )
    return RunSpec(**(fields | overrides))


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


@contextmanager
def emulator_process(*flags: str) -> Iterator[str]:
    """`emulate-server` in its own process (own GIL), so its timing does not depend on the client's load; yields
    its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from benchmark_platform.cli import main; main()", "emulate-server", "--port", "0"]
        + list(flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("emulator listening on"), line
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(timeout=10)
