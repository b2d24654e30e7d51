"""The reference assets materialize into PostgreSQL through Dagster, idempotently, with readable metadata."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import func, select

from benchmark_platform import catalogs, manifests
from benchmark_platform.definitions import defs
from benchmark_platform.defs.reference import reference_assets
from benchmark_platform.orm import HardwareConfig, InferenceFramework, ModelVersion, UseCase


def _metadata(result: dg.ExecuteInJobResult, asset: str) -> dict:
    [event] = result.asset_materializations_for_node(asset)
    return {key: value.value for key, value in event.metadata.items()}


def _counts(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.__tablename__: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (HardwareConfig, InferenceFramework, UseCase, ModelVersion)
        }


def test_reference_assets_materialize_into_postgres(engine, dagster_instance):
    result = dg.materialize(reference_assets, instance=dagster_instance, resources=defs.resources)
    assert result.success
    counts = _counts(engine)
    assert counts["hardware_configs"] == len(catalogs.load_hardware()) >= 20
    assert counts["inference_frameworks"] == len(catalogs.load_frameworks())
    assert counts["use_case_taxonomy"] == len(catalogs.load_use_cases())
    bundled_versions = sum(
        len(manifests.load_manifest(path).versions) for path in manifests.EXAMPLE_MANIFESTS_DIR.glob("*.yaml")
    )
    assert counts["model_versions"] == bundled_versions > 0
    hardware = _metadata(result, "hardware_configs")
    assert hardware["rows"] == counts["hardware_configs"]
    assert "| name" in hardware["preview"] and "H100" in hardware["preview"]
    assert _metadata(result, "model_catalog")["model_versions"] == bundled_versions

    again = dg.materialize(reference_assets, instance=dagster_instance, resources=defs.resources)
    assert again.success and _counts(engine) == counts
    stored = dagster_instance.get_latest_materialization_event(dg.AssetKey("use_case_taxonomy"))
    assert stored is not None and stored.run_id == again.run_id
