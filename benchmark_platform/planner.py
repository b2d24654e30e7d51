"""Adaptive benchmarking: which not-yet-run configs of a model version to run first, which to skip, and why. Pure:
no database, no Dagster; the queue layer feeds it and applies what it decides.

Vocabulary. A *config* is one queue row. A *deployment* is a config without its concurrency (hardware, framework,
tensor parallel, workload, sequence length). A *configuration* is a config without its sequence length (hardware,
framework, tensor parallel, workload, concurrency): the unit the ranking scores, folding its sequence lengths as
``ranking.rankings`` does (TTFT and TPOT p90: the maximum; throughput: the harmonic mean, equal output per length).

Rules (each decision names one reason, checked in this order):

- ``exceeds_sla_at_other_sequence_length``: a measured config of the same configuration already breaks the SLA of
  every use case it serves; the ranking takes the worst latency over lengths, so the configuration is out whatever
  the rest say.
- ``exceeds_sla_at_lower_concurrency``: a deployment of this configuration measured at a lower concurrency breaks
  the SLA (TTFT or TPOT p90) of every use case it serves. Latency does not fall as concurrency rises, so the
  configuration breaks it too.
- ``throughput_saturated``: for every sequence length of the configuration, doubling the concurrency from c to 2c
  (2c below this one) raised measured throughput by less than ``saturation_gain`` (5 %): past the knee more
  concurrency only queues requests (latency up, throughput and cost flat). 5 % is about the run-to-run spread of
  a serving benchmark, so a smaller gain is not a measurable gain.
- ``cannot_meet_sla``: even the configuration's optimistic bound (below) breaks the SLA of every use case it serves.
- ``dominated``: in every use case it serves, the optimistic bound is dominated (no better on any criterion,
  worse on one) by at least ``top_k`` configurations already measured that meet the SLA. TOPSIS is monotone in
  dominance, so such a configuration ranks below all of them: it can enter neither the top k nor the Pareto front.
  Criteria are the use case's positively weighted TTFT p90, TPOT p90, throughput (per node AND per GPU, so that
  the rule holds whichever the ranking uses) and cost per million tokens. Accuracy is left out: it belongs to the
  model version's weights, not to the deployment, and configs of one version differ in it only by noise.
- ``dominated_by_planned``: the same test, counting besides the measured configurations those that will be measured
  (not skipped, not fully measured yet) at their *pessimistic* bound (the prediction widened to the unfavourable
  side by the same margin; measured values where measured), when that bound meets the SLA. Both sides carry the
  margin, so the gap must be about twice the learned error. Without it, every hardware pool runs its own most
  promising configs in parallel and spends GPU-hours on ones that results from other pools, arriving later, prove
  dominated. Safe by re-evaluation: if a planned dominator is later skipped for another reason or measured worse,
  the config is back to run at the next plan; if it is skipped as dominated itself, its own dominators (at least
  ``top_k``, transitively) dominate this config too. ``Settings.planned_dominators`` turns it off.

The optimistic bound widens the simulator's prediction by what was observed on the same hardware x framework: per
metric, the log ratio measured / predicted has mean ``mu`` over the pair's ``n`` measurements and spread ``sd``
(pooled over every pair once there are enough measurements, else a wide prior); the bound is
``prediction x exp(mu +- z x sd x sqrt(1 + 1/n))``, the favourable side (lower latency, higher throughput). Before a
pair has any measurement, ``mu = 0`` and ``sd`` is the prior (0.4, about x1.5 per sd).

A configuration is skipped as a whole or not at all, and only while none of its configs has started (running or
completed), unless one of its measured configs breaks the SLA (then the ranking excludes it anyway): the ranking
never sees a configuration made better by a missing sequence length.

Order: one configuration per hardware x framework pair with nothing started goes first (exploration, so every
pair's error is learned early), then configurations by their best rank, over the use cases they serve, in a TOPSIS
over every configuration's central estimate (measured values where measured, else bias-corrected predictions); a
configuration whose central estimate breaks the SLA comes after those that meet it. Within a configuration the
longest prompt runs first (it decides the worst case). ``priority`` encodes that order (tier, then prompt length),
with ranks rather than global positions, so that a new result re-prioritises few rows.

Decisions depend on the configs, predictions and measurements only, never on which configs are currently
``skipped`` versus ``pending``: the same inputs give the same decisions, and applying them changes nothing on the
next run. Exempt configs (re-queued by hand, or a version benchmarked exhaustively) always run.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from benchmark_platform.domain import PLAIN_DEPLOYMENT, ServingOptions
from benchmark_platform.ranking.topsis import topsis

EXCEEDS_SLA_AT_OTHER_SEQUENCE_LENGTH = "exceeds_sla_at_other_sequence_length"
EXCEEDS_SLA_AT_LOWER_CONCURRENCY = "exceeds_sla_at_lower_concurrency"
THROUGHPUT_SATURATED = "throughput_saturated"
CANNOT_MEET_SLA = "cannot_meet_sla"
DOMINATED = "dominated"
DOMINATED_BY_PLANNED = "dominated_by_planned"
SKIP_REASONS = (
    EXCEEDS_SLA_AT_OTHER_SEQUENCE_LENGTH,
    EXCEEDS_SLA_AT_LOWER_CONCURRENCY,
    THROUGHPUT_SATURATED,
    CANNOT_MEET_SLA,
    DOMINATED,
    DOMINATED_BY_PLANNED,
)
RUN = "run"
SKIP = "skip"
STARTED_STATUSES = frozenset({"running", "completed"})
NOT_STARTED_STATUSES = frozenset({"pending", "skipped"})
PRIORITY_BASE = 100
# A configuration's priority is PRIORITY_BASE + its tier x SLOTS_PER_RANK + the position of the prompt length (longest
# first): ranks, not global positions, so that a result arriving re-prioritises few rows.
SLOTS_PER_RANK = 16
MAX_PROMISE_RANK = 10_000_000
METRICS = ("ttft_p90_ms", "tpot_p90_ms", "throughput_tokens_sec")


@dataclass(frozen=True, slots=True)
class Metrics:
    """What the planner compares: p90 latencies and output throughput of the whole node."""

    ttft_p90_ms: float
    tpot_p90_ms: float
    throughput_tokens_sec: float


@dataclass(frozen=True, slots=True)
class UseCase:
    """A use case's SLA (None: no limit) and ranking weights (keys of ``ranking.criteria.CRITERIA``)."""

    name: str
    sla_ttft_p90_ms: float | None = None
    sla_tpot_p90_ms: float | None = None
    weights: Mapping[str, float] = field(default_factory=dict)

    def broken_by(self, metrics: Metrics) -> bool:
        return (self.sla_ttft_p90_ms is not None and metrics.ttft_p90_ms > self.sla_ttft_p90_ms) or (
            self.sla_tpot_p90_ms is not None and metrics.tpot_p90_ms > self.sla_tpot_p90_ms
        )


@dataclass(frozen=True, slots=True)
class Config:
    """One queue row as the planner sees it. ``tensor_parallel`` 0 means the node's GPU count (one replica)."""

    key: Hashable
    hardware: str
    framework: str
    workload: str
    sequence_length: int
    concurrency: int
    gpu_count: int
    hourly_price_usd: float | None  # on its use case's price basis; None: no price there (the ranking leaves it out)
    tensor_parallel: int = 0
    options: ServingOptions = PLAIN_DEPLOYMENT
    status: str = "pending"
    exempt: bool = False
    serves: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.tensor_parallel:
            object.__setattr__(self, "tensor_parallel", self.gpu_count)
        if not self.serves:
            object.__setattr__(self, "serves", (self.workload,))

    @property
    def pair(self) -> tuple[str, str]:
        return (self.hardware, self.framework)

    @property
    def deployment(self) -> tuple:
        return (self.hardware, self.framework, self.tensor_parallel, self.options, self.workload, self.sequence_length)

    @property
    def configuration(self) -> tuple:
        return (self.hardware, self.framework, self.tensor_parallel, self.options, self.workload, self.concurrency)


@dataclass(frozen=True)
class Settings:
    top_k: int = 5
    z: float = 2.0
    prior_log_sd: float = 0.4
    min_log_sd: float = 0.03
    min_pooled_measurements: int = 8
    saturation_gain: float = 0.05
    planned_dominators: bool = True


DEFAULT_SETTINGS = Settings()


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # RUN or SKIP
    priority: int | None = None
    reason: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class MetricResidual:
    """log(measured / predicted) of one metric on one pair: mean and spread; ``ratio`` = exp(mean)."""

    mean: float
    sd: float | None  # None with fewer than two measurements

    @property
    def ratio(self) -> float:
        return math.exp(self.mean)


@dataclass(frozen=True)
class PairResidual:
    hardware: str
    framework: str
    n: int
    metrics: dict[str, MetricResidual]


@dataclass(frozen=True)
class Residuals:
    """Per hardware x framework residuals and the spread pooled over pairs (None until enough measurements)."""

    pairs: dict[tuple[str, str], PairResidual]
    pooled_sd: dict[str, float | None]


@dataclass(frozen=True)
class Plan:
    decisions: dict[Hashable, Decision]
    residuals: Residuals

    def skipped_by_reason(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for decision in self.decisions.values():
            if decision.action == SKIP:
                counts[decision.reason] += 1
        return dict(sorted(counts.items()))


def residual_summary(
    configs: Sequence[Config],
    predictions: Mapping[Hashable, Metrics],
    measured: Mapping[Hashable, Metrics],
    min_pooled_measurements: int = Settings.min_pooled_measurements,
) -> Residuals:
    """Bias (geometric mean of measured / predicted) and spread (log-sd) per hardware x framework and metric."""
    logs: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for config in configs:
        predicted, actual = predictions.get(config.key), measured.get(config.key)
        if predicted is None or actual is None:
            continue
        for metric in METRICS:
            p, a = getattr(predicted, metric), getattr(actual, metric)
            if p > 0 and a > 0:
                logs[config.pair][metric].append(math.log(a / p))
    pairs: dict[tuple[str, str], PairResidual] = {}
    pooled: dict[str, float | None] = {}
    for metric in METRICS:
        squares, dof = 0.0, 0
        for values in (by_metric[metric] for by_metric in logs.values()):
            if len(values) >= 2:
                mean = sum(values) / len(values)
                squares += sum((v - mean) ** 2 for v in values)
                dof += len(values) - 1
        pooled[metric] = math.sqrt(squares / dof) if dof >= min_pooled_measurements else None
    for pair in sorted(logs):
        by_metric = logs[pair]
        metrics = {}
        for metric in METRICS:
            values = by_metric[metric]
            if not values:
                continue
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) >= 2 else None
            metrics[metric] = MetricResidual(mean, sd)
        pairs[pair] = PairResidual(pair[0], pair[1], max((len(v) for v in by_metric.values()), default=0), metrics)
    return Residuals(pairs=pairs, pooled_sd=pooled)


def _widening_factors(
    pair_key: tuple[str, str], residuals: Residuals, settings: Settings, z: float
) -> tuple[float, float, float]:
    """Per metric, the factor taking a prediction of this pair to its bias-corrected value moved ``z`` spreads to
    the favourable side (lower latency, higher throughput; z=0: the central estimate)."""
    pair = residuals.pairs.get(pair_key)
    factors = []
    for metric in METRICS:
        found = pair.metrics.get(metric) if pair else None
        pooled = residuals.pooled_sd[metric]
        if found is None:
            mean, sd, n = 0.0, settings.prior_log_sd, 0
        else:
            mean, n = found.mean, pair.n
            sd = max(settings.min_log_sd, pooled) if pooled is not None else settings.prior_log_sd
        spread = z * sd * math.sqrt(1 + 1 / n) if n else z * sd
        favourable = spread if metric == "throughput_tokens_sec" else -spread
        factors.append(math.exp(mean + favourable))
    return tuple(factors)


def _widen(predicted: Metrics, factors: tuple[float, float, float]) -> Metrics:
    return Metrics(
        predicted.ttft_p90_ms * factors[0],
        predicted.tpot_p90_ms * factors[1],
        predicted.throughput_tokens_sec * factors[2],
    )


def _fold(values: Sequence[Metrics]) -> Metrics:
    """A configuration's sequence lengths folded as the ranking folds them: latencies worst case, throughput the rate
    at which equal output from each length is served (harmonic mean)."""
    return Metrics(
        ttft_p90_ms=max(v.ttft_p90_ms for v in values),
        tpot_p90_ms=max(v.tpot_p90_ms for v in values),
        throughput_tokens_sec=len(values) / sum(1 / max(v.throughput_tokens_sec, 1e-12) for v in values),
    )


# Each ranking criterion (``ranking.criteria.CRITERIA``) as the dominance criteria it becomes. ``accuracy`` belongs to
# the model version, the same for every config the planner compares, so it can never break a dominance. A criterion
# added to the registry must be added here too (a test checks), or dominance could skip a config that wins on it.
DOMINANCE_CRITERIA: Mapping[str, tuple[str, ...]] = {
    "ttft_p90": ("ttft",),
    "tpot_p90": ("tpot",),
    "throughput": ("throughput_node", "throughput_gpu"),
    "cost_per_million_tokens": ("cost",),
}
VERSION_LEVEL_CRITERIA = frozenset({"accuracy"})


def _criteria(use_case: UseCase) -> list[str]:
    """The dominance criteria of a use case (lower is better for each, after orientation)."""
    keys = [
        criterion
        for weight_key, criteria in DOMINANCE_CRITERIA.items()
        if use_case.weights.get(weight_key, 0) > 0
        for criterion in criteria
    ]
    return keys or [criterion for criteria in DOMINANCE_CRITERIA.values() for criterion in criteria]


def _criterion_weight(use_case: UseCase, criterion: str) -> float:
    """The use case's weight of a dominance criterion, shared by the views of one ranking criterion."""
    for weight_key, criteria in DOMINANCE_CRITERIA.items():
        if criterion in criteria:
            return use_case.weights.get(weight_key, 0) / len(criteria) or 1.0
    raise KeyError(criterion)


def _oriented(metrics: Metrics, sample: Config, keys: Sequence[str]) -> list[float]:
    """Criterion values, each turned into "lower is better"."""
    thr = metrics.throughput_tokens_sec
    values = {
        "ttft": metrics.ttft_p90_ms,
        "tpot": metrics.tpot_p90_ms,
        "throughput_node": -thr,
        "throughput_gpu": -thr / sample.gpu_count,
        "cost": sample.hourly_price_usd / (thr * 3600) * 1e6 if thr > 0 and sample.hourly_price_usd else math.inf,
    }
    return [values[key] for key in keys]


def _breaks_all(metrics: Metrics, serves: Sequence[str], use_cases: Mapping[str, UseCase]) -> bool:
    return all(name in use_cases and use_cases[name].broken_by(metrics) for name in serves)


def plan(
    configs: Sequence[Config],
    predictions: Mapping[Hashable, Metrics],
    measured: Mapping[Hashable, Metrics],
    use_cases: Mapping[str, UseCase],
    settings: Settings = DEFAULT_SETTINGS,
) -> Plan:
    """A decision for every config not started yet (pending or skipped): run with a priority, or skip with a reason.

    ``predictions``: the simulator's, per config key (missing: it could not predict; never skipped on a bound).
    ``measured``: committed results per completed config key.
    """
    configs = sorted(configs, key=lambda c: (c.configuration, c.sequence_length, str(c.key)))
    residuals = residual_summary(configs, predictions, measured, settings.min_pooled_measurements)
    by_configuration: dict[tuple, list[Config]] = defaultdict(list)
    for config in configs:
        by_configuration[config.configuration].append(config)
    pairs = {config.pair for config in configs}
    optimistic_factors = {pair: _widening_factors(pair, residuals, settings, settings.z) for pair in pairs}
    central_factors = {pair: _widening_factors(pair, residuals, settings, 0.0) for pair in pairs}

    def measured_of(config: Config) -> Metrics | None:
        return measured.get(config.key) if config.status == "completed" else None

    # SLA breaks and throughput per deployment and concurrency, from measurements only.
    sla_break_at: dict[tuple, int] = {}
    throughput: dict[tuple, dict[int, float]] = defaultdict(dict)
    breaking_configurations: set[tuple] = set()
    for config in configs:
        actual = measured_of(config)
        if actual is None:
            continue
        throughput[config.deployment][config.concurrency] = actual.throughput_tokens_sec
        if _breaks_all(actual, config.serves, use_cases):
            breaking_configurations.add(config.configuration)
            previous = sla_break_at.get(config.deployment)
            sla_break_at[config.deployment] = min(previous or config.concurrency, config.concurrency)
    saturated_below: dict[tuple, int] = {}
    for deployment, by_concurrency in throughput.items():
        for concurrency in sorted(by_concurrency):
            doubled = by_concurrency.get(2 * concurrency)
            if doubled is not None and doubled < by_concurrency[concurrency] * (1 + settings.saturation_gain):
                saturated_below[deployment] = 2 * concurrency
                break

    # Measured configurations (every config completed), folded, per use case: the ones that meet its SLA.
    measured_folds: dict[tuple, Metrics] = {}
    for key, members in by_configuration.items():
        values = [measured_of(c) for c in members]
        if all(v is not None for v in values):
            measured_folds[key] = _fold(values)
    incumbents: dict[str, np.ndarray] = {}
    for name, use_case in use_cases.items():
        keys = _criteria(use_case)
        rows = [
            _oriented(fold, by_configuration[key][0], keys)
            for key, fold in measured_folds.items()
            if name in by_configuration[key][0].serves and not use_case.broken_by(fold)
        ]
        incumbents[name] = np.array(rows, dtype=float).reshape(len(rows), len(keys))

    def dominated(bound: Metrics, sample: Config) -> bool:
        for name in sample.serves:
            use_case = use_cases.get(name)
            if use_case is None:
                return False
            rows = incumbents[name]
            if len(rows) < settings.top_k:
                return False
            point = np.array(_oriented(bound, sample, _criteria(use_case)))
            dominating = np.all(rows <= point, axis=1) & np.any(rows < point, axis=1)
            if int(dominating.sum()) < settings.top_k:
                return False
        return True

    def skip_reason(key: tuple, members: list[Config]) -> tuple[str, str] | None:
        concurrency = key[-1]
        if key in breaking_configurations:
            return EXCEEDS_SLA_AT_OTHER_SEQUENCE_LENGTH, "another prompt length of this configuration breaks the SLA"
        if any(c.status in STARTED_STATUSES for c in members):
            return None  # partly run: finish it, so the ranking sees every length
        for config in members:
            limit = sla_break_at.get(config.deployment)
            if limit is not None and limit < concurrency:
                return EXCEEDS_SLA_AT_LOWER_CONCURRENCY, f"sequence length {config.sequence_length} at {limit}"
        limits = [saturated_below.get(c.deployment) for c in members]
        if all(limit is not None and limit < concurrency for limit in limits):
            return (
                THROUGHPUT_SATURATED,
                f"throughput gained < {settings.saturation_gain:.0%} by concurrency {max(limits)}",
            )
        if any(c.key not in predictions for c in members):
            return None
        bound = _fold([_widen(predictions[c.key], optimistic_factors[c.pair]) for c in members])
        if _breaks_all(bound, members[0].serves, use_cases):
            return CANNOT_MEET_SLA, "optimistic bound breaks the SLA"
        if dominated(bound, members[0]):
            return DOMINATED, f"optimistic bound dominated by >= {settings.top_k} measured configurations"
        return None

    verdicts = {
        key: skip_reason(key, members)
        for key, members in by_configuration.items()
        if any(c.status in NOT_STARTED_STATUSES for c in members)
    }
    if settings.planned_dominators:
        pessimistic_factors = {pair: _widening_factors(pair, residuals, settings, -settings.z) for pair in pairs}
        dominators = _measured_and_planned_rows(
            by_configuration,
            verdicts,
            measured_folds,
            incumbents,
            predictions,
            measured_of,
            pessimistic_factors,
            use_cases,
        )
        candidates = {
            key: _fold([_widen(predictions[c.key], optimistic_factors[c.pair]) for c in by_configuration[key]])
            for key, verdict in verdicts.items()
            if verdict is None
            and not any(c.status in STARTED_STATUSES or c.key not in predictions for c in by_configuration[key])
        }
        for key in _dominated_by_rows(candidates, by_configuration, dominators, use_cases, settings.top_k):
            verdicts[key] = (
                DOMINATED_BY_PLANNED,
                f"optimistic bound dominated by >= {settings.top_k} measured configurations or pessimistic bounds of "
                "planned ones",
            )

    decisions: dict[Hashable, Decision] = {}
    runnable: list[tuple] = []
    for key, verdict in verdicts.items():
        members = by_configuration[key]
        waiting = [c for c in members if c.status in NOT_STARTED_STATUSES]
        for config in waiting:
            if verdict is not None and not config.exempt:
                decisions[config.key] = Decision(SKIP, reason=verdict[0], detail=verdict[1])
        if verdict is None or any(c.exempt for c in waiting):
            runnable.append(key)

    promise = _promise_ranks(by_configuration, predictions, measured_of, central_factors, use_cases)
    started_pairs = {c.pair for c in configs if c.status in STARTED_STATUSES}
    explored: dict[tuple[str, str], tuple] = {}
    for key in sorted(runnable, key=lambda k: (promise[k], k)):
        pair = key[:2]
        if pair not in started_pairs and pair not in explored:
            explored[pair] = key
    exploring = set(explored.values())
    for key in runnable:
        tier = 0 if key in exploring else 1 + min(promise[key], MAX_PROMISE_RANK)
        longest_first = sorted(by_configuration[key], key=lambda c: (-c.sequence_length, str(c.key)))
        for offset, config in enumerate(longest_first):
            if config.status in NOT_STARTED_STATUSES and config.key not in decisions:
                decisions[config.key] = Decision(RUN, priority=PRIORITY_BASE + tier * SLOTS_PER_RANK + offset)
    return Plan(decisions=decisions, residuals=residuals)


def _measured_and_planned_rows(
    by_configuration: Mapping[tuple, list[Config]],
    verdicts: Mapping[tuple, tuple[str, str] | None],
    measured_folds: Mapping[tuple, Metrics],
    incumbents: Mapping[str, np.ndarray],
    predictions: Mapping[Hashable, Metrics],
    measured_of,
    pessimistic_factors: Mapping[tuple[str, str], tuple[float, float, float]],
    use_cases: Mapping[str, UseCase],
) -> dict[str, np.ndarray]:
    """Per use case, oriented criterion rows: the measured incumbents, then the configurations that will be measured
    (not skipped, not yet fully measured) at their pessimistic bound (measured values where measured, else the
    prediction widened to the unfavourable side) where that bound meets the SLA."""
    bounds: dict[tuple, Metrics] = {}
    for key, verdict in verdicts.items():
        if verdict is not None or key in measured_folds:
            continue
        values = []
        for config in by_configuration[key]:
            value = measured_of(config)
            if value is None and config.key in predictions:
                value = _widen(predictions[config.key], pessimistic_factors[config.pair])
            values.append(value)
        if all(v is not None for v in values):
            bounds[key] = _fold(values)
    rows: dict[str, np.ndarray] = {}
    for name, use_case in use_cases.items():
        criteria = _criteria(use_case)
        planned = [
            _oriented(bound, by_configuration[key][0], criteria)
            for key, bound in bounds.items()
            if name in by_configuration[key][0].serves and not use_case.broken_by(bound)
        ]
        rows[name] = np.vstack([incumbents[name], np.array(planned, dtype=float).reshape(len(planned), len(criteria))])
    return rows


_COMPARISON_BUDGET = 1 << 22  # candidate x row x criterion comparisons per numpy block


def _dominated_by_rows(
    bounds: Mapping[tuple, Metrics],
    by_configuration: Mapping[tuple, list[Config]],
    rows_by_use_case: Mapping[str, np.ndarray],
    use_cases: Mapping[str, UseCase],
    top_k: int,
) -> set[tuple]:
    """The configurations whose bound, in every use case they serve, is dominated by at least ``top_k`` of that use
    case's rows. A configuration's own pessimistic row never counts against it: it is nowhere better than its
    optimistic bound, so it cannot dominate it."""
    dominated_in: dict[tuple, int] = dict.fromkeys(bounds, 0)
    for name, use_case in use_cases.items():
        rows = rows_by_use_case[name]
        keys = [key for key in bounds if name in by_configuration[key][0].serves]
        if not keys or len(rows) < top_k:
            continue
        criteria = _criteria(use_case)
        points = np.array([_oriented(bounds[key], by_configuration[key][0], criteria) for key in keys], dtype=float)
        block = max(1, _COMPARISON_BUDGET // (len(rows) * len(criteria)))
        for start in range(0, len(keys), block):
            chunk = points[start : start + block, None, :]
            beats = np.all(rows[None] <= chunk, axis=2) & np.any(rows[None] < chunk, axis=2)
            for key, count in zip(keys[start : start + block], beats.sum(axis=1), strict=True):
                dominated_in[key] += int(count >= top_k)
    return {key for key, count in dominated_in.items() if count == len(by_configuration[key][0].serves)}


def _promise_ranks(
    by_configuration: Mapping[tuple, list[Config]],
    predictions: Mapping[Hashable, Metrics],
    measured_of,
    central_factors: Mapping[tuple[str, str], tuple[float, float, float]],
    use_cases: Mapping[str, UseCase],
) -> dict[tuple, float]:
    """Per configuration: its best rank over the use cases it serves in a TOPSIS of central estimates (meeting the
    SLA first); infinity when some length has neither a measurement nor a prediction."""
    central: dict[tuple, Metrics] = {}
    for key, members in by_configuration.items():
        values = []
        for config in members:
            actual = measured_of(config)
            if actual is None and config.key in predictions:
                actual = _widen(predictions[config.key], central_factors[config.pair])
            values.append(actual)
        if all(v is not None for v in values):
            central[key] = _fold(values)
    ranks: dict[tuple, float] = {key: math.inf for key in by_configuration}
    for name, use_case in sorted(use_cases.items()):
        keys = [k for k in central if name in by_configuration[k][0].serves]
        if not keys:
            continue
        criteria = _criteria(use_case)
        matrix = np.array([_oriented(central[k], by_configuration[k][0], criteria) for k in keys], dtype=float)
        weights = np.array([_criterion_weight(use_case, c) for c in criteria])
        finite = np.isfinite(matrix).all(axis=1)
        scores = np.full(len(keys), -1.0)
        if finite.any():
            # Lower-is-better values are all costs; TOPSIS needs non-negative columns, so flip signs of throughput.
            positive = np.abs(matrix[finite])
            benefit = np.array([c.startswith("throughput") for c in criteria])
            scores[finite] = topsis(positive, weights, benefit)
        meets = np.array([not use_case.broken_by(central[k]) for k in keys])
        order = sorted(range(len(keys)), key=lambda i: (not meets[i], -scores[i], keys[i]))
        for position, index in enumerate(order):
            ranks[keys[index]] = min(ranks[keys[index]], position)
    return ranks


def estimated_run_seconds(
    predicted: Metrics,
    output_tokens: int,
    concurrency: int,
    *,
    requests: int | None = None,
    warmup_seconds: float = 30.0,
) -> float:
    """Wall time one benchmark of a config takes: its measured requests at the predicted throughput plus warm-up."""
    requests = requests or max(200, 4 * concurrency)
    return requests * output_tokens / max(predicted.throughput_tokens_sec, 1e-9) + warmup_seconds
