"""The Dagster code location of benchmark-platform: ``defs`` assembled from one module per concern."""

import dagster as dg

from benchmark_platform.defs.reference import reference_assets
from benchmark_platform.defs.resources import PlatformDatabase

defs = dg.Definitions(
    assets=[*reference_assets],
    resources={"database": PlatformDatabase()},
)
