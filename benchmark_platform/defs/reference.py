"""Reference data as software-defined assets: the catalogs every benchmark and ranking reads."""

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from benchmark_platform import catalogs, manifests
from benchmark_platform.defs.resources import PlatformDatabase

GROUP = "reference"


def _table_metadata(rows: list[dict[str, Any]], rows_written: int) -> dict[str, dg.MetadataValue]:
    return {
        "rows": dg.MetadataValue.int(len(rows)),
        "rows_upserted": dg.MetadataValue.int(rows_written),
        "preview": dg.MetadataValue.md(pd.DataFrame(rows).to_markdown(index=False)),
    }


@dg.asset(group_name=GROUP, kinds={"postgres"}, description="GPU hardware configs with spec-sheet figures and prices.")
def hardware_configs(database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    written = catalogs.seed_hardware(engine)
    return dg.MaterializeResult(metadata=_table_metadata(catalogs.stored_hardware(engine), written))


@dg.asset(
    group_name=GROUP, kinds={"postgres"}, description="Inference frameworks, their quantizations and launch commands."
)
def inference_frameworks(database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    written = catalogs.seed_frameworks(engine)
    return dg.MaterializeResult(metadata=_table_metadata(catalogs.stored_frameworks(engine), written))


@dg.asset(group_name=GROUP, kinds={"postgres"}, description="Use cases with SLAs and default TOPSIS weights.")
def use_case_taxonomy(database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    written = catalogs.seed_use_cases(engine)
    return dg.MaterializeResult(metadata=_table_metadata(catalogs.stored_use_cases(engine), written))


class ModelCatalogConfig(dg.Config):
    """Manifests to register on materialization; by default the bundled examples."""

    manifest_paths: list[str] = []


@dg.asset(group_name=GROUP, kinds={"postgres"}, description="Models and model versions registered for benchmarking.")
def model_catalog(config: ModelCatalogConfig, database: PlatformDatabase) -> dg.MaterializeResult:
    engine = database.get_engine()
    paths = [Path(p) for p in config.manifest_paths] or sorted(manifests.EXAMPLE_MANIFESTS_DIR.glob("*.yaml"))
    registered = [key for path in paths for key in manifests.register_model(engine, manifests.load_manifest(path))]
    versions = manifests.stored_versions(engine)
    return dg.MaterializeResult(
        metadata={
            "model_versions": dg.MetadataValue.int(len(versions)),
            "registered_now": dg.MetadataValue.int(len(registered)),
            "preview": dg.MetadataValue.md(pd.DataFrame(versions).to_markdown(index=False)),
        }
    )


reference_assets = [hardware_configs, inference_frameworks, use_case_taxonomy, model_catalog]
