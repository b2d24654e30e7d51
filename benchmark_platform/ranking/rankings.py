"""Per use case: which deployments are best, by TOPSIS over latency, per-GPU throughput, cost and accuracy.

The rules, in the order they are applied:

1. Rows: results whose ``workload_type`` is the use case's subcategory, at one of its representative sequence-length
   buckets (``characteristics.sequence_lengths``; every bucket when it declares none). Per deployment and bucket the
   latest result is used, a measured one before any simulated one (a measurement outranks an estimate).
2. A deployment is model version x hardware x framework x tensor-parallel degree x concurrency per replica
   (``batch_size``); the node runs ``gpu_count / tensor_parallel`` replicas. It must have a result at every
   representative bucket of the use case (otherwise "incomplete"). Its buckets are folded as the use case's traffic
   mixes them, in equal numbers of requests: TTFT p90 and TPOT p90 = the maximum over the representative buckets
   (the SLA must hold for every prompt length the use case sends); throughput = the harmonic mean over them (the
   rate at which equal output from each bucket is served); accuracy = the mean. It is simulated if any row is, and
   then its ``source`` is ``simulated``; otherwise its rows' (``measured``, or a public source such as
   ``inferencex``; ``mixed`` when its buckets' measurements come from different sources). A measured deployment
   that also has simulated results at every bucket carries the simulator's TTFT p90, TPOT p90 and throughput per
   GPU beside its own (``simulated_*``), folded the same way.
3. Throughput is output tokens/s per GPU (the node's / its GPU count): an eight-GPU node must earn its price per GPU,
   not win on raw node tokens/s. Cost = the node's hourly price on the use case's price basis (``price_basis``:
   on-demand, spot or reserved; ``recommend --price`` overrides it) / (the node's rate x 3600) x the unit's size, in
   each unit of ``criteria.COST_UNITS``: per million output tokens (output tokens/s), per million total tokens (input
   + output tokens/s), per 1,000 requests (requests/s), each rate folded over the buckets as throughput is. The cost
   criterion ranks on the use case's unit (``cost_unit``).
4. Excluded and counted: deployments missing a representative bucket, TTFT p90, TPOT p90, throughput or the rate of
   the use case's cost unit ("incomplete"); then those whose hardware has no price on the use case's basis
   ("no_price": never costed on another basis); then those breaking the use case's SLA on TTFT p90 or TPOT p90.
5. Criteria: those with a positive default weight. Accuracy when no surviving deployment measured it: the criterion
   is dropped for this use case (the others are re-weighted). When only some did: the missing ones count as the
   worst measured accuracy and are flagged ``accuracy_imputed``.
6. Cost enters TOPSIS as its reciprocal, million tokens per dollar, a benefit criterion, not as dollars: costs span
   $0.1-$500 per million tokens, and TOPSIS's vector normalisation divides a column by its Euclidean norm, which
   one $500 deployment dominates, squeezing every cheap deployment to the same value (a 2x saving between $0.15 and
   $0.30 becomes invisible). Per dollar, the cheap deployments dominate the norm and keep their differences at full
   linear weight, while the expensive ones all land near zero, where no buyer looks. The other criteria enter as
   they are.
7. Score = TOPSIS closeness, normalised over the survivors' Pareto front (over the same criteria, flagged
   ``pareto``): the front sets each criterion's vector norm, ideal and anti-ideal, and every survivor is scored
   against them, a value worse than the front's worst counting as that worst (``topsis(reference=...)``). Classic
   TOPSIS normalises over every alternative, so adding or removing configurations that the front dominates moves the
   anti-ideal and the norms and can reverse the top (rank reversal by irrelevant alternatives; Garcia-Cascales &
   Lamata 2012, Aires & Ferreira 2019): here they change no front configuration's score (with a front of two points
   or more, nobody else's either), so a ranking of the configurations worth measuring (what the adaptive planner
   keeps) equals the ranking of the whole matrix at the top. Front configurations are ranked exactly as classic
   TOPSIS over the front; a dominated one never scores above its dominator, and one worse than the front's worst on
   every criterion scores 0. A front of a single point spans nothing: then every survivor is the reference (that
   point scores 1 either way). A model's score for the use case is its best deployment's; the top model (ties
   included) is the recommended one.
8. The SLA decides feasibility, economics decide the rank. Among the survivors (all within the SLA), a deployment
   that another deployment of the same model version beats on every economic criterion (``Criterion.economic``:
   throughput per GPU and cost; at least as good on each, better on one) scores at most what that one scores
   (``economic_caps``): latency headroom beyond the SLA, which TOPSIS would otherwise pay for, cannot lift it above
   a deployment that serves more per GPU for less. An 8B RAG model served as TP 2 x 4 replicas answers faster than
   TP 1 x 8, but when TP 1 x 8 also serves more tokens per GPU at a lower cost, TP 1 x 8 ranks above it. TOPSIS
   itself is unchanged (``topsis`` equals pymcdm on the matrix it is given); the cap applies to its scores. Rank =
   competition rank of the score, ties broken by cost, then throughput per GPU (rows equal on all three share the
   better rank), so a capped deployment ranks below the deployment that caps it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from benchmark_platform.domain import SERVING_OPTION_COLUMNS, deployment_shape, serving_options
from benchmark_platform.ranking import criteria
from benchmark_platform.ranking.frames import require_columns
from benchmark_platform.ranking.pareto import pareto_front
from benchmark_platform.ranking.topsis import criterion_closeness, topsis
from benchmark_platform.runners import quality

DEFAULT_RANKING_TTL = timedelta(hours=24)

CONFIGURATION_KEY = (
    "version_key",
    "hardware_name",
    "framework_name",
    "tensor_parallel",
    *SERVING_OPTION_COLUMNS,
    "batch_size",
)
# What a configuration carries besides its key and metrics: who it is and what it costs.
_IDENTITY_COLUMNS = (
    "model_id",
    "model_name",
    "model_version_id",
    "hardware_config_id",
    "gpu_type",
    "gpu_count",
    "framework_id",
    "cost_per_hour_usd",
    "spot_cost_per_hour_usd",
    "reserved_cost_per_hour_usd",
    "spot_available",
)
RANKING_INPUT_COLUMNS = (
    *CONFIGURATION_KEY,
    "workload_type",
    "sequence_length",
    "benchmark_date",
    "runner",
    "source",
    *_IDENTITY_COLUMNS,
    "ttft_p90_ms",
    "tpot_p90_ms",
    "tpot_p50_ms",
    "throughput_tokens_sec",
    "total_tokens_sec",
    "rps_sustained",
    "accuracy_score",
)


class DeploymentRow(BaseModel):
    """A deployment as the ranking describes it, declared once: the frames' columns (``DEPLOYMENT_COLUMNS``; ranked
    ones add their closeness per criterion, ``configuration_columns``) and, without the labels joined from the
    catalogs (``DEPLOYMENT_LABELS``), one ``deployment_rankings`` row (``STORED_DEPLOYMENT_COLUMNS``, which the
    ORM mirrors; the store validates every row with this model before it writes)."""

    model_config = ConfigDict(extra="ignore")

    use_case: str
    rank: int | None = Field(ge=1)
    score: float | None = Field(ge=0, le=1)
    pareto: bool | None
    model_id: uuid.UUID
    model_name: str
    model_version_id: uuid.UUID
    version_key: str
    hardware_config_id: uuid.UUID
    hardware_name: str
    gpu_type: str
    gpu_count: int = Field(ge=1)
    framework_id: uuid.UUID
    framework_name: str
    tensor_parallel: int = Field(ge=1)
    # The serving options (``domain.ServingOptions``), part of the deployment's identity.
    expert_parallel: int = Field(ge=1)
    data_parallel_attention: bool
    speculative_method: str
    kv_cache_dtype: str
    prefix_caching: bool
    replicas: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    n_sequence_lengths: int = Field(ge=1)
    min_sequence_length: int = Field(ge=1)
    max_sequence_length: int = Field(ge=1)
    ttft_p90_ms: float | None
    tpot_p90_ms: float | None
    throughput_tokens_sec: float | None
    output_tokens_sec_per_gpu: float | None
    interactivity_tokens_sec: float | None
    cost_per_million_tokens: float | None
    cost_per_million_total_tokens: float | None
    cost_per_thousand_requests: float | None
    accuracy_score: float | None
    accuracy_imputed: bool
    hourly_price_usd: float | None
    price_basis: str
    simulated: bool
    source: str
    simulated_ttft_p90_ms: float | None
    simulated_tpot_p90_ms: float | None
    simulated_output_tokens_sec_per_gpu: float | None
    latest_benchmark_date: date | None
    # What only the stored row carries: why it is (not) ranked, the per-criterion breakdown, when it was ranked.
    status: str
    criteria: dict[str, Any]
    calculated_at: datetime


_STORED_ONLY = ("status", "criteria", "calculated_at")
DEPLOYMENT_LABELS = (
    "model_id",
    "model_name",
    "version_key",
    "hardware_name",
    "gpu_type",
    "gpu_count",
    "framework_name",
)
DEPLOYMENT_COLUMNS = tuple(name for name in DeploymentRow.model_fields if name not in _STORED_ONLY)
STORED_DEPLOYMENT_COLUMNS = tuple(name for name in DeploymentRow.model_fields if name not in DEPLOYMENT_LABELS)
# Why a considered deployment is or is not ranked (rule 4).
RANKED, INCOMPLETE, NO_PRICE, BREAKS_SLA = "ranked", "incomplete", "no_price", "breaks_sla"
DEPLOYMENT_STATUSES = (RANKED, INCOMPLETE, NO_PRICE, BREAKS_SLA)


def _criterion_metric_columns() -> tuple[str, ...]:
    """Metric columns of registered criteria that DEPLOYMENT_COLUMNS does not list yet."""
    return tuple(c.column for c in criteria.CRITERIA.values() if c.column not in DEPLOYMENT_COLUMNS)


def configuration_columns() -> tuple[str, ...]:
    """The columns of a ranked configuration: the deployment, then its closeness on every registered criterion."""
    closeness = (criteria.closeness_column(key) for key in criteria.keys())
    return (*DEPLOYMENT_COLUMNS, *_criterion_metric_columns(), *closeness)


def unranked_columns() -> tuple[str, ...]:
    """The columns of a deployment left out of the ranking: the deployment (no score, rank or closeness) and why."""
    return (*DEPLOYMENT_COLUMNS, *_criterion_metric_columns(), "status")


class UseCaseCriteria(BaseModel):
    """What ranking needs of a use case (a ``use_case_taxonomy`` row): its key, SLA, criteria weights, and the price
    basis and unit its costs are stated in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: uuid.UUID | None = None
    subcategory: str = Field(min_length=1, description="the use case key, equal to the results' workload_type")
    category: str | None = None
    sla_ttft_p90_ms: float | None = Field(default=None, gt=0)
    sla_tpot_p90_ms: float | None = Field(default=None, gt=0)
    weights: dict[str, float] = Field(description="weight per registered criterion (ranking.criteria); absent = 0")
    sequence_lengths: tuple[int, ...] | None = Field(
        default=None, description="the representative buckets it is ranked on; None: every bucket measured"
    )
    price_basis: criteria.PriceBasis = "on-demand"
    cost_unit: criteria.CostUnitKey = "output-tokens"

    @property
    def registry(self) -> Mapping[str, criteria.Criterion]:
        """The criteria as this use case ranks on them: cost in its unit (``criteria.for_cost_unit``)."""
        return criteria.for_cost_unit(self.cost_unit, self.price_basis)

    @property
    def cost_statement(self) -> str:
        return criteria.cost_statement(self.cost_unit, self.price_basis)

    @field_validator("weights")
    @classmethod
    def _usable_weights(cls, weights: dict[str, float]) -> dict[str, float]:
        if unknown := [name for name in weights if name not in criteria.CRITERIA]:
            raise ValueError(f"unknown criteria {unknown}; registered: {', '.join(criteria.keys())}")
        if any(not math.isfinite(weight) or weight < 0 for weight in weights.values()):
            raise ValueError(f"weights must be finite and non-negative, got {weights}")
        # An optional criterion may be dropped for lack of measurements, so another one must carry weight.
        required = [key for key, criterion in criteria.CRITERIA.items() if not criterion.optional]
        if not any(weights.get(key, 0) > 0 for key in required):
            raise ValueError(f"at least one of {', '.join(required)} needs weight")
        return weights

    @classmethod
    def from_taxonomy(
        cls,
        *,
        subcategory: str,
        characteristics: Mapping[str, Any] | None,
        default_weights: Mapping[str, float],
        id: uuid.UUID | None = None,
        category: str | None = None,
    ) -> UseCaseCriteria:
        characteristics = characteristics or {}
        sla = characteristics.get("sla") or {}
        economics = {key: characteristics[key] for key in ("price_basis", "cost_unit") if key in characteristics}
        return cls(
            id=id,
            subcategory=subcategory,
            category=category,
            sla_ttft_p90_ms=sla.get("ttft_p90_ms"),
            sla_tpot_p90_ms=sla.get("tpot_p90_ms"),
            weights=dict(default_weights),
            sequence_lengths=tuple(characteristics.get("sequence_lengths") or ()) or None,
            **economics,
        )


class ModelRankingRecord(BaseModel):
    """One ``model_rankings`` row; ``use_case_category`` holds the use case key (subcategory)."""

    model_id: uuid.UUID
    use_case_category: str
    composite_score: float = Field(ge=0, le=1)
    rank_position: int = Field(ge=1)
    score_breakdown: dict[str, Any]
    calculated_at: datetime
    expires_at: datetime


class ModelUseCaseRecord(BaseModel):
    """One ``model_use_cases`` row; ``priority`` is the model's rank in the use case."""

    model_id: uuid.UUID
    use_case_id: uuid.UUID | None
    suitability_score: float = Field(ge=0, le=1)
    recommended: bool
    priority: int = Field(ge=1)
    performance_summary: dict[str, Any]


@dataclass(frozen=True)
class UseCaseRanking:
    """Everything one use case's ranking produced: the ranked configurations (``configuration_columns()``, best
    first), the deployments left out (``unranked_columns()``: why in ``status``), the weights actually used, what
    was excluded and why, and the per-model rows to store. ``pruning`` is what the adaptive planner skipped of this
    use case's configs (``{"top_k": k, "versions": {version_key: summary}}``): the rankings step adds it from the
    queue and stores it with the ranking, so the report reads it from there."""

    use_case: UseCaseCriteria
    configurations: pd.DataFrame
    weights: dict[str, float]
    considered: int
    excluded: dict[str, int]
    notes: tuple[str, ...]
    model_rankings: tuple[ModelRankingRecord, ...]
    model_use_cases: tuple[ModelUseCaseRecord, ...]
    unranked: pd.DataFrame
    calculated_at: datetime
    pruning: dict[str, Any] = field(default_factory=dict)


def json_value(value: Any) -> Any:
    """A value as JSON can hold it: numpy scalars unwrapped, NaN/NaT as null, ids and dates as strings."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _columns_used(results: pd.DataFrame) -> list[str]:
    """Only what ranking reads: every later filter and sort then copies fewer columns."""
    return [*RANKING_INPUT_COLUMNS, *(["created_at"] if "created_at" in results.columns else [])]


def _latest_results(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration and sequence length, tagged with an integer ``_config`` id.

    The string key is factorised once here; every later step groups on the integer. Dates become datetime64:
    sorting and max() on date objects fall back to slow Python paths.
    """
    tagged = rows.assign(
        _config=rows.groupby(list(CONFIGURATION_KEY), sort=False, dropna=False).ngroup(),
        _measured=rows["runner"].eq("measured"),
        benchmark_date=pd.to_datetime(rows["benchmark_date"]),
    )
    sort_by = ["_measured", "benchmark_date", *(["created_at"] if "created_at" in rows.columns else [])]
    ordered = tagged.sort_values(sort_by, kind="stable", na_position="first")
    return ordered.drop_duplicates(["_config", "sequence_length"], keep="last")


def _quality_flag_counts(rows: pd.DataFrame) -> dict[str, Any]:
    """Results per quality flag; ``_excluding_rows`` marks the rows whose flags leave them out of the ranking (their
    numbers describe the client or a warm cache, not the configuration: see runners.quality), ``_excluded`` counts
    them. Frames without the column (older callers) have no flags."""
    if "quality_flags" not in rows.columns:
        return {"_excluding_rows": pd.Series(False, index=rows.index), "_excluded": 0}
    flags = rows["quality_flags"].map(lambda value: set(value) if isinstance(value, dict | list) else set())
    excluding = flags.map(lambda names: bool(names & quality.EXCLUDING))
    counts: dict[str, Any] = {}
    for names in flags:
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    return counts | {
        "_excluding_rows": excluding.reindex(rows.index, fill_value=False),
        "_excluded": int(excluding.sum()),
    }


MIXED_SOURCE = "mixed"
SIMULATED_FIGURES = ("simulated_ttft_p90_ms", "simulated_tpot_p90_ms", "simulated_output_tokens_sec_per_gpu")


def _simulated_figures(
    rows: pd.DataFrame, latest: pd.DataFrame, representative: tuple[int, ...] | None
) -> pd.DataFrame:
    """Per measured deployment (``_config``) with simulated results at every representative bucket, the simulator's
    TTFT p90, TPOT p90 and throughput per GPU folded as rule 2 folds the chosen rows; empty when nothing is
    measured (the common case costs nothing)."""
    measured = latest.loc[latest["_measured"], ["_config", *CONFIGURATION_KEY]].drop_duplicates("_config")
    if measured.empty:
        return pd.DataFrame(columns=list(SIMULATED_FIGURES), dtype=float)
    simulated = _latest_results(rows[rows["runner"].eq("simulated")]).drop(columns="_config")
    simulated = simulated.merge(measured, on=list(CONFIGURATION_KEY))
    folded = (
        simulated.assign(
            _inverse_per_gpu=simulated["gpu_count"]
            / simulated["throughput_tokens_sec"].where(simulated["throughput_tokens_sec"] > 0)
        )
        .groupby("_config")
        .agg(
            simulated_ttft_p90_ms=("ttft_p90_ms", "max"),
            simulated_tpot_p90_ms=("tpot_p90_ms", "max"),
            _inverse=("_inverse_per_gpu", "mean"),
            _buckets=("sequence_length", "size"),
        )
    )
    if representative is not None:
        folded = folded[folded["_buckets"] >= len(set(representative))]
    folded["simulated_output_tokens_sec_per_gpu"] = 1 / folded.pop("_inverse")
    return folded[list(SIMULATED_FIGURES)]


def _deployable_configurations(rows: pd.DataFrame, use_case: UseCaseCriteria) -> pd.DataFrame:
    """One row per deployment, its representative buckets folded by rule 2, with its price and costs (rule 3)."""
    representative = use_case.sequence_lengths
    if representative is not None:
        rows = rows[rows["sequence_length"].isin(representative)]
    latest = _latest_results(rows)
    rate_columns = [unit.rate_column for unit in criteria.COST_UNITS.values()]
    with np.errstate(divide="ignore", invalid="ignore"):
        per_gpu = latest["throughput_tokens_sec"].to_numpy(float) / latest["gpu_count"].to_numpy(float)
        inverse_per_gpu = np.where(per_gpu > 0, 1 / per_gpu, np.nan)
        inverse_rates = {
            f"_inverse_{column}": np.where(latest[column] > 0, 1 / latest[column].to_numpy(float), np.nan)
            for column in rate_columns
        }
    unit_rate = criteria.COST_UNITS[use_case.cost_unit].rate_column
    latest = latest.assign(
        _inverse_per_gpu=inverse_per_gpu,
        **inverse_rates,
        _incomplete=latest["ttft_p90_ms"].isna()
        | latest["tpot_p90_ms"].isna()
        | ~(latest["throughput_tokens_sec"] > 0)
        | ~(latest[unit_rate] > 0),
        _simulated=latest["runner"].eq("simulated"),
    )
    metrics = latest.groupby("_config", sort=False).agg(
        ttft_p90_ms=("ttft_p90_ms", "max"),
        tpot_p90_ms=("tpot_p90_ms", "max"),
        tpot_p50_ms=("tpot_p50_ms", "max"),
        inverse_per_gpu=("_inverse_per_gpu", "mean"),
        **{f"_inverse_{column}": (f"_inverse_{column}", "mean") for column in rate_columns},
        accuracy_score=("accuracy_score", "mean"),
        n_sequence_lengths=("sequence_length", "size"),
        min_sequence_length=("sequence_length", "min"),
        max_sequence_length=("sequence_length", "max"),
        simulated=("_simulated", "any"),
        incomplete=("_incomplete", "any"),
        latest_benchmark_date=("benchmark_date", "max"),
        _first_source=("source", "min"),
        _last_source=("source", "max"),
    )
    if representative is not None:
        metrics["incomplete"] |= metrics["n_sequence_lengths"] < len(set(representative))
    first, last = metrics.pop("_first_source"), metrics.pop("_last_source")
    metrics["source"] = first.where(first.eq(last), MIXED_SOURCE).where(~metrics["simulated"], "simulated")
    identity = latest.drop_duplicates("_config").set_index("_config")[[*CONFIGURATION_KEY, *_IDENTITY_COLUMNS]]
    configs = identity.join(metrics).join(_simulated_figures(rows, latest, representative)).reset_index(drop=True)
    configs["latest_benchmark_date"] = configs["latest_benchmark_date"].dt.date
    configs["replicas"] = configs["gpu_count"] // configs["tensor_parallel"]
    with np.errstate(divide="ignore", invalid="ignore"):
        configs["output_tokens_sec_per_gpu"] = 1 / configs.pop("inverse_per_gpu")
        configs["interactivity_tokens_sec"] = 1000 / configs.pop("tpot_p50_ms")
    configs["throughput_tokens_sec"] = configs["output_tokens_sec_per_gpu"] * configs["gpu_count"]
    hourly = configs[criteria.PRICE_COLUMNS[use_case.price_basis]].to_numpy(float)
    if use_case.price_basis == "spot":  # a spot price the catalog keeps for an instance not sold as spot is no price
        hourly = np.where(configs["spot_available"].eq(True).to_numpy(), hourly, np.nan)
    configs["hourly_price_usd"] = hourly
    configs["price_basis"] = use_case.price_basis
    configs["no_price"] = ~configs["incomplete"] & ~(hourly > 0)
    for unit in criteria.COST_UNITS.values():
        inverse_rate = configs.pop(f"_inverse_{unit.rate_column}").to_numpy(float)
        configs[unit.column] = hourly * inverse_rate / 3600 * unit.per
    return configs


def _chosen_criteria(use_case: UseCaseCriteria, survivors: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """Rule 5: the registered criteria with weight, minus optional ones nobody measured; weights summing to 1."""
    weights = {key: use_case.weights[key] for key in criteria.keys() if use_case.weights.get(key, 0) > 0}
    notes: list[str] = []
    for key in list(weights):
        criterion = use_case.registry[key]
        if not criterion.optional:
            continue
        measured = survivors[criterion.column].notna()
        if len(survivors) and not measured.any():
            del weights[key]
            notes.append(f"{criterion.label} dropped: no ranked configuration has a measured {criterion.label}")
        elif not measured.all():
            notes.append(
                f"{criterion.label} missing for {int((~measured).sum())} configuration(s): counted as the worst "
                "measured"
            )
    total = sum(weights.values())
    return {key: weight / total for key, weight in weights.items()}, notes


def tokens_per_dollar(cost_per_million_tokens: np.ndarray) -> np.ndarray:
    """Rule 6: million tokens per dollar, the reciprocal of the cost (costs are positive)."""
    return 1.0 / np.asarray(cost_per_million_tokens, dtype=float)


def _criteria_matrix(
    survivors: pd.DataFrame, keys: list[str], registry: Mapping[str, criteria.Criterion]
) -> tuple[np.ndarray, np.ndarray]:
    """The matrix TOPSIS ranks and which columns are benefits: one column per criterion, reciprocal ones (cost) as
    their reciprocal, a benefit (rule 6); an optional criterion's missing values as its worst measured one."""
    chosen = [registry[key] for key in keys]
    matrix = survivors[[criterion.column for criterion in chosen]].to_numpy(dtype=float, copy=True)
    benefit = np.array([criterion.benefit for criterion in chosen], dtype=bool)
    for column, criterion in enumerate(chosen):
        if criterion.reciprocal:
            matrix[:, column] = tokens_per_dollar(matrix[:, column])
            benefit[column] = True
        missing = np.isnan(matrix[:, column])
        if criterion.optional and missing.any() and not missing.all():
            worst = np.nanmax(matrix[:, column]) if not benefit[column] else np.nanmin(matrix[:, column])
            matrix[missing, column] = worst
    return matrix, benefit


def _normalisation_reference(matrix: np.ndarray, front: np.ndarray) -> np.ndarray:
    """Rule 7: what TOPSIS normalises over: the Pareto front, unless it is one point (all the same row), which spans
    no range to normalise over: then every survivor (the dominant point scores 1 either way)."""
    reference = matrix[front]
    return reference if len(np.unique(reference, axis=0)) > 1 else matrix


def configuration_breakdown(
    row: Mapping[str, Any], weights: Mapping[str, float], registry: Mapping[str, criteria.Criterion]
) -> dict[str, Any]:
    """Per criterion: the value (in its unit), its weight and its closeness (0 = worst of the use case, 1 = best)."""
    return {
        key: {
            "value": json_value(row[registry[key].column]),
            "unit": registry[key].unit,
            "weight": weight,
            "closeness": json_value(row[criteria.closeness_column(key)]),
            "better": registry[key].better,
        }
        for key, weight in weights.items()
    }


def economic_caps(scores: np.ndarray, economics: np.ndarray, groups: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """Rule 8: each score capped at the lowest score of a row of its group (model version) that is at least as good
    on every column of ``economics`` (benefit-oriented: higher is better) and better on one."""
    capped = np.asarray(scores, dtype=float).copy()
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        values, group_scores = economics[members], capped[members]
        for start in range(0, len(members), chunk):
            block = values[start : start + chunk]
            at_least = (values[None, :, :] >= block[:, None, :]).all(axis=2)
            better = (values[None, :, :] > block[:, None, :]).any(axis=2)
            cap = np.where(at_least & better, group_scores[None, :], np.inf).min(axis=1)
            capped[members[start : start + chunk]] = np.minimum(group_scores[start : start + chunk], cap)
    return capped


def shape_of(row: Any) -> str:
    """A deployment's shape as the report and the CLI show it: "TP 8, EP 8, DP-attn, MTP" (defaults left out)."""
    return deployment_shape(int(row["tensor_parallel"]), serving_options(row))


def with_shapes(deployments: pd.DataFrame) -> pd.DataFrame:
    """``deployments`` with a ``shape`` column (``shape_of`` of each row)."""
    return deployments.assign(shape=[shape_of(row) for _, row in deployments.iterrows()])


def configuration_summary(row: Mapping[str, Any]) -> dict[str, Any]:
    """What to deploy: the configuration's identity, price basis and whether its numbers are simulated."""
    return {
        "version_key": row["version_key"],
        "hardware_name": row["hardware_name"],
        "gpu_type": row["gpu_type"],
        "gpu_count": json_value(row["gpu_count"]),
        "framework_name": row["framework_name"],
        "tensor_parallel": json_value(row["tensor_parallel"]),
        **{column: json_value(row[column]) for column in SERVING_OPTION_COLUMNS},
        "shape": shape_of(row),
        "replicas": json_value(row["replicas"]),
        "batch_size": json_value(row["batch_size"]),
        "sequence_lengths": [json_value(row["min_sequence_length"]), json_value(row["max_sequence_length"])],
        "price_basis": row["price_basis"],
        "hourly_price_usd": json_value(row["hourly_price_usd"]),
        "simulated": bool(row["simulated"]),
        "source": row["source"],
    }


def _model_records(
    use_case: UseCaseCriteria,
    configurations: pd.DataFrame,
    weights: dict[str, float],
    excluded: dict[str, int],
    notes: tuple[str, ...],
    calculated_at: datetime,
    ttl: timedelta,
) -> tuple[tuple[ModelRankingRecord, ...], tuple[ModelUseCaseRecord, ...]]:
    if configurations.empty:
        return (), ()
    registry = use_case.registry
    best = configurations.drop_duplicates("model_id", keep="first")
    model_ranks = best["score"].rank(method="min", ascending=False).astype(int)
    per_model = configurations.groupby("model_id", sort=False).agg(
        configurations=("score", "size"), on_pareto_front=("pareto", "sum"), simulated=("simulated", "sum")
    )
    rankings, use_cases = [], []
    for (_, row), model_rank in zip(best.iterrows(), model_ranks, strict=True):
        configuration = configuration_summary(row)
        score = float(row["score"])
        rankings.append(
            ModelRankingRecord(
                model_id=row["model_id"],
                use_case_category=use_case.subcategory,
                composite_score=score,
                rank_position=model_rank,
                score_breakdown={
                    "method": "topsis",
                    "criteria": configuration_breakdown(row, weights, registry),
                    "price_basis": use_case.price_basis,
                    "cost_unit": use_case.cost_unit,
                    "best_configuration": configuration,
                    "configuration_rank": int(row["rank"]),
                    "configurations_ranked": len(configurations),
                    "pareto": bool(row["pareto"]),
                    "accuracy_imputed": bool(row["accuracy_imputed"]),
                    "excluded": excluded,
                    "notes": list(notes),
                },
                calculated_at=calculated_at,
                expires_at=calculated_at + ttl,
            )
        )
        model_stats = per_model.loc[row["model_id"]]
        use_cases.append(
            ModelUseCaseRecord(
                model_id=row["model_id"],
                use_case_id=use_case.id,
                suitability_score=score,
                recommended=model_rank == 1,
                priority=model_rank,
                performance_summary={
                    "best_configuration": configuration,
                    **{c.column: json_value(row[c.column]) for c in registry.values()},
                    "price_basis": use_case.price_basis,
                    "cost_unit": use_case.cost_unit,
                    "configurations_ranked": int(model_stats["configurations"]),
                    "configurations_on_pareto_front": int(model_stats["on_pareto_front"]),
                    "configurations_simulated": int(model_stats["simulated"]),
                },
            )
        )
    return tuple(rankings), tuple(use_cases)


def _unranked(configs: pd.DataFrame, breaks_sla: pd.Series, use_case: str) -> pd.DataFrame:
    """The considered deployments rule 4 leaves out, each with its reason (incomplete, then unpriced, then breaking
    the SLA)."""
    status = pd.Series(RANKED, index=configs.index, dtype=object)
    status[breaks_sla.reindex(configs.index, fill_value=False).astype(bool)] = BREAKS_SLA
    status[configs["no_price"].astype(bool)] = NO_PRICE
    status[configs["incomplete"].astype(bool)] = INCOMPLETE
    left_out = configs[status != RANKED].assign(
        status=status[status != RANKED], use_case=use_case, rank=np.nan, score=np.nan, pareto=np.nan
    )
    left_out["accuracy_imputed"] = False
    return left_out[list(unranked_columns())].reset_index(drop=True)


def _competition_rank(ordered: pd.DataFrame) -> np.ndarray:
    """1-based competition rank of rows already sorted best first: rows equal on every column share the better rank."""
    if ordered.empty:
        return np.empty(0, dtype=int)
    values = ordered.to_numpy(dtype=float)
    starts = np.r_[True, (values[1:] != values[:-1]).any(axis=1)]
    positions = np.arange(1, len(values) + 1)
    return np.maximum.accumulate(np.where(starts, positions, 0))


def rank_use_case(
    results: pd.DataFrame,
    use_case: UseCaseCriteria,
    *,
    calculated_at: datetime | None = None,
    ttl: timedelta = DEFAULT_RANKING_TTL,
) -> UseCaseRanking:
    """Rank the deployable configurations of ``use_case`` found in ``results`` (a results frame)."""
    require_columns(results, RANKING_INPUT_COLUMNS, "ranking")
    if ttl <= timedelta(0):
        raise ValueError(f"ranking TTL must be positive, got {ttl}")
    calculated_at = calculated_at or datetime.now(UTC)
    in_use_case = results["workload_type"] == use_case.subcategory
    flag_counts = _quality_flag_counts(results.loc[in_use_case])
    excluding = flag_counts.pop("_excluding_rows").reindex(results.index, fill_value=False).astype(bool)
    rows = results.loc[in_use_case & ~excluding, _columns_used(results)]
    configs = _deployable_configurations(rows, use_case)
    complete = configs[~configs["incomplete"] & ~configs["no_price"]]
    breaks_ttft = (
        complete["ttft_p90_ms"] > use_case.sla_ttft_p90_ms
        if use_case.sla_ttft_p90_ms is not None
        else pd.Series(False, index=complete.index)
    )
    breaks_tpot = (
        complete["tpot_p90_ms"] > use_case.sla_tpot_p90_ms
        if use_case.sla_tpot_p90_ms is not None
        else pd.Series(False, index=complete.index)
    )
    survivors = complete[~(breaks_ttft | breaks_tpot)].reset_index(drop=True)
    unranked = _unranked(configs, breaks_ttft | breaks_tpot, use_case.subcategory)
    excluded = {
        "incomplete": int(configs["incomplete"].sum()),
        "no_price": int(configs["no_price"].sum()),
        "sla_ttft_p90": int(breaks_ttft.sum()),
        "sla_tpot_p90": int(breaks_tpot.sum()),
        "sla_total": int((breaks_ttft | breaks_tpot).sum()),
    }
    if flagged := int(flag_counts.pop("_excluded")):
        excluded["quality_flagged_results"] = flagged
    weights, notes = _chosen_criteria(use_case, survivors)
    notes += [
        f"{count} results flagged {name}: {'left out' if name in quality.EXCLUDING else 'ranked, but marked'}"
        for name, count in sorted(flag_counts.items())
    ]
    if excluded["no_price"]:
        notes.append(
            f"{excluded['no_price']} deployment(s) left out: their hardware has no {use_case.price_basis} price"
        )
    keys = list(weights)
    registry = use_case.registry
    matrix, benefit = _criteria_matrix(survivors, keys, registry)
    front = pareto_front(matrix, benefit)
    reference = _normalisation_reference(matrix, front)
    scores = topsis(matrix, [weights[key] for key in keys], benefit, reference=reference)
    economic = [index for index, key in enumerate(keys) if registry[key].economic]
    if economic and len(survivors):
        oriented = np.where(benefit[economic], matrix[:, economic], -matrix[:, economic])
        capped = economic_caps(scores, oriented, survivors["version_key"].to_numpy())
        if lowered := int((capped < scores).sum()):
            notes.append(
                f"{lowered} deployment(s) scored down to a deployment of the same model version that serves at least "
                "as much per GPU for no more cost (latency beyond the SLA breaks ties only)"
            )
        scores = capped
    survivors["score"] = scores
    survivors["pareto"] = front
    closeness = criterion_closeness(matrix, benefit, reference=reference)
    for key in criteria.keys():
        survivors[criteria.closeness_column(key)] = closeness[:, keys.index(key)] if key in keys else np.nan
    survivors["accuracy_imputed"] = survivors["accuracy_score"].isna() & ("accuracy" in keys)
    survivors["use_case"] = use_case.subcategory
    order = ["score", criteria.COST_UNITS[use_case.cost_unit].column, "output_tokens_sec_per_gpu"]
    survivors = survivors.sort_values(
        [*order, *CONFIGURATION_KEY],
        ascending=[False, True, False, *(True for _ in CONFIGURATION_KEY)],
        kind="stable",
    ).reset_index(drop=True)
    survivors["rank"] = _competition_rank(survivors[order])
    configurations = survivors[list(configuration_columns())]
    notes_tuple = tuple(notes)
    model_rankings, model_use_cases = _model_records(
        use_case, configurations, weights, excluded, notes_tuple, calculated_at, ttl
    )
    return UseCaseRanking(
        use_case=use_case,
        configurations=configurations,
        weights=weights,
        considered=len(configs),
        excluded=excluded,
        notes=notes_tuple,
        model_rankings=model_rankings,
        model_use_cases=model_use_cases,
        unranked=unranked,
        calculated_at=calculated_at,
    )


def rank_use_cases(
    results: pd.DataFrame,
    use_cases: Iterable[UseCaseCriteria],
    *,
    calculated_at: datetime | None = None,
    ttl: timedelta = DEFAULT_RANKING_TTL,
) -> dict[str, UseCaseRanking]:
    """Rank every use case, all stamped with the same ``calculated_at``; keyed by subcategory."""
    require_columns(results, RANKING_INPUT_COLUMNS, "ranking")
    calculated_at = calculated_at or datetime.now(UTC)
    by_workload = dict(iter(results[_columns_used(results)].groupby("workload_type", sort=False)))
    return {
        use_case.subcategory: rank_use_case(
            by_workload.get(use_case.subcategory, results.iloc[0:0]), use_case, calculated_at=calculated_at, ttl=ttl
        )
        for use_case in use_cases
    }
