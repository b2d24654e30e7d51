"""Partitions: one per model version (added by the new-version sensor), one per day for the daily stats."""

import dagster as dg

model_versions_partitions = dg.DynamicPartitionsDefinition(name="model_versions")
"""Keys are readable version keys (``llama-3.1-8b@int4-awq``); ``manifests.resolve_model_version`` maps them to ids."""

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=1)
"""One partition per UTC day; ``end_offset=1`` makes today's partition available, so the day can be refreshed live."""
