"""The facts of a model version and the catalogs, read from the database (the one loader of domain facts)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, text

from benchmark_platform import matrix
from benchmark_platform.queue.common import VERSION_KEY


@dataclass(frozen=True)
class MatrixInputs:
    """A version and the catalogs as the pure matrix sees them, plus name -> id maps to write the result back."""

    version_key: str
    version: matrix.VersionSpec
    hardware: list[matrix.HardwareOption]
    frameworks: list[matrix.FrameworkOption]
    workloads: list[matrix.WorkloadOption]
    hardware_ids: dict[str, uuid.UUID]
    framework_ids: dict[str, uuid.UUID]


def load_matrix_inputs(connection: Connection, model_version_id: uuid.UUID) -> MatrixInputs:
    """Read what ``matrix.build_matrix`` needs from the database; LookupError when the version is unknown."""
    row = connection.execute(
        text(
            f"""
            SELECT {VERSION_KEY} AS version_key, m.parameters, v.quantization, v.quantization_bits,
                   v.format, v.model_config
            FROM model_versions v JOIN models m ON m.id = v.model_id
            WHERE v.id = :id
            """
        ),
        {"id": model_version_id},
    ).first()
    if row is None:
        raise LookupError(f"no model version with id {model_version_id}")
    facts = row.model_config
    try:
        version = matrix.VersionSpec(
            parameters=row.parameters,
            quantization=row.quantization,
            quantization_bits=row.quantization_bits,
            format=row.format,
            num_layers=facts["num_layers"],
            num_kv_heads=facts["num_kv_heads"],
            head_dim=facts["head_dim"],
            max_position_embeddings=facts.get("max_position_embeddings"),
        )
    except KeyError as missing:
        raise LookupError(f"{row.version_key} lacks architecture fact {missing} in model_config") from None
    hardware_rows = connection.execute(
        text("SELECT id, name, specs, gpu_count, vram_per_gpu_gb, cost_per_hour_usd FROM hardware_configs")
    ).all()
    framework_rows = connection.execute(text("SELECT id, name, capabilities FROM inference_frameworks")).all()
    workload_rows = connection.execute(text("SELECT subcategory, characteristics FROM use_case_taxonomy")).all()
    return MatrixInputs(
        version_key=row.version_key,
        version=version,
        hardware=[
            matrix.HardwareOption(
                name=hw.name,
                vendor=hw.specs["vendor"],
                gpu_count=hw.gpu_count,
                vram_per_gpu_gb=hw.vram_per_gpu_gb,
                cost_per_hour_usd=hw.cost_per_hour_usd,
            )
            for hw in hardware_rows
        ],
        frameworks=[
            matrix.FrameworkOption(
                name=fw.name,
                supports_quantizations=frozenset(fw.capabilities.get("supports_quantizations", ())),
                supports_formats=frozenset(fw.capabilities.get("supports_formats", ())),
                vendors=frozenset(fw.capabilities.get("vendors", ())),
                benchmark_by_default=fw.capabilities.get("benchmark_by_default", True),
            )
            for fw in framework_rows
        ],
        workloads=[
            matrix.WorkloadOption(
                name=use_case.subcategory,
                typical_input_tokens=use_case.characteristics["typical_input_tokens"],
                typical_output_tokens=use_case.characteristics["typical_output_tokens"],
                sequence_lengths=tuple(use_case.characteristics.get("sequence_lengths", matrix.SEQUENCE_LENGTHS)),
                batch_sizes=tuple(use_case.characteristics.get("concurrency", matrix.BATCH_SIZES)),
            )
            for use_case in workload_rows
        ],
        hardware_ids={hw.name: hw.id for hw in hardware_rows},
        framework_ids={fw.name: fw.id for fw in framework_rows},
    )
