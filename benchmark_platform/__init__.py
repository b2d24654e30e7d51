"""benchmark-platform: LLM inference benchmarking orchestrated by Dagster, coordinated in PostgreSQL."""

__version__ = "0.1.0"
