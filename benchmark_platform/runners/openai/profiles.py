"""Load profiles: which trials (``trial``) to run and what to report, as GuideLLM and ``vllm bench serve`` offer them.

- ``synchronous``: one request at a time; ``concurrent``: a fixed number of users (closed loop);
- ``constant`` / ``poisson``: open-loop arrivals at ``rate`` requests/s, evenly spaced or with gamma-distributed gaps
  (``burstiness`` = the gamma shape: 1 is Poisson, below 1 burstier, above 1 more regular, as vLLM defines it);
  ``concurrency`` caps requests in flight;
- ``replay``: the arrival times of a trace dataset (scaled by its ``time_scale``);
- ``throughput``: every request at once (up to ``concurrency`` in flight): the server's maximum;
- ``sweep``: synchronous, then throughput, then ``sweep_points`` constant rates evenly between the two rates seen;
- ``sla-search``: the highest concurrency (or rate, with ``search_by="rate"``) whose percentiles meet the goals,
  by doubling then bisecting (each trial is counted and reported).

An open-loop trial stopped for over-saturation says so. Every trial runs ``repeats`` times with fresh prompts; the
headline metrics are the repeats' means, with 95 % confidence intervals in ``detailed_metrics["repeats"]``, and the
raw per-request samples of all repeats are kept (``detailed_metrics["samples"]``, see ``stats.encode_samples``).
With ``client_processes`` > 1 each trial is spread over that many processes (requests dealt round-robin, arrival
times kept), whose samples merge exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Coroutine
from typing import Any, Literal, get_args

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmark_platform.runners import quality
from benchmark_platform.runners.base import METRIC_COLUMNS, Measurement, RunInterrupted, RunnerError
from benchmark_platform.runners.gpu_monitor import GpuSampler
from benchmark_platform.runners.openai.datasets import Chain, DatasetSpec, LengthDistribution, build_chains
from benchmark_platform.runners.openai.goals import SLO_ATTAINMENT_TARGET, goal_report, parse_goal, slo_attainment
from benchmark_platform.runners.openai.measurement import LoadRun, build_measurement, samples_of
from benchmark_platform.runners.openai.protocol import (
    STOP_POLL_SECONDS,
    LoadClients,
    LoadSettings,
    TooManyErrors,
    event_loop_runner,
    open_clients,
)
from benchmark_platform.runners.openai.server_metrics import ServerMetricSamples, sample_server_metrics
from benchmark_platform.runners.openai.trial import (
    LoadPoint,
    TrialResult,
    arrival_offsets,
    execute,
    execute_in_processes,
)
from benchmark_platform.runners.stats import mean_ci95, merge_samples, summaries_from_samples

ProfileKind = Literal["synchronous", "concurrent", "constant", "poisson", "throughput", "replay", "sweep", "sla-search"]
PROFILE_KINDS: tuple[str, ...] = get_args(ProfileKind)
MAX_CONCURRENCY = 4096
DEFAULT_OPEN_LOOP_CAP = 256  # requests in flight of an open-loop profile unless its concurrency says otherwise
MAX_RATE = 10_000.0
MAX_REPEATS = 20
MAX_CLIENT_PROCESSES = 16
# Prompts are built before a trial starts; a duration-bounded trial plans at most this many requests.
MAX_PLANNED_REQUESTS = 20_000
SERVER_METRICS_FIRST_READ_SECONDS = 5.0
HEADLINE = (*METRIC_COLUMNS[:8], "goodput_rps", "slo_attainment", "itl_p50_ms", "e2e_p90_ms")


class ProfileSettings(BaseModel):
    """How to shape the load; the endpoint and request shape come from ``LoadSettings``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ProfileKind = "concurrent"
    concurrency: int | None = Field(default=None, gt=0, le=MAX_CONCURRENCY, description="users, or in-flight cap")
    rate: float | None = Field(default=None, gt=0, le=MAX_RATE, description="requests/s (constant, poisson)")
    burstiness: float = Field(default=1.0, gt=0, le=100, description="gamma shape of the gaps; 1 = Poisson")
    sweep_points: int = Field(default=4, ge=1, le=50)
    goals: dict[str, float] = Field(default_factory=dict, description="e.g. {'ttft_p90': 500} (ms)")
    search_by: Literal["concurrency", "rate"] = "concurrency"
    search_max: float = Field(default=256, gt=0, le=MAX_RATE)
    repeats: int = Field(default=1, ge=1, le=MAX_REPEATS)
    client_processes: int = Field(default=1, ge=1, le=MAX_CLIENT_PROCESSES)
    stop_when_oversaturated: bool = True
    sample_server_metrics: bool = True
    dataset: DatasetSpec | None = None

    @field_validator("goals")
    @classmethod
    def _known_goals(cls, goals: dict[str, float]) -> dict[str, float]:
        return dict(parse_goal(f"{name}={limit}") for name, limit in goals.items())

    @model_validator(mode="after")
    def _complete(self) -> ProfileSettings:
        if self.kind in ("constant", "poisson") and self.rate is None:
            raise ValueError(f"the {self.kind} profile needs a rate")
        if (self.kind == "replay") != (self.dataset is not None and self.dataset.kind == "trace"):
            raise ValueError("the replay profile and a trace dataset go together")
        if self.kind == "sla-search" and not self.goals:
            raise ValueError("the sla-search profile needs at least one goal")
        if self.kind == "sla-search" and self.search_by == "concurrency" and self.search_max > MAX_CONCURRENCY:
            raise ValueError(f"search_max: a concurrency above {MAX_CONCURRENCY}")
        return self


class ProfileRunner:
    """Runs trials of ``profile`` against ``settings``' endpoint; ``should_stop`` aborts between requests."""

    def __init__(
        self,
        settings: LoadSettings,
        profile: ProfileSettings,
        should_stop: Callable[[], bool] | None = None,
        extra_detail: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.profile = profile
        self.should_stop = should_stop
        self.extra_detail = extra_detail or {}
        self.trials = 0
        self._words: int | None = None
        self._issued = 0
        # A nonce in every prompt: two runs against the same server (or a rerun) never share a cached prefix.
        self._nonce = secrets.token_hex(4)
        self.dataset = profile.dataset or DatasetSpec(
            kind="synthetic",
            input_tokens=LengthDistribution(kind="fixed", mean=settings.input_tokens),
            output_tokens=LengthDistribution(kind="fixed", mean=settings.output_tokens),
        )

    # --- one trial -------------------------------------------------------------------------------------------

    def _count(self, point: LoadPoint) -> int:
        if self.settings.num_requests is not None:
            return self.settings.num_requests
        assert self.settings.duration_seconds is not None  # a duration-bounded run: enough chains to fill it
        per_second = point.rate if point.rate else point.users * 50.0
        return max(1, min(int(per_second * self.settings.duration_seconds * 2) + point.users, MAX_PLANNED_REQUESTS))

    def _chains(self, count: int) -> list[Chain]:
        words_per_token = (self._words or self.settings.input_tokens) / self.settings.input_tokens
        chains = build_chains(
            self.dataset, count, self.settings.seed + self._issued, self.settings.chat, words_per_token, self._nonce
        )
        # Prompts are numbered from where the last trial stopped, so no two trials of a run share a prompt.
        self._issued += sum(len(chain.requests) for chain in chains)
        return chains

    def _execute(self, point: LoadPoint) -> tuple[TrialResult, list[Chain]]:
        if self.should_stop is not None and self.should_stop():
            raise RunInterrupted("load run stopped before it finished")
        self.trials += 1
        if self._words is None:  # the prompts are built for the server's tokenizer before the first trial
            self._words = self._calibrate()
        chains = self._chains(self._count(point))
        offsets = None
        if point.open_loop:
            if point.kind == "replay":
                offsets = [float(chain.arrival_seconds or 0.0) for chain in chains]
            else:
                offsets = arrival_offsets(point, len(chains), self.settings.seed + self.trials)
            if self.settings.duration_seconds is not None:  # open loop: nothing arrives after the duration
                kept = [index for index, offset in enumerate(offsets) if offset < self.settings.duration_seconds]
                chains, offsets = [chains[i] for i in kept] or chains[:1], [offsets[i] for i in kept] or offsets[:1]
        stop_rule = self.profile.stop_when_oversaturated
        if self.profile.client_processes > 1:
            trial = execute_in_processes(
                self.settings, point, chains, offsets, self.profile.client_processes, stop_rule, self._words
            )
            return trial, chains
        runner, _ = event_loop_runner()
        with runner:
            trial = runner.run(self._supervised(point, chains, offsets, stop_rule))
        self._words = trial.words
        return trial, chains

    async def _supervised(
        self, point: LoadPoint, chains: list[Chain], offsets: list[float] | None, stop_rule: bool
    ) -> TrialResult:
        """The trial, with the server's metrics sampled over its measured window, stoppable by ``should_stop``."""
        stop_sampling = asyncio.Event()
        samples = ServerMetricSamples()
        self._server_samples = samples
        sampler: asyncio.Task | None = None
        client = httpx.AsyncClient(base_url=self.settings.base_url, trust_env=False)

        async def open_window() -> None:
            nonlocal sampler
            if self.profile.sample_server_metrics:  # the first reading precedes every measured request
                first_read = asyncio.Event()
                sampler = asyncio.create_task(
                    sample_server_metrics(client, stop_sampling, samples, first_read=first_read)
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(first_read.wait(), SERVER_METRICS_FIRST_READ_SECONDS)

        try:
            return await self._until_stopped(
                execute(self.settings, point, chains, offsets, stop_rule, None, self._words, None, open_window)
            )
        finally:
            stop_sampling.set()
            if sampler is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await sampler
            await client.aclose()

    async def _until_stopped(self, work: Coroutine[Any, Any, TrialResult]) -> TrialResult:
        """``work``, cancelled as soon as ``should_stop`` turns true (polled every ``STOP_POLL_SECONDS``)."""
        task = asyncio.create_task(work)
        while not task.done():
            await asyncio.wait({task}, timeout=STOP_POLL_SECONDS)
            if self.should_stop is not None and self.should_stop() and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise RunInterrupted("load run stopped before it finished")
        return task.result()

    def _calibrate(self) -> int:
        """One warm-up in this process, to learn the words per token before the first prompts are built."""
        runner, _ = event_loop_runner()
        with runner:
            trial = runner.run(self._until_stopped(execute(self.settings, LoadPoint("concurrent", 1), [], None, False)))
        return trial.words

    def measure_point(self, point: LoadPoint) -> Measurement:
        """``repeats`` runs of ``point``: the means as headline metrics, their 95 % CIs, every sample kept."""
        gpu = GpuSampler()
        measurements, samples, server = [], [], []
        self._server_samples = ServerMetricSamples()
        with gpu:
            for _ in range(self.profile.repeats):
                trial, chains = self._execute(point)
                measurement = self._measurement(point, trial)
                measurements.append(measurement)
                samples.append(measurement.detailed_metrics.pop("samples"))
                server.append(self._server_samples.summary())
        combined = self._combine(measurements, samples, point)
        combined.detailed_metrics["server_metrics"] = server[-1] if len(server) == 1 else server
        combined.gpu_utilization_pct = gpu.samples.mean_utilization_pct
        combined.memory_used_gb = gpu.samples.peak_memory_used_gb
        combined.detailed_metrics["gpu"] = gpu.samples.as_dict()
        combined.detailed_metrics["quality_flags"] = quality.flags_for(combined.detailed_metrics)
        return combined

    def _measurement(self, point: LoadPoint, trial: TrialResult) -> Measurement:
        settings = self.settings.model_copy(update={"concurrency": point.users})
        done = [r for r in trial.records if r.error is None]
        end = max((r.ended for r in done), default=trial.started)
        run = LoadRun(
            records=trial.records,
            wall_seconds=max(end - trial.started, 1e-9),
            prompt_words=trial.words,
            warmup_prompt_tokens=trial.warmup_prompt_tokens,
            loop_lag_seconds=trial.lag,
            client_cpu_seconds=trial.cpu_seconds,
            warnings=list(trial.warnings),
        )
        if not run.records:
            raise RunnerError("no request was sent (the duration ended before the first one)")
        errors = sum(r.error is not None for r in run.records)
        if trial.stopped is None and errors > settings.max_error_fraction * len(run.records):
            first = next(r.error for r in run.records if r.error)
            raise TooManyErrors(
                f"{errors} of {len(run.records)} requests failed "
                f"(threshold {settings.max_error_fraction:.0%}); first error: {first}"
            )
        measurement = build_measurement(run, settings, extra_detail=self.extra_detail)
        detail = measurement.detailed_metrics
        attainment = slo_attainment(trial.records, self.profile.goals or self._sla_goals())
        detail["slo_attainment"] = attainment
        detail["oversaturated"] = trial.stopped
        if trial.stopped:
            detail["warnings"].append(trial.stopped)
        detail["samples"] = samples_of(trial.records, trial.started)
        detail["dataset"] = self.dataset.model_dump(mode="json")
        detail["client"]["processes"] = self.profile.client_processes
        return measurement

    def _sla_goals(self) -> dict[str, float]:
        goals = {}
        if self.settings.sla_ttft_ms is not None:
            goals["ttft_p90"] = self.settings.sla_ttft_ms
        if self.settings.sla_tpot_ms is not None:
            goals["tpot_p90"] = self.settings.sla_tpot_ms
        return goals

    def _combine(self, measurements: list[Measurement], samples: list[dict], point: LoadPoint) -> Measurement:
        """One measurement of the repeats: mean headline metrics, their CIs, merged samples, pooled percentiles."""
        first = measurements[0]
        detail = first.detailed_metrics
        detail["profile"] = self.profile.model_dump(mode="json", exclude={"dataset"}) | {"point": point.describe()}
        detail["samples"] = merge_samples(samples)
        detail["warmup_excluded"] = True
        detail["trials"] = self.trials
        if len(measurements) == 1:
            detail["repeats"] = None
            return first

        def headline(measurement: Measurement, name: str) -> float | None:
            if name in METRIC_COLUMNS:
                return getattr(measurement, name)
            if name in ("goodput_rps", "slo_attainment"):
                return measurement.detailed_metrics[name]
            metric, percentile, _ = name.split("_")
            return (measurement.detailed_metrics.get(f"{metric}_ms") or {}).get(percentile)

        intervals = {}
        for name in HEADLINE:
            values = [headline(m, name) for m in measurements]
            if all(value is not None for value in values):
                intervals[name] = mean_ci95([float(value) for value in values if value is not None])
        detail["repeats"] = {"count": len(measurements), "metrics": intervals}
        # The per-request distributions of all repeats together (the columns are the repeats' means).
        detail["pooled"] = summaries_from_samples(detail["samples"])
        detail.update(detail["pooled"])
        detail["warnings"] = sorted({w for m in measurements for w in m.detailed_metrics["warnings"]})
        detail["oversaturated"] = next(
            (m.detailed_metrics["oversaturated"] for m in measurements if m.detailed_metrics["oversaturated"]), None
        )
        detail["completed_requests"] = sum(m.detailed_metrics["completed_requests"] for m in measurements)
        detail["errors"] = sum(m.detailed_metrics["errors"] for m in measurements)
        detail["output_tokens_total"] = sum(m.detailed_metrics["output_tokens_total"] for m in measurements)
        columns = {name: intervals[name]["mean"] for name in METRIC_COLUMNS[:8]}
        # Means of ordered percentiles stay ordered; set them together so validation sees a consistent row.
        return Measurement(
            **columns,
            accuracy_score=first.accuracy_score,
            detailed_metrics=detail | {"goodput_rps": intervals["goodput_rps"]["mean"]},
            runner=first.runner,
        )

    # --- profiles --------------------------------------------------------------------------------------------

    def run(self) -> list[Measurement]:
        """The profile's measurements: one for a single load, one per point for a sweep, the best point found for
        an SLA search (its search log in ``detailed_metrics["sla_search"]``); accuracy is scored once, after."""
        measurements = self._run_profile()
        if self.settings.accuracy_tasks:
            correct, total = self._score_accuracy()
            for measurement in measurements:
                measurement.accuracy_score = correct / total
                measurement.detailed_metrics["accuracy"] = {"correct": correct, "tasks": total}
        return measurements

    def _score_accuracy(self) -> tuple[int, int]:
        async def score() -> tuple[int, int]:
            async with contextlib.AsyncExitStack() as stack:
                clients = await open_clients(self.settings, self.settings.concurrency, stack)
                return await LoadClients(self.settings, clients).score_accuracy(self.settings.accuracy_tasks)

        runner, _ = event_loop_runner()
        with runner:
            return runner.run(score())

    def _in_flight_cap(self) -> int:
        """The profile's cap on requests in flight, never above the load generator's ceiling."""
        return min(self.profile.concurrency or DEFAULT_OPEN_LOOP_CAP, self.settings.max_concurrency)

    def _run_profile(self) -> list[Measurement]:
        profile = self.profile
        users = min(profile.concurrency or self.settings.concurrency, self.settings.max_concurrency)
        if profile.kind == "synchronous":
            return [self.measure_point(LoadPoint("synchronous", 1))]
        if profile.kind == "concurrent":
            return [self.measure_point(LoadPoint("concurrent", users))]
        if profile.kind in ("constant", "poisson"):
            cap = self._in_flight_cap()
            return [self.measure_point(LoadPoint(profile.kind, cap, profile.rate, profile.burstiness))]
        if profile.kind == "replay":
            return [self.measure_point(LoadPoint("replay", self._in_flight_cap()))]
        if profile.kind == "throughput":
            return [self.measure_point(LoadPoint("throughput", self._in_flight_cap()))]
        if profile.kind == "sweep":
            return self.sweep()
        return [self.sla_search()]

    def sweep(self) -> list[Measurement]:
        """Synchronous, then maximum throughput, then ``sweep_points`` constant rates evenly between them."""
        cap = self._in_flight_cap()
        synchronous = self.measure_point(LoadPoint("synchronous", 1))
        throughput = self.measure_point(LoadPoint("throughput", cap))
        low, high = synchronous.rps_sustained, throughput.rps_sustained
        points = self.profile.sweep_points
        rates = [low + (high - low) * (index + 1) / (points + 1) for index in range(points)] if high > low else []
        results = [synchronous, throughput]
        results += [self.measure_point(LoadPoint("constant", cap, rate)) for rate in rates]
        goals = self.profile.goals or self._sla_goals()
        if goals:
            good = [m.rps_sustained for m in results if m.detailed_metrics["slo_attainment"] >= SLO_ATTAINMENT_TARGET]
            for measurement in results:
                measurement.detailed_metrics["goodput_distserve_rps"] = max(good, default=0.0)
        return results

    def sla_search(self) -> Measurement:
        """The highest load meeting every goal: double from 1 until a trial misses (or ``search_max``), then bisect
        between the last pass and the first miss (to the nearest user, or to 5 % of the rate)."""
        profile = self.profile
        by_rate = profile.search_by == "rate"
        cap = self._in_flight_cap()
        ceiling = profile.search_max if by_rate else min(profile.search_max, self.settings.max_concurrency)
        log: list[dict[str, Any]] = []

        def trial(level: float) -> Measurement | None:
            """The load at ``level``, or None when too many of its requests failed (a miss, logged with why)."""
            point = (
                LoadPoint("poisson", cap, level, profile.burstiness) if by_rate else LoadPoint("concurrent", int(level))
            )
            try:
                measurement = self.measure_point(point)
            except TooManyErrors as error:
                log.append({"level": level, "met": False, "error": str(error)})
                return None
            report = goal_report(measurement, profile.goals)
            met = all(item["met"] for item in report.values()) and not measurement.detailed_metrics["oversaturated"]
            log.append({"level": level, "met": met, "goals": report})
            measurement.detailed_metrics["goals_met"] = met
            return measurement if met else None

        level, best, best_level, miss_level = 1.0, None, None, None
        while True:
            measured = trial(level)
            if measured is not None:
                best, best_level = measured, level
                if level >= ceiling:
                    break
                level = min(level * 2, ceiling)
            else:
                miss_level = level
                break
        if best is None:
            first = log[0]
            why = first.get("error") or "; ".join(
                f"{name} {item['measured_ms']} ms > {item['limit_ms']:g} ms"
                for name, item in first["goals"].items()
                if not item["met"]
            )
            raise RunnerError(
                f"no load meets the goals, not even {'a rate of 1 request/s' if by_rate else 'one user'}: "
                + (why or "the server was over-saturated")
            )
        assert best_level is not None
        while miss_level is not None:
            gap = miss_level - best_level
            if (not by_rate and gap <= 1) or (by_rate and gap <= 0.05 * best_level):
                break
            middle = (best_level + miss_level) / 2
            middle = float(round(middle)) if not by_rate else middle
            measured = trial(middle)
            if measured is not None:
                best, best_level = measured, middle
            else:
                miss_level = middle
        best.detailed_metrics["sla_search"] = {
            "by": profile.search_by,
            "best": best_level,
            "first_miss": miss_level,
            "trials": len(log),
            "log": log,
        }
        return best


def measure_profile(
    settings: LoadSettings,
    profile: ProfileSettings,
    should_stop: Callable[[], bool] | None = None,
    extra_detail: dict[str, Any] | None = None,
) -> list[Measurement]:
    """Run ``profile`` against ``settings.base_url``; raises RunnerError when the endpoint cannot be measured."""
    return ProfileRunner(settings, profile, should_stop, extra_detail).run()
