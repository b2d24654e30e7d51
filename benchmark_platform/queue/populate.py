"""Filling the queue: a model version's config matrix written into ``benchmark_configs`` (COPY, then one
``INSERT … ON CONFLICT DO NOTHING``), idempotent."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, text

from benchmark_platform import matrix
from benchmark_platform.domain import CONFIG_DIMENSIONS
from benchmark_platform.queue.facts import load_matrix_inputs

_DIMENSIONS = ", ".join(CONFIG_DIMENSIONS)
_LOAD_TYPES = {
    "workload_type": "text",
    "batch_size": "integer",
    "sequence_length": "integer",
    "tensor_parallel": "integer",
    "expert_parallel": "integer",
    "data_parallel_attention": "boolean",
    "speculative_method": "text",
    "kv_cache_dtype": "text",
    "prefix_caching": "boolean",
}


@dataclass(frozen=True)
class PopulateReport:
    """What ``populate_matrix`` did: configs created, already there, left out (and why), per hardware × framework."""

    model_version_id: uuid.UUID
    version_key: str
    created: int
    existing: int
    excluded: dict[str, int]
    by_hardware_framework: dict[str, int]
    excluded_by_hardware_framework: dict[str, dict[str, int]]
    seconds: float
    by_tensor_parallel: dict[int, int] = field(default_factory=dict)

    @property
    def matrix_size(self) -> int:
        return self.created + self.existing

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version_id": str(self.model_version_id),
            "version_key": self.version_key,
            "matrix_size": self.matrix_size,
            "created": self.created,
            "existing": self.existing,
            "excluded": self.excluded,
            "by_hardware_framework": self.by_hardware_framework,
            "excluded_by_hardware_framework": self.excluded_by_hardware_framework,
            "by_tensor_parallel": {str(tp): count for tp, count in self.by_tensor_parallel.items()},
            "seconds": round(self.seconds, 3),
        }


def _copy_text(value: str) -> str:
    """``value`` escaped for a column of COPY's text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def populate_matrix(
    engine: Engine,
    model_version_id: uuid.UUID,
    *,
    frameworks: Collection[str] | None = None,
    hardware: Collection[str] | None = None,
) -> PopulateReport:
    """Write the version's config matrix into ``benchmark_configs``; idempotent (existing configs, whatever their
    status, are left alone).

    ``frameworks`` / ``hardware`` restrict the matrix to those names (naming a framework that is not benchmarked by
    default, such as the local emulator, includes it). Bulk path: COPY into a temporary table, then one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING`` against the unique_config constraint, all in one transaction (a
    failure leaves the queue as it was).
    """
    started = time.perf_counter()
    with engine.begin() as connection:
        inputs = load_matrix_inputs(connection, model_version_id)
        hardware_ids, framework_ids = inputs.hardware_ids, inputs.framework_ids
        for kind, wanted, known in (("framework", frameworks, framework_ids), ("hardware", hardware, hardware_ids)):
            unknown = sorted(set(wanted or ()) - set(known))
            if unknown:
                raise LookupError(f"unknown {kind} {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        built = matrix.build_matrix(
            inputs.version,
            [h for h in inputs.hardware if hardware is None or h.name in hardware],
            [f for f in inputs.frameworks if frameworks is None or f.name in frameworks],
            inputs.workloads,
            include_frameworks=frameworks or (),
        )
        connection.execute(
            text(
                "CREATE TEMPORARY TABLE matrix_load (hardware_config_id uuid, framework_id uuid,"
                f" {', '.join(f'{column} {_LOAD_TYPES[column]}' for column in CONFIG_DIMENSIONS)}, priority integer)"
                " ON COMMIT DROP"
            )
        )
        copy_sql = f"COPY matrix_load (hardware_config_id, framework_id, {_DIMENSIONS}, priority) FROM STDIN"
        hardware_text = {name: str(value) for name, value in hardware_ids.items()}
        framework_text = {name: str(value) for name, value in framework_ids.items()}
        workload_text = {workload.name: _copy_text(workload.name) for workload in inputs.workloads}
        rows = "".join(
            "\t".join(
                (
                    hardware_text[c.hardware],
                    framework_text[c.framework],
                    workload_text[c.workload_type],
                    *(str(getattr(c, column)) for column in CONFIG_DIMENSIONS[1:]),  # numbers, booleans, option names
                    str(c.priority),
                )
            )
            + "\n"
            for c in built.configs
        )
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(copy_sql) as copy:
            copy.write(rows)  # one buffer in COPY's text format: no per-row adaptation in Python
        created = connection.execute(
            text(
                f"""
                INSERT INTO benchmark_configs (model_version_id, hardware_config_id, framework_id, {_DIMENSIONS},
                                               priority)
                SELECT :model_version_id, hardware_config_id, framework_id, {_DIMENSIONS}, priority
                FROM matrix_load
                ON CONFLICT ON CONSTRAINT unique_config DO NOTHING
                """
            ),
            {"model_version_id": model_version_id},
        ).rowcount
    by_pair: dict[str, int] = {}
    for config in built.configs:
        key = f"{config.hardware}/{config.framework}"
        by_pair[key] = by_pair.get(key, 0) + 1
    return PopulateReport(
        model_version_id=model_version_id,
        version_key=inputs.version_key,
        created=created,
        existing=len(built.configs) - created,
        excluded=built.excluded,
        by_hardware_framework=by_pair,
        excluded_by_hardware_framework={f"{h}/{f}": counts for (h, f), counts in built.excluded_by_pair.items()},
        seconds=time.perf_counter() - started,
        by_tensor_parallel=dict(sorted(Counter(config.tensor_parallel for config in built.configs).items())),
    )
