"""A user's constraints applied to a use case's ranking: the best configurations that meet them, and why.

Scores and ranks stay those of the whole use case (every SLA-compliant configuration), so a recommendation is
comparable with ``model_rankings`` and its explanation ("best on cost") means best in the use case; the
constraints only filter. When nothing is left, ``removed_by`` says how many configurations each constraint
would remove on its own, and ``most_restrictive`` names the one that removes the most.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from benchmark_platform.ranking import criteria
from benchmark_platform.ranking.rankings import UseCaseRanking

_BEST = 0.999


def evidence(results: pd.DataFrame, sources: tuple[str, ...] = (), measured_only: bool = False) -> pd.DataFrame:
    """The results a recommendation ranks on: only measured ones (ours or imported), only those of ``sources``
    (``source`` values: simulated, measured, inferencex, ...), or all. Unlike the constraints this chooses the
    evidence, so the use case is ranked again on it: a deployment measured nowhere drops out, and its ranks are
    those among what is left."""
    keep = pd.Series(True, index=results.index)
    if measured_only:
        keep &= results["runner"].eq("measured")
    if sources:
        keep &= results["source"].isin(sources)
    return results[keep]


class Constraints(BaseModel):
    """What a user asks of a configuration; every field left empty means no constraint."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_ttft_p90_ms: float | None = Field(default=None, gt=0)
    max_tpot_p90_ms: float | None = Field(default=None, gt=0)
    max_cost: float | None = Field(default=None, gt=0, description="in the use case's cost unit")
    hardware: tuple[str, ...] = Field(
        default=(), description="case-insensitive substrings of the hardware name or GPU type, any may match"
    )
    model_versions: tuple[str, ...] = Field(default=(), description="exact version keys, e.g. llama-3.1-8b@int4-awq")

    def masks(self, configurations: pd.DataFrame, cost_column: str) -> dict[str, pd.Series]:
        """For each constraint that is set, which configurations meet it (keyed by the CLI option's name); the cost
        is read from ``cost_column``, the use case's cost unit."""
        masks: dict[str, pd.Series] = {}
        if self.max_ttft_p90_ms is not None:
            masks["max_ttft_p90_ms"] = configurations["ttft_p90_ms"] <= self.max_ttft_p90_ms
        if self.max_tpot_p90_ms is not None:
            masks["max_tpot_p90_ms"] = configurations["tpot_p90_ms"] <= self.max_tpot_p90_ms
        if self.max_cost is not None:
            masks["max_cost"] = configurations[cost_column] <= self.max_cost
        if self.hardware:
            names = configurations["hardware_name"].str.lower() + "\n" + configurations["gpu_type"].str.lower()
            masks["hardware"] = pd.concat(
                [names.str.contains(wanted.lower(), regex=False) for wanted in self.hardware], axis=1
            ).any(axis=1)
        if self.model_versions:
            masks["model_version"] = configurations["version_key"].isin(self.model_versions)
        return masks


@dataclass(frozen=True)
class Recommendation:
    """The top configurations meeting the constraints (the ranking's columns plus ``why``), best first."""

    ranking: UseCaseRanking
    constraints: Constraints
    configurations: pd.DataFrame
    matching: int
    removed_by: dict[str, int]

    @property
    def most_restrictive(self) -> str | None:
        if not self.removed_by or max(self.removed_by.values()) == 0:
            return None
        return max(self.removed_by, key=self.removed_by.__getitem__)


def explain(row: pd.Series, weights: dict[str, float], ranked: int, registry: Mapping[str, criteria.Criterion]) -> str:
    """Why a configuration sits where it does: where it is best, where it gives up the most weighted ground."""
    closeness = {key: float(row[criteria.closeness_column(key)]) for key in weights}
    parts = [f"rank {int(row['rank'])} of {ranked}, score {float(row['score']):.3f}"]
    best = [registry[key].label for key, value in closeness.items() if value >= _BEST]
    if best:
        parts.append("best in use case on " + ", ".join(best))
    losses = {key: weights[key] * (1 - value) for key, value in closeness.items()}
    worst = max(losses, key=losses.__getitem__) if losses else None
    if worst is not None and losses[worst] > 0:
        where = (
            "worst in use case"
            if closeness[worst] <= 1 - _BEST
            else f"{closeness[worst]:.0%} of the way from worst to best"
        )
        parts.append(f"gives up most on {registry[worst].label} ({where}, weight {weights[worst]:.2f})")
    parts.append("Pareto-optimal" if row["pareto"] else "dominated by another configuration")
    if row["accuracy_imputed"]:
        parts.append("accuracy not measured (counted as the worst measured)")
    if row["simulated"]:
        parts.append("SIMULATED: simulator estimate, not a measurement")
    return "; ".join(parts)


def recommend(ranking: UseCaseRanking, constraints: Constraints, top: int = 5) -> Recommendation:
    """The ``top`` best-ranked configurations of ``ranking`` that meet every constraint."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    configurations = ranking.configurations
    masks = constraints.masks(configurations, criteria.COST_UNITS[ranking.use_case.cost_unit].column)
    meets_all = pd.Series(True, index=configurations.index)
    for mask in masks.values():
        meets_all &= mask
    chosen = configurations[meets_all].head(top).copy()
    registry = ranking.use_case.registry
    chosen["why"] = [explain(row, ranking.weights, len(configurations), registry) for _, row in chosen.iterrows()]
    return Recommendation(
        ranking=ranking,
        constraints=constraints,
        configurations=chosen,
        matching=int(meets_all.sum()),
        removed_by={name: int((~mask).sum()) for name, mask in masks.items()},
    )
