"""The facts of model versions and the catalogs, read from the database: the one loader of ``domain``'s facts.

Each kind of fact is read from its row by one function here (``_model_facts`` for a version and its
``model_config``, ``_hardware_facts``, ``_framework_facts``, ``_workload_facts``), whoever asks: the matrix
(``load_matrix_inputs``), a claimed config's run (``load_config_facts``, one round trip), the adaptive planner. The
matrix's options keep the catalogs' lenient defaults (a framework row without capabilities supports nothing).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from benchmark_platform import matrix
from benchmark_platform.domain import (
    Architecture,
    FrameworkFacts,
    HardwareFacts,
    ModelFacts,
    ServingOptionFlags,
    VersionPrecision,
    WorkloadFacts,
)
from benchmark_platform.queue.common import VERSION_KEY
from benchmark_platform.workloads import SHARED_PREFIX_FRACTION

_MODEL_COLUMNS = f"""{VERSION_KEY} AS version_key, m.name AS model_name, m.parameters, v.artifact_uri, v.quantization,
    v.quantization_bits, v.format, v.model_config"""
# Architecture facts a model version cannot do without (the others are optional in ``domain.ModelFacts``).
_REQUIRED_ARCHITECTURE = tuple(
    name for name, field in ModelFacts.model_fields.items() if name in Architecture.model_fields and field.is_required()
)

# What ``model_config`` holds: the architecture and the version's precision facts.
_STORED_FACTS = (*Architecture.model_fields, *VersionPrecision.model_fields)


def _model_facts(row: Any) -> ModelFacts:
    """A version row (``_MODEL_COLUMNS``) as facts; LookupError naming the first architecture fact its
    ``model_config`` lacks."""
    stored = row.model_config
    if missing := [name for name in _REQUIRED_ARCHITECTURE if name not in stored]:
        raise LookupError(f"{row.version_key} lacks architecture fact {missing[0]!r} in model_config")
    return ModelFacts(
        name=row.model_name,
        version_key=row.version_key,
        artifact_uri=row.artifact_uri,
        parameters=row.parameters,
        quantization=row.quantization,
        quantization_bits=row.quantization_bits,
        format=row.format,
        **{name: stored[name] for name in _STORED_FACTS if name in stored},
    )


def load_model_version(connection: Connection, model_version_id: uuid.UUID) -> ModelFacts:
    """A model version's facts; LookupError when the version is unknown or its ``model_config`` lacks a fact."""
    row = connection.execute(
        text(
            f"""
            SELECT {_MODEL_COLUMNS}
            FROM model_versions v JOIN models m ON m.id = v.model_id
            WHERE v.id = :id
            """
        ),
        {"id": model_version_id},
    ).first()
    if row is None:
        raise LookupError(f"no model version with id {model_version_id}")
    return _model_facts(row)


def _hardware_facts(row: Any) -> HardwareFacts:
    specs = row.specs
    return HardwareFacts(
        name=row.hardware_name,
        gpu_type=row.gpu_type,
        gpu_count=row.gpu_count,
        vendor=specs["vendor"],
        vram_per_gpu_gb=row.vram_per_gpu_gb,
        memory_bandwidth_gbps=specs["memory_bandwidth_gbps"],
        fp16_tflops=specs["fp16_tflops"],
        fp8_tflops=specs.get("fp8_tflops"),
        int8_tops=specs.get("int8_tops"),
        fp4_tflops=specs.get("fp4_tflops"),
        interconnect=specs.get("interconnect"),
        interconnect_bandwidth_gbps=specs.get("interconnect_bandwidth_gbps"),
        tdp_watts=specs.get("tdp_watts"),
        cost_per_hour_usd=row.cost_per_hour_usd,
        spot_cost_per_hour_usd=row.spot_cost_per_hour_usd,
    )


def _framework_facts(row: Any) -> FrameworkFacts:
    capabilities = row.capabilities
    efficiency = capabilities.get("efficiency", {})
    return FrameworkFacts(
        name=row.framework_name,
        version=row.framework_version,
        launch_command=row.config_template.get("launch_command", ""),
        quantization_flags=row.config_template.get("quantization_flags", {}),
        completions_path=capabilities.get("completions_path", "/v1/completions"),
        chat_completions_path=capabilities.get("chat_completions_path", "/v1/chat/completions"),
        supports_ignore_eos=capabilities.get("supports_ignore_eos", True),
        serving_options=capabilities.get("serving_options", {}),
        prefill_efficiency=efficiency["prefill"],
        decode_efficiency=efficiency["decode"],
    )


def _workload_facts(row: Any) -> WorkloadFacts:
    characteristics = row.characteristics
    sla = characteristics.get("sla") or {}
    return WorkloadFacts(
        name=row.subcategory,
        typical_input_tokens=characteristics["typical_input_tokens"],
        typical_output_tokens=characteristics["typical_output_tokens"],
        chat=characteristics.get("chat", False),
        measure_accuracy=characteristics.get("measure_accuracy", False),
        sla_ttft_p90_ms=sla.get("ttft_p90_ms"),
        sla_tpot_p90_ms=sla.get("tpot_p90_ms"),
        dataset=characteristics.get("dataset", "synthetic-fixed"),
    )


@dataclass(frozen=True)
class ConfigFacts:
    """What a config's run needs beyond its own row: the facts of its version, hardware, framework and workload."""

    model: ModelFacts
    hardware: HardwareFacts
    framework: FrameworkFacts
    workload: WorkloadFacts


_CONFIG_FACTS_SQL = text(
    f"""
    SELECT {_MODEL_COLUMNS},
           h.name AS hardware_name, h.gpu_type, h.gpu_count, h.vram_per_gpu_gb, h.specs, h.cost_per_hour_usd,
           CASE WHEN h.spot_available THEN h.spot_cost_per_hour_usd END AS spot_cost_per_hour_usd,
           f.name AS framework_name, f.version AS framework_version, f.capabilities, f.config_template,
           u.subcategory, u.characteristics
    FROM model_versions v
    JOIN models m ON m.id = v.model_id
    JOIN hardware_configs h ON h.id = :hardware_config_id
    JOIN inference_frameworks f ON f.id = :framework_id
    JOIN use_case_taxonomy u ON u.subcategory = :workload_type
    WHERE v.id = :model_version_id
    """
)


def load_config_facts(
    connection: Connection,
    model_version_id: uuid.UUID,
    hardware_config_id: uuid.UUID,
    framework_id: uuid.UUID,
    workload_type: str,
) -> ConfigFacts:
    """The facts of one config's version, hardware, framework and workload in one round trip; LookupError when one
    of them is missing (or the version lacks an architecture fact)."""
    row = connection.execute(
        _CONFIG_FACTS_SQL,
        {
            "model_version_id": model_version_id,
            "hardware_config_id": hardware_config_id,
            "framework_id": framework_id,
            "workload_type": workload_type,
        },
    ).first()
    if row is None:
        raise LookupError(
            f"config refers to a missing catalog entry (model version {model_version_id}, hardware "
            f"{hardware_config_id}, framework {framework_id}, workload {workload_type!r})"
        )
    return ConfigFacts(
        model=_model_facts(row),
        hardware=_hardware_facts(row),
        framework=_framework_facts(row),
        workload=_workload_facts(row),
    )


@dataclass(frozen=True)
class MatrixInputs:
    """A version and the catalogs as the pure matrix sees them, plus name -> id maps to write the result back."""

    version_key: str
    version: ModelFacts  # a matrix.VersionSpec (domain.ModelShape) with the version's identity
    hardware: list[matrix.HardwareOption]
    frameworks: list[matrix.FrameworkOption]
    workloads: list[matrix.WorkloadOption]
    hardware_ids: dict[str, uuid.UUID]
    framework_ids: dict[str, uuid.UUID]


def load_matrix_inputs(connection: Connection, model_version_id: uuid.UUID) -> MatrixInputs:
    """Read what ``matrix.build_matrix`` needs from the database; LookupError when the version is unknown."""
    version = load_model_version(connection, model_version_id)
    hardware_rows = connection.execute(
        text("SELECT id, name, specs, gpu_count, vram_per_gpu_gb, cost_per_hour_usd FROM hardware_configs")
    ).all()
    framework_rows = connection.execute(text("SELECT id, name, capabilities FROM inference_frameworks")).all()
    workload_rows = connection.execute(text("SELECT subcategory, characteristics FROM use_case_taxonomy")).all()
    return MatrixInputs(
        version_key=version.version_key,
        version=version,
        hardware=[
            matrix.HardwareOption(
                name=hw.name,
                vendor=hw.specs["vendor"],
                gpu_count=hw.gpu_count,
                fp4=hw.specs.get("fp4_tflops") is not None,
                fp8=hw.specs.get("fp8_tflops") is not None,
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
                serving_options=ServingOptionFlags.model_validate(fw.capabilities.get("serving_options", {})),
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
                shared_prefix_fraction=SHARED_PREFIX_FRACTION[
                    use_case.characteristics.get("dataset", "synthetic-fixed")
                ],
            )
            for use_case in workload_rows
        ],
        hardware_ids={hw.name: hw.id for hw in hardware_rows},
        framework_ids={fw.name: fw.id for fw in framework_rows},
    )


def resolve_hardware(connection: Connection, name: str) -> uuid.UUID:
    """The id of the hardware config called ``name``; LookupError listing the known names otherwise."""
    found = connection.execute(text("SELECT id FROM hardware_configs WHERE name = :name"), {"name": name}).scalar()
    if found is None:
        known = connection.execute(text("SELECT name FROM hardware_configs ORDER BY name")).scalars().all()
        raise LookupError(f"unknown hardware {name!r}; known: {', '.join(known) or 'none (seed the catalogs)'}")
    return found


def resolve_framework(connection: Connection, name: str) -> uuid.UUID:
    """The id of the inference framework called ``name``; LookupError listing the known names otherwise."""
    found = connection.execute(text("SELECT id FROM inference_frameworks WHERE name = :name"), {"name": name}).scalar()
    if found is None:
        known = connection.execute(text("SELECT name FROM inference_frameworks ORDER BY name")).scalars().all()
        raise LookupError(f"unknown framework {name!r}; known: {', '.join(known) or 'none (seed the catalogs)'}")
    return found
