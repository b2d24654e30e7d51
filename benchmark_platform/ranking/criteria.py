"""The ranking criteria, once: every list of criteria in the platform derives from ``CRITERIA``.

The catalog validation (each use case weighs every registered criterion, and nothing else), the ranking (which
columns TOPSIS reads, in which direction), ``recommend``'s explanations, the rankings asset's metadata and the
report's labels and axes all read this registry. Adding a criterion is one entry here plus a weight in each use case
of ``catalogs/use_cases.yaml`` (and, if its metric is not yet a column of a ranked deployment, computing that column
in ``rankings._deployable_configurations``).

Cost is stated in the use case's own unit and price basis (``use_cases.yaml``: ``cost_unit``, ``price_basis``): a
classifier is bought per request, a RAG service per token read and written, a chatbot per token written, and
production chat does not run on preemptible capacity. ``COST_UNITS`` and ``PRICE_BASES`` are their one home; the
cost criterion (``per_cost_unit``) takes its column and labels from the unit (``for_cost_unit``).

Pure: no database, no Dagster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Literal, get_args


@dataclass(frozen=True)
class Criterion:
    """One ranking criterion.

    ``column``: the deployment's metric column it ranks on. ``benefit``: higher is better. ``label`` names it in
    sentences, ``short_label`` heads a table column, ``axis_label`` (with its unit) a chart axis; ``format`` formats
    a value. ``reciprocal``: TOPSIS ranks ``1 / value`` as a benefit instead (rankings rule 6). ``optional``: the
    metric may be unmeasured; the criterion is dropped for a use case where no ranked deployment has it, and a
    missing value counts as the worst measured one otherwise. ``latency``: a latency the report may put on an axis.
    ``per_cost_unit``: a cost whose column and labels are those of the use case's cost unit (``for_cost_unit``).
    ``economic``: what a buyer pays for (throughput per GPU, cost): a deployment of the same model version that
    another feasible one beats on every economic criterion never ranks above it (rankings rule 8).
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
    per_cost_unit: bool = False
    economic: bool = False

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
        economic=True,
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
        per_cost_unit=True,
        economic=True,
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


PriceBasis = Literal["on-demand", "spot", "reserved"]
PRICE_BASES: tuple[str, ...] = get_args(PriceBasis)
# The hardware column holding each basis's hourly price (null where the instance is not sold on that basis).
PRICE_COLUMNS: Mapping[str, str] = MappingProxyType(
    {"on-demand": "cost_per_hour_usd", "spot": "spot_cost_per_hour_usd", "reserved": "reserved_cost_per_hour_usd"}
)


@dataclass(frozen=True)
class CostUnit:
    """A unit a cost is stated in: the deployment column holding the cost, the node rate (per second) the hourly
    price is divided by, how many of the rate's units the price is quoted for, and its labels."""

    key: str
    column: str
    rate_column: str
    per: float
    label: str
    short_label: str
    format: str


CostUnitKey = Literal["output-tokens", "total-tokens", "requests"]
COST_UNITS: Mapping[str, CostUnit] = MappingProxyType(
    {
        unit.key: unit
        for unit in (
            CostUnit(
                "output-tokens",
                "cost_per_million_tokens",
                "throughput_tokens_sec",
                1e6,
                "$ per million output tokens",
                "$/Mtok out",
                ".3f",
            ),
            CostUnit(
                "total-tokens",
                "cost_per_million_total_tokens",
                "total_tokens_sec",
                1e6,
                "$ per million input + output tokens",
                "$/Mtok total",
                ".3f",
            ),
            CostUnit(
                "requests",
                "cost_per_thousand_requests",
                "rps_sustained",
                1e3,
                "$ per 1,000 requests",
                "$/1k req",
                ".4f",
            ),
        )
    }
)


def for_cost_unit(unit: str, basis: str) -> Mapping[str, Criterion]:
    """The registry as a use case stating costs in ``unit`` on ``basis`` prices ranks with it: each
    ``per_cost_unit`` criterion reads that unit's column and its labels name the unit and the basis."""
    cost = COST_UNITS[unit]
    return MappingProxyType(
        {
            key: replace(
                criterion,
                column=cost.column,
                label=f"cost ({cost.label}, {basis})",
                short_label=cost.short_label,
                unit=cost.label,
                axis_label=f"cost ({cost_statement(unit, basis)})",
                format=cost.format,
            )
            if criterion.per_cost_unit
            else criterion
            for key, criterion in CRITERIA.items()
        }
    )


def cost_text(value: float, unit: str, basis: str) -> str:
    """One cost as a sentence shows it, with its unit and basis: "$0.240 per million output tokens (on-demand)"."""
    cost = COST_UNITS[unit]
    return f"${value:{cost.format}} {cost.label.removeprefix('$ ')} ({basis})"


def cost_statement(unit: str, basis: str) -> str:
    """How a use case's costs are stated, for every place that shows one: "$ per 1,000 requests, spot prices"."""
    return f"{COST_UNITS[unit].label}, {basis} prices"
