"""Dagster definitions, one module per concern; ``benchmark_platform.definitions`` assembles them."""
