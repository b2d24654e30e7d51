"""The ranking criteria, once: every list of criteria in the platform derives from ``CRITERIA``.

The catalog validation (each use case weighs every registered criterion, and nothing else), the ranking (which
columns TOPSIS reads, in which direction), ``recommend``'s explanations, the rankings asset's metadata and the
report's labels and axes all read this registry. Adding a criterion is one entry here plus a weight in each use case
of ``catalogs/use_cases.yaml`` (and, if its metric is not yet a column of a ranked deployment, computing that column
in ``rankings._deployable_configurations``).

Pure: no database, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Criterion:
    """One ranking criterion.

    ``column``: the deployment's metric column it ranks on. ``benefit``: higher is better. ``label`` names it in
    sentences, ``short_label`` heads a table column, ``axis_label`` (with its unit) a chart axis; ``format`` formats
    a value. ``reciprocal``: TOPSIS ranks ``1 / value`` as a benefit instead (rankings rule 6). ``optional``: the
    metric may be unmeasured; the criterion is dropped for a use case where no ranked deployment has it, and a
    missing value counts as the worst measured one otherwise. ``latency``: a latency the report may put on an axis.
    """

    key: str
    column: str
    benefit: bool
    label: str
    short_label: str
    unit: str
    axis_label: str
    format: str
    reciprocal: bool = False
    optional: bool = False
    latency: bool = False

    @property
    def better(self) -> str:
        return "higher" if self.benefit else "lower"


def _registry(*criteria: Criterion) -> Mapping[str, Criterion]:
    return MappingProxyType({criterion.key: criterion for criterion in criteria})


CRITERIA: Mapping[str, Criterion] = _registry(
    Criterion(
        key="ttft_p90",
        column="ttft_p90_ms",
        benefit=False,
        label="TTFT p90",
        short_label="TTFT p90 ms",
        unit="ms",
        axis_label="TTFT p90 (ms)",
        format=".1f",
        latency=True,
    ),
    Criterion(
        key="tpot_p90",
        column="tpot_p90_ms",
        benefit=False,
        label="TPOT p90",
        short_label="TPOT p90 ms",
        unit="ms",
        axis_label="TPOT p90 (ms)",
        format=".2f",
        latency=True,
    ),
    Criterion(
        key="throughput",
        column="output_tokens_sec_per_gpu",
        benefit=True,
        label="throughput per GPU",
        short_label="tok/s/GPU",
        unit="output tokens/s per GPU",
        axis_label="throughput per GPU (output tokens/s)",
        format=",.0f",
    ),
    Criterion(
        key="cost_per_million_tokens",
        column="cost_per_million_tokens",
        benefit=False,
        label="cost per Mtok",
        short_label="$/Mtok",
        unit="$ per million output tokens",
        axis_label="cost per million output tokens ($)",
        format=".3f",
        reciprocal=True,
    ),
    Criterion(
        key="accuracy",
        column="accuracy_score",
        benefit=True,
        label="accuracy",
        short_label="accuracy",
        unit="score 0-1",
        axis_label="accuracy (0-1)",
        format=".3f",
        optional=True,
    ),
)


def keys() -> tuple[str, ...]:
    """The registered criteria's keys, in registry order (read at call time, so a test may swap the registry)."""
    return tuple(CRITERIA)


def closeness_column(key: str) -> str:
    """The ranked deployment's column holding its closeness on criterion ``key`` (0 = worst, 1 = best)."""
    return f"closeness_{key}"


def weight_problems(weights: Mapping[str, object]) -> list[str]:
    """What is wrong with a use case's weights against the registry: unknown names and missing criteria."""
    registered = keys()
    problems = []
    if unknown := [name for name in weights if name not in CRITERIA]:
        problems.append(
            f"not a registered criterion: {', '.join(map(repr, unknown))} (registered: {', '.join(registered)})"
        )
    if missing := [key for key in registered if key not in weights]:
        problems.append(f"no weight for the registered criterion {', '.join(map(repr, missing))} (0 leaves one out)")
    return problems
