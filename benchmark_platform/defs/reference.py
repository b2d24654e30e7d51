"""Reference data as software-defined assets: the catalogs every benchmark and ranking reads."""

from pathlib import Path

import dagster as dg
import pandas as pd
from sqlalchemy import select

from benchmark_platform import catalogs, manifests
from benchmark_platform.defs.resources import PlatformDatabase
from benchmark_platform.orm import (
    HardwareConfig,
    InferenceFramework,
    Model,
    ModelVersion,
    UseCase,
    version_key_expression,
)

GROUP = "reference"


def _table_metadata(frame: pd.DataFrame, rows_written: int) -> dict[str, dg.MetadataValue]:
    return {
        "rows": dg.MetadataValue.int(len(frame)),
        "rows_upserted": dg.MetadataValue.int(rows_written),
        "preview": dg.MetadataValue.md(frame.to_markdown(index=False)),
    }


def _frame(engine, query) -> pd.DataFrame:
    with engine.connect() as conn:
        result = conn.execute(query)
        return pd.DataFrame(result.fetchall(), columns=list(result.keys()))


@dg.asset(group_name=GROUP, kinds={"postgres"}, description="GPU hardware configs with spec-sheet figures and prices.")
def hardware_configs(database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    written = catalogs.seed_hardware(engine)
    query = select(
        HardwareConfig.name,
        HardwareConfig.gpu_type,
        HardwareConfig.gpu_count,
        HardwareConfig.total_vram_gb,
        HardwareConfig.cloud_provider,
        HardwareConfig.cost_per_hour_usd,
        HardwareConfig.spot_cost_per_hour_usd,
    ).order_by(HardwareConfig.gpu_type, HardwareConfig.gpu_count, HardwareConfig.cloud_provider)
    frame = _frame(engine, query)
    return dg.MaterializeResult(metadata=_table_metadata(frame, written))


@dg.asset(
    group_name=GROUP, kinds={"postgres"}, description="Inference frameworks, their quantizations and launch commands."
)
def inference_frameworks(database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    written = catalogs.seed_frameworks(engine)
    query = select(InferenceFramework.name, InferenceFramework.version, InferenceFramework.supports_streaming).order_by(
        InferenceFramework.name
    )
    return dg.MaterializeResult(metadata=_table_metadata(_frame(engine, query), written))


@dg.asset(group_name=GROUP, kinds={"postgres"}, description="Use cases with SLAs and default TOPSIS weights.")
def use_case_taxonomy(database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    written = catalogs.seed_use_cases(engine)
    query = select(UseCase.subcategory, UseCase.category, UseCase.pipeline_tag).order_by(UseCase.subcategory)
    return dg.MaterializeResult(metadata=_table_metadata(_frame(engine, query), written))


class ModelCatalogConfig(dg.Config):
    """Manifests to register on materialization; by default the bundled examples."""

    manifest_paths: list[str] = []


@dg.asset(group_name=GROUP, kinds={"postgres"}, description="Models and model versions registered for benchmarking.")
def model_catalog(config: ModelCatalogConfig, database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    paths = [Path(p) for p in config.manifest_paths] or sorted(manifests.EXAMPLE_MANIFESTS_DIR.glob("*.yaml"))
    registered = [key for path in paths for key in manifests.register_model(engine, manifests.load_manifest(path))]
    frame = _model_versions_frame(engine)
    return dg.MaterializeResult(
        metadata={
            "model_versions": dg.MetadataValue.int(len(frame)),
            "registered_now": dg.MetadataValue.int(len(registered)),
            "preview": dg.MetadataValue.md(frame.to_markdown(index=False)),
        }
    )


def _model_versions_frame(engine) -> pd.DataFrame:
    query = (
        select(
            version_key_expression().label("version_key"),
            ModelVersion.quantization,
            ModelVersion.format,
            ModelVersion.vram_requirement_gb,
        )
        .join(Model, Model.id == ModelVersion.model_id)
        .order_by(Model.name, ModelVersion.version)
    )
    return _frame(engine, query)


reference_assets = [hardware_configs, inference_frameworks, use_case_taxonomy, model_catalog]
