"""Shared builders for the tests, so that no test module imports another, split by concern: ``database`` (the
test database filled, counts, raw-SQL rows for migration tests), ``results`` (results frames and use cases, no
database), ``facts`` (runner facts and specs), ``processes`` (system programs, the worker and the emulator in their
own processes), ``scripts`` (the scripts under benchmarks/ as shared modules) and ``k8s`` (a step Job as dagster-k8s
renders it). Every name is importable from here; the
Kubernetes builders are imported on first use, so a test that needs none of them never loads kubernetes."""

from benchmark_platform_tests.factories.database import (
    DEFAULT_VERSION_KEY,
    framework_id,
    hardware_id,
    insert_results,
    insert_schema_rows,
    insert_use_case,
    seed_with_model,
    status_counts,
    table_counts,
)
from benchmark_platform_tests.factories.facts import CHATBOT, H100, VLLM, llama_8b, make_spec
from benchmark_platform_tests.factories.processes import (
    REQUIRE_SYSTEM_PROGRAMS_ENV,
    emulator_process,
    system_program,
    worker_command,
)
from benchmark_platform_tests.factories.results import (
    CHATBOT_WEIGHTS,
    DAY,
    VLLM_SERVE_RESULT,
    chatbot,
    result_row,
    results_frame,
    uid,
)
from benchmark_platform_tests.factories.scripts import benchmark_script

_K8S_NAMES = ("CODE_LOCATION_IMAGE", "KUBERNETES_VERSIONS", "render_step_job")


def __getattr__(name: str):
    if name in _K8S_NAMES:
        from benchmark_platform_tests.factories import k8s

        return getattr(k8s, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHATBOT",
    "CHATBOT_WEIGHTS",
    "DAY",
    "DEFAULT_VERSION_KEY",
    "H100",
    "REQUIRE_SYSTEM_PROGRAMS_ENV",
    "VLLM",
    "VLLM_SERVE_RESULT",
    "benchmark_script",
    "chatbot",
    "emulator_process",
    "framework_id",
    "hardware_id",
    "insert_results",
    "insert_schema_rows",
    "insert_use_case",
    "llama_8b",
    "make_spec",
    "result_row",
    "results_frame",
    "seed_with_model",
    "status_counts",
    "system_program",
    "table_counts",
    "uid",
    "worker_command",
    *_K8S_NAMES,
]
