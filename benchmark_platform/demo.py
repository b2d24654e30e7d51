"""The main job end to end on the local instance: what `benchmark-platform demo` runs."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from benchmark_platform.definitions import defs
from benchmark_platform.defs.reference import reference_assets
from benchmark_platform.instance import prepare_dagster_home


def _materialize(instance: dg.DagsterInstance, assets, echo: Callable[[str], None], **kwargs) -> dg.ExecuteInJobResult:
    result = dg.materialize(assets, instance=instance, resources=defs.resources, raise_on_error=True, **kwargs)
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        counts = {k: v.value for k, v in materialization.metadata.items() if isinstance(v, dg.IntMetadataValue)}
        echo(f"  materialized {materialization.asset_key.to_user_string()}: {counts}")
    return result


def run_demo(echo: Callable[[str], None] = print) -> None:
    """Seed the catalogs and register the bundled model versions through Dagster, on the persistent instance."""
    home = prepare_dagster_home()
    echo(f"Dagster instance: {home}")
    with dg.DagsterInstance.get() as instance:
        echo("1/1 reference catalogs and example models")
        _materialize(instance, reference_assets, echo)
