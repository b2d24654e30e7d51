"""Adaptive benchmarking at the edge: predict a version's configs with the simulator, run the pure planner
(``planner.py``) over what has been measured, and apply its decisions through the queue's statements.

When it runs: once after the matrix is populated (``benchmark_config_matrix``), then by every drain replica between
two claims, at most every ``min_interval_seconds`` each (``Replanner``). Planning between claims, in the workers
that produce the results, keeps the queue's order and skips current without a sensor's polling delay or a second
process; an advisory lock per version makes replicas that finish together plan once. The planner reads only
committed rows (one statement's snapshot), so a worker that dies mid-run leaves a ``running`` row the planner treats
as started, and nothing half-written.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from benchmark_platform import planner, queue
from benchmark_platform.domain import serving_options
from benchmark_platform.planner import Metrics
from benchmark_platform.ranking.store import load_use_cases
from benchmark_platform.runners import RunSpec
from benchmark_platform.runners.simulated import roofline
from benchmark_platform.runners.simulated.runner import simulate
from benchmark_platform.worker import build_run_spec

Predictor = Callable[[RunSpec], dict[str, Any]]
# A process pool pays for itself above a few hundred simulations (about 10 ms each); a planner shares the machine
# with the drains, so it takes at most this many cores.
PARALLEL_PREDICTION_MIN_CONFIGS = 300
MAX_PREDICTION_PROCESSES = 4


def simulator_prediction(spec: RunSpec) -> dict[str, Any]:
    """What the simulated runner predicts for a config (seed 0), and how long its real benchmark would take."""
    try:
        predicted = simulate(spec, 0)
    except roofline.DoesNotFitError as error:
        return {"unavailable": f"does not fit: {error}"[:200]}
    metrics = Metrics(predicted.ttft_p90_ms, predicted.tpot_p90_ms, predicted.throughput_tokens_sec)
    return {
        "ttft_p90_ms": metrics.ttft_p90_ms,
        "tpot_p90_ms": metrics.tpot_p90_ms,
        "throughput_tokens_sec": metrics.throughput_tokens_sec,
        "run_seconds": planner.estimated_run_seconds(metrics, spec.workload.typical_output_tokens, spec.batch_size),
        "simulator": "simulated",
    }


def predict_missing(engine: Engine, model_version_id: uuid.UUID, predictor: Predictor = simulator_prediction) -> int:
    """Store a prediction for every config of the version that has none yet; returns how many were predicted."""
    with engine.connect() as connection:
        rows = queue.configs_without_prediction(connection, model_version_id)
        facts: dict[tuple, RunSpec] = {}
        specs: dict[uuid.UUID, RunSpec] = {}
        for row in rows:
            facts_key = (row.hardware_config_id, row.framework_id, row.workload_type)
            if facts_key not in facts:
                facts[facts_key] = build_run_spec(connection, row)
            specs[row.id] = facts[facts_key].model_copy(
                update={
                    "config_id": row.id,
                    "batch_size": row.batch_size,
                    "sequence_length": row.sequence_length,
                    "tensor_parallel": row.tensor_parallel,
                    "options": serving_options(row),
                }
            )
    predictions = _predict_all(specs, predictor)
    with engine.begin() as connection:
        return queue.store_predictions(connection, predictions)


def _predict_all(specs: dict[uuid.UUID, RunSpec], predictor: Predictor) -> dict[uuid.UUID, dict[str, Any]]:
    """Every spec's prediction. A version's whole matrix is predicted before its drains start, so with many configs
    the simulator's default predictor runs on every core (forked workers: the work is pure CPU and the specs are
    built); few configs, another predictor or a platform without fork run here."""
    workers = min(os.cpu_count() or 1, MAX_PREDICTION_PROCESSES)
    parallel = (
        predictor is simulator_prediction
        and len(specs) >= PARALLEL_PREDICTION_MIN_CONFIGS
        and workers > 1
        and "fork" in multiprocessing.get_all_start_methods()
    )
    if not parallel:
        return {key: predictor(spec) for key, spec in specs.items()}
    keys = list(specs)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        chunk = max(1, len(keys) // (4 * workers))
        return dict(zip(keys, pool.map(predictor, (specs[key] for key in keys), chunksize=chunk), strict=True))


def _metrics(values: dict[str, Any] | None) -> Metrics | None:
    if not values or any(values.get(name) is None for name in planner.METRICS):
        return None
    return Metrics(*(float(values[name]) for name in planner.METRICS))


def planner_inputs(rows: list[queue.PlanRow]) -> tuple[list[planner.Config], dict, dict]:
    """The queue's rows as the planner's configs, predictions and measurements."""
    configs, predictions, measured = [], {}, {}
    for row in rows:
        configs.append(
            planner.Config(
                key=row.id,
                hardware=row.hardware,
                framework=row.framework,
                workload=row.workload_type,
                sequence_length=row.sequence_length,
                concurrency=row.batch_size,
                gpu_count=row.gpu_count,
                hourly_price_usd=row.hourly_price_usd,
                tensor_parallel=row.tensor_parallel,
                options=serving_options(row),
                status=row.status,
                exempt=row.pruning_exempt,
            )
        )
        predicted = _metrics(row.prediction)
        if predicted is not None:
            predictions[row.id] = predicted
        if row.status == "completed" and row.throughput_tokens_sec:
            measured[row.id] = Metrics(row.ttft_p90_ms, row.tpot_p90_ms, row.throughput_tokens_sec)
    return configs, predictions, measured


def planner_use_cases(engine: Engine) -> dict[str, planner.UseCase]:
    return {
        criteria.subcategory: planner.UseCase(
            criteria.subcategory, criteria.sla_ttft_p90_ms, criteria.sla_tpot_p90_ms, dict(criteria.weights)
        )
        for criteria in load_use_cases(engine)
    }


@dataclass(frozen=True)
class ReplanReport:
    plan: planner.Plan
    applied: queue.PlanApplied
    predicted: int
    seconds: float

    def line(self) -> str:
        skipped = ", ".join(f"{reason} {n}" for reason, n in self.plan.skipped_by_reason().items()) or "none"
        return (
            f"planner: {self.applied.skipped} newly skipped, {self.applied.unskipped} back to pending, "
            f"{self.applied.reprioritised} re-ordered ({self.predicted} predicted) in {self.seconds:.2f} s; "
            f"skip decisions: {skipped}"
        )


def replan(
    engine: Engine,
    model_version_id: uuid.UUID,
    *,
    settings: planner.Settings = planner.DEFAULT_SETTINGS,
    predictor: Predictor = simulator_prediction,
    use_cases: dict[str, planner.UseCase] | None = None,
) -> ReplanReport | None:
    """Predict what is missing, plan, apply. None when another process is planning this version right now."""
    started = time.perf_counter()
    predicted = predict_missing(engine, model_version_id, predictor)
    use_cases = use_cases if use_cases is not None else planner_use_cases(engine)
    with engine.begin() as connection:
        if not queue.try_lock_plan(connection, model_version_id):
            return None
        configs, predictions, measured = planner_inputs(queue.load_plan_rows(connection, model_version_id))
        plan = planner.plan(configs, predictions, measured, use_cases, settings)
        skips = {key: d.reason for key, d in plan.decisions.items() if d.action == planner.SKIP}
        priorities = {key: d.priority for key, d in plan.decisions.items() if d.action == planner.RUN}
        applied = queue.apply_plan(connection, model_version_id, skips, priorities)
    return ReplanReport(plan, applied, predicted, time.perf_counter() - started)


def replanner_for(engine: Engine, model_version_id: uuid.UUID, min_interval_seconds: float) -> Replanner | None:
    """A worker's between-claims planner: none when asked for none (``min_interval_seconds`` 0) or when the version
    is benchmarked exhaustively (nothing may be pruned, so planning would only cost time)."""
    if min_interval_seconds <= 0 or queue.is_exhaustive(engine, model_version_id):
        return None
    return Replanner(engine, model_version_id, min_interval_seconds)


class Replanner:
    """A drain replica's between-claims hook: replans the version at most every ``min_interval_seconds``."""

    def __init__(self, engine: Engine, model_version_id: uuid.UUID, min_interval_seconds: float = 5.0) -> None:
        self.engine, self.model_version_id = engine, model_version_id
        self.min_interval_seconds = min_interval_seconds
        self.last = -math.inf
        self.reports: list[ReplanReport] = []

    def __call__(self) -> None:
        if time.monotonic() - self.last < self.min_interval_seconds:
            return
        self.last = time.monotonic()
        report = replan(self.engine, self.model_version_id)
        if report is not None:
            self.reports.append(report)


def residual_table(engine: Engine) -> list[dict[str, Any]]:
    """Per hardware x framework and runner label: results compared with their predictions, bias (geometric mean of
    measured / predicted) and spread (log-sd) per metric: the simulator's drift, for the UI."""
    groups: dict[tuple[str, str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in queue.residual_rows(engine):
        for metric in planner.METRICS:
            predicted, actual = getattr(row, f"predicted_{metric}"), getattr(row, metric)
            if predicted and actual and predicted > 0 and actual > 0:
                groups[(row.hardware, row.framework, row.runner)][metric].append(math.log(actual / predicted))
    table = []
    for (hardware, framework, runner), by_metric in sorted(groups.items()):
        entry: dict[str, Any] = {"hardware": hardware, "framework": framework, "runner": runner}
        entry["results"] = max(len(v) for v in by_metric.values())
        for metric in planner.METRICS:
            values = by_metric.get(metric, [])
            if not values:
                continue
            mean = sum(values) / len(values)
            sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
            short = metric.removesuffix("_ms").removesuffix("_tokens_sec")
            entry[f"{short}_ratio"] = round(math.exp(mean), 4)
            entry[f"{short}_log_sd"] = None if sd is None else round(sd, 4)
        table.append(entry)
    return table
