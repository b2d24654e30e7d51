"""Load profiles around the load generator's per-request function, as GuideLLM and ``vllm bench serve`` offer them.

- ``synchronous``: one request at a time; ``concurrent``: a fixed number of users (closed loop);
- ``constant`` / ``poisson``: open-loop arrivals at ``rate`` requests/s, evenly spaced or with gamma-distributed gaps
  (``burstiness`` = the gamma shape: 1 is Poisson, below 1 burstier, above 1 more regular, as vLLM defines it);
  ``concurrency`` caps requests in flight;
- ``replay``: the arrival times of a trace dataset (scaled by its ``time_scale``);
- ``throughput``: every request at once (up to ``concurrency`` in flight): the server's maximum;
- ``sweep``: synchronous, then throughput, then ``sweep_points`` constant rates evenly between the two rates seen;
- ``sla-search``: the highest concurrency (or rate, with ``search_by="rate"``) whose percentiles meet the goals,
  by doubling then bisecting (each trial is counted and reported).

Open-loop runs stop early when queueing keeps growing (over-saturation: the requests in flight and the TTFT both
rise over the recent window, twice in a row) and say so. Every trial runs ``repeats`` times with fresh prompts; the
headline metrics are the repeats' means, with 95 % confidence intervals in ``detailed_metrics["repeats"]``, and the
raw per-request samples of all repeats are kept (``detailed_metrics["samples"]``, see ``stats.encode_samples``).
With ``client_processes`` > 1 each trial is spread over that many processes (requests dealt round-robin, arrival
times kept), whose samples merge exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from benchmark_platform.runners import quality
from benchmark_platform.runners.base import METRIC_COLUMNS, Measurement, RunInterrupted, RunnerError
from benchmark_platform.runners.gpu_monitor import GpuSampler
from benchmark_platform.runners.openai.datasets import (
    Chain,
    DatasetSpec,
    LengthDistribution,
    PlannedRequest,
    build_chains,
)
from benchmark_platform.runners.openai.protocol import (
    STOP_POLL_SECONDS,
    LoadRun,
    LoadSettings,
    RequestRecord,
    _event_loop_runner,
    _Load,
    _payload,
    _sample_loop_lag,
    build_measurement,
    open_clients,
    send_streaming,
)
from benchmark_platform.runners.openai.server_metrics import ServerMetricSamples, sample_server_metrics
from benchmark_platform.runners.stats import encode_samples, mean_ci95, merge_samples, summaries_from_samples

ProfileKind = Literal["synchronous", "concurrent", "constant", "poisson", "throughput", "replay", "sweep", "sla-search"]
MAX_CONCURRENCY = 4096
DEFAULT_OPEN_LOOP_CAP = 256  # requests in flight of an open-loop profile unless its concurrency says otherwise
MAX_RATE = 10_000.0
MAX_REPEATS = 20
MAX_CLIENT_PROCESSES = 16
WARMUP_CAP = 32
GOAL_METRICS = ("ttft", "tpot", "itl", "e2e")
GOAL_PERCENTILES = ("p50", "p90", "p95", "p99", "p99.9", "mean")
# DistServe's goodput: the highest request rate whose SLO attainment (share of requests meeting every latency target)
# is at least this.
SLO_ATTAINMENT_TARGET = 0.9
SATURATION_WINDOW_SECONDS = 2.0
SATURATION_CHECK_SECONDS = 0.25
SATURATION_MIN_RISE = 0.5  # both series must rise by half their window mean over the window
SATURATION_MIN_IN_FLIGHT_RISE = 2.0
CLIENT_START_DELAY_SECONDS = 0.2
# Prompts are built before a trial starts; a duration-bounded trial plans at most this many requests.
MAX_PLANNED_REQUESTS = 20_000
SERVER_METRICS_FIRST_READ_SECONDS = 5.0
HEADLINE = (*METRIC_COLUMNS[:8], "goodput_rps", "slo_attainment", "itl_p50_ms", "e2e_p90_ms")


def parse_goal(text: str) -> tuple[str, float]:
    """``ttft_p90_ms=500`` → (``ttft_p90``, 500.0); raises ValueError naming what is wrong."""
    name, _, value = text.partition("=")
    name = name.strip().removesuffix("_ms")
    metric, _, percentile = name.partition("_")
    percentile = percentile.replace("p999", "p99.9")
    if metric not in GOAL_METRICS or percentile not in GOAL_PERCENTILES:
        raise ValueError(
            f"goal {text!r}: expected METRIC_PERCENTILE_ms=VALUE with METRIC in {'/'.join(GOAL_METRICS)} "
            f"and PERCENTILE in {'/'.join(GOAL_PERCENTILES)}, e.g. ttft_p90_ms=500"
        )
    try:
        limit = float(value)
    except ValueError:
        raise ValueError(f"goal {text!r}: the limit must be a number of milliseconds") from None
    if not math.isfinite(limit) or limit <= 0:
        raise ValueError(f"goal {text!r}: the limit must be a positive finite number of milliseconds")
    return f"{metric}_{percentile}", limit


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


@dataclass(frozen=True)
class LoadPoint:
    """One trial's load: closed loop with ``users``, or open loop at ``rate`` (None with ``burst`` = all at once)."""

    kind: Literal["synchronous", "concurrent", "constant", "poisson", "throughput", "replay"]
    users: int
    rate: float | None = None
    burstiness: float = 1.0

    @property
    def open_loop(self) -> bool:
        return self.kind in ("constant", "poisson", "throughput", "replay")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "concurrency": self.users, "rate": self.rate, "burstiness": self.burstiness}


def arrival_offsets(point: LoadPoint, count: int, seed: int) -> list[float]:
    """Seconds from the start at which each of ``count`` open-loop chains begins (pure)."""
    if point.kind == "throughput":
        return [0.0] * count
    if point.kind == "replay":
        raise ValueError("replayed arrivals come from the trace")
    assert point.rate is not None
    if point.kind == "constant":
        return [index / point.rate for index in range(count)]
    rng = np.random.default_rng(seed)
    gaps = rng.gamma(shape=point.burstiness, scale=1.0 / (point.rate * point.burstiness), size=count)
    return [0.0, *np.cumsum(gaps[:-1]).tolist()][:count]


class SaturationDetector:
    """Over-saturation: over the last window, both the requests in flight and the TTFT of requests that started
    in it rise (least-squares slope × window ≥ half the window's mean, and in flight by at least two), at two checks
    in a row. Pure: fed timestamps, it answers."""

    def __init__(self, window: float = SATURATION_WINDOW_SECONDS) -> None:
        self.window = window
        self.in_flight: list[tuple[float, float]] = []
        self.ttft: list[tuple[float, float]] = []
        self._strikes = 0

    def observe_in_flight(self, now: float, count: int) -> None:
        self.in_flight.append((now, float(count)))

    def observe_ttft(self, sent: float, ttft: float) -> None:
        self.ttft.append((sent, ttft))

    def check(self, now: float) -> str | None:
        since = now - self.window
        flight = [(t, v) for t, v in self.in_flight if t >= since]
        ttft = [(t, v) for t, v in self.ttft if t >= since]
        if len(flight) < 4 or len(ttft) < 4 or now - self.in_flight[0][0] < self.window:
            return None
        flight_rise, flight_mean = _rise(flight, self.window)
        ttft_rise, ttft_mean = _rise(ttft, self.window)
        rising = (
            flight_rise >= max(SATURATION_MIN_IN_FLIGHT_RISE, SATURATION_MIN_RISE * flight_mean)
            and ttft_rise >= SATURATION_MIN_RISE * ttft_mean
        )
        self._strikes = self._strikes + 1 if rising else 0
        if self._strikes < 2:
            return None
        return (
            f"over-saturated: over the last {self.window:g} s requests in flight rose by {flight_rise:.1f} "
            f"(mean {flight_mean:.1f}) and TTFT by {ttft_rise * 1e3:.0f} ms (mean {ttft_mean * 1e3:.0f} ms); "
            "the run was stopped: the server cannot keep up with this load"
        )


def _rise(points: list[tuple[float, float]], window: float) -> tuple[float, float]:
    times = np.array([t for t, _ in points])
    values = np.array([v for _, v in points])
    if np.ptp(times) == 0:
        return 0.0, float(values.mean())
    slope = float(np.polyfit(times - times[0], values, 1)[0])
    return slope * window, float(values.mean())


@dataclass
class TrialResult:
    """What one execution of a load point produced (one process's share, or merged)."""

    records: list[RequestRecord]
    started: float
    lag: list[float]
    cpu_seconds: float
    words: int
    warmup_prompt_tokens: int | None
    warnings: list[str] = field(default_factory=list)
    stopped: str | None = None


async def _send(load: _Load, planned: PlannedRequest, shard: int) -> RequestRecord:
    settings = load.settings
    payload = _payload(settings, planned.prompt, planned.output_tokens, settings.ignore_eos, load.include_usage)
    if settings.chat and planned.messages is not None:
        payload["messages"] = planned.messages
    client = load.clients[shard % len(load.clients)]
    record = await send_streaming(
        client, settings.path, payload, settings.request_timeout_seconds, max_line_bytes=settings.max_line_bytes
    )
    record.max_tokens = planned.output_tokens
    return record


async def execute(
    settings: LoadSettings,
    point: LoadPoint,
    chains: list[Chain],
    offsets: list[float] | None,
    stop_when_oversaturated: bool = True,
    start_at: float | None = None,
    words: int | None = None,
    stop_flag: Any = None,
    window_opening: Callable[[], Awaitable[None]] | None = None,
) -> TrialResult:
    """Warm up (unless ``words`` is already calibrated), then send ``chains``: closed loop with ``point.users``
    users, or open loop starting chain i at ``offsets[i]`` with at most ``point.users`` requests in flight.
    ``start_at`` (a perf_counter time) aligns client processes; ``stop_flag`` (an Event shared between them) is
    set by whichever detects over-saturation first; ``window_opening`` is awaited just before the measured window
    opens (after the warm-up)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = await open_clients(settings, point.users, stack)
        warm = settings.model_copy(update={"concurrency": point.users})
        if settings.warmup_requests is None:
            warm = warm.model_copy(update={"warmup_requests": min(point.users, WARMUP_CAP)})
        load = _Load(warm, list(clients))
        warmup_tokens = None
        if words is None:
            words, warmup_tokens = await load.warm_up()
        records: list[RequestRecord] = []
        detector = SaturationDetector()
        stopped: list[str] = []
        in_flight = 0

        async def run_chain(chain: Chain, shard: int) -> None:
            nonlocal in_flight
            for planned in chain.requests:
                in_flight += 1
                try:
                    record = await _send(load, planned, shard)
                finally:
                    in_flight -= 1
                records.append(record)
                if record.error is not None:
                    return
                if record.token_times:
                    detector.observe_ttft(record.sent, record.ttft)

        lag: list[float] = []
        stop_lag = asyncio.Event()
        lag_task = asyncio.create_task(_sample_loop_lag(lag, stop_lag))
        if start_at is not None:
            await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
        if window_opening is not None:
            await window_opening()
        cpu_before, started = time.process_time(), time.perf_counter()

        def halted() -> bool:
            return bool(stopped) or (stop_flag is not None and stop_flag.is_set())

        async def watch() -> None:
            while True:
                await asyncio.sleep(SATURATION_CHECK_SECONDS)
                now = time.perf_counter()
                detector.observe_in_flight(now, in_flight)
                reason = detector.check(now) if stop_when_oversaturated and point.open_loop else None
                if reason and not stopped:
                    stopped.append(reason)
                    if stop_flag is not None:
                        stop_flag.set()

        watcher = asyncio.create_task(watch())
        try:
            if point.open_loop:
                assert offsets is not None
                gate = asyncio.Semaphore(point.users)
                tasks: list[asyncio.Task] = []

                async def gated(chain: Chain, shard: int) -> None:
                    async with gate:
                        if not halted():
                            await run_chain(chain, shard)

                for index, (chain, offset) in enumerate(zip(chains, offsets, strict=True)):
                    delay = started + offset - time.perf_counter()
                    while delay > 0 and not halted():
                        await asyncio.sleep(min(delay, SATURATION_CHECK_SECONDS))
                        delay = started + offset - time.perf_counter()
                    if halted():
                        break
                    tasks.append(asyncio.create_task(gated(chain, index)))
                pending = set(tasks)
                while pending and not halted():
                    _, pending = await asyncio.wait(pending, timeout=SATURATION_CHECK_SECONDS)
                for task in pending:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            else:
                queue = iter(enumerate(chains))

                async def user(number: int) -> None:
                    for _, chain in queue:
                        if settings.duration_seconds and time.perf_counter() - started >= settings.duration_seconds:
                            return
                        await run_chain(chain, number)

                await asyncio.gather(*(user(number) for number in range(point.users)))
        finally:
            watcher.cancel()
            stop_lag.set()
            await lag_task
        return TrialResult(
            records=records,
            started=started,
            lag=lag,
            cpu_seconds=time.process_time() - cpu_before,
            words=words,
            warmup_prompt_tokens=warmup_tokens,
            warnings=load.warnings,
            stopped=stopped[0] if stopped else None,
        )


def _process_main(args: tuple, results: Any, stop_flag: Any) -> None:
    """One client process: execute its share and send back the result (or the error)."""
    settings, point, chains, offsets, stop_rule, start_at, words = args
    runner, _ = _event_loop_runner()
    try:
        with runner:
            result = runner.run(execute(settings, point, chains, offsets, stop_rule, start_at, words, stop_flag))
        results.put(result)
    except BaseException as error:  # the parent turns it into a RunnerError
        results.put(f"{type(error).__name__}: {error}")


def execute_in_processes(
    settings: LoadSettings,
    point: LoadPoint,
    chains: list[Chain],
    offsets: list[float] | None,
    processes: int,
    stop_rule: bool,
    words: int,
) -> TrialResult:
    """The trial spread over ``processes`` client processes (chain i to process i mod n; closed-loop users split
    as evenly as they go); their records merge into one result, timed from the common start."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    stop_flag = context.Event()
    start_at = time.perf_counter() + CLIENT_START_DELAY_SECONDS + 1.5 * processes  # spawned interpreters import first
    workers = []
    first_user = 0
    for index in range(processes):
        users = point.users // processes + (index < point.users % processes)
        if users == 0:
            continue
        share_settings = settings.starting_at_server(first_user)  # its users are first_user… of the whole load
        first_user += users
        share_point = LoadPoint(point.kind, users, point.rate, point.burstiness)
        share_offsets = offsets[index::processes] if offsets is not None else None
        args = (share_settings, share_point, chains[index::processes], share_offsets, stop_rule, start_at, words)
        worker = context.Process(target=_process_main, args=(args, results, stop_flag), daemon=True)
        worker.start()
        workers.append(worker)
    collected = [results.get(timeout=settings.request_timeout_seconds * 10 + 60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    failures = [item for item in collected if isinstance(item, str)]
    if failures:
        raise RunnerError(f"a client process failed: {failures[0]}")
    parts: list[TrialResult] = collected
    return TrialResult(
        records=[record for part in parts for record in part.records],
        started=min(part.started for part in parts),
        lag=[value for part in parts for value in part.lag],
        cpu_seconds=sum(part.cpu_seconds for part in parts),
        words=words,
        warmup_prompt_tokens=None,
        warnings=sorted({w for part in parts for w in part.warnings}),
        stopped=next((part.stopped for part in parts if part.stopped), None),
    )


def samples_of(records: list[RequestRecord], started: float) -> dict:
    """The completed requests' raw samples (integer microseconds), in send order."""
    done = sorted((r for r in records if r.error is None and r.token_times), key=lambda r: r.sent)
    us = 1e6

    def column(values: Any) -> list[int]:
        return [round(value) for value in values]

    itl = [round(gap * us) for record in done for gap in np.diff(record.token_times)]
    return encode_samples(
        {
            "sent_us": column((r.sent - started) * us for r in done),
            "ttft_us": column(r.ttft * us for r in done),
            "e2e_us": column(r.e2e * us for r in done),
            "output_tokens": [r.output_tokens for r in done],
            "prompt_tokens": [r.prompt_tokens or 0 for r in done],
            "itl_count": [len(r.token_times) - 1 for r in done],
        },
        itl,
    )


def slo_attainment(records: list[RequestRecord], goals: dict[str, float], e2e_limit_ms: float | None = None) -> float:
    """Share of sent requests that completed within every per-request target (TTFT, TPOT, E2E limits among the
    goals, whatever their percentile), as DistServe counts SLO attainment; failed requests count as misses."""
    limits = {name.split("_")[0]: limit / 1e3 for name, limit in goals.items()}
    if e2e_limit_ms is not None:
        limits["e2e"] = e2e_limit_ms / 1e3
    if not records:
        return 0.0
    met = 0
    for record in records:
        if record.error is not None or not record.token_times:
            continue
        tpot = record.tpot or 0.0
        gaps = np.diff(record.token_times)
        values = {"ttft": record.ttft, "tpot": tpot, "e2e": record.e2e, "itl": float(gaps.max()) if gaps.size else 0}
        met += all(values[metric] <= limit for metric, limit in limits.items())
    return met / len(records)


def goal_report(measurement: Measurement, goals: dict[str, float]) -> dict[str, dict[str, float | bool]]:
    """Each goal with the measured value and whether it is met."""
    detail = measurement.detailed_metrics
    report = {}
    for name, limit in goals.items():
        metric, percentile = name.split("_", 1)
        value = (detail.get(f"{metric}_ms") or {}).get(percentile)
        report[name] = {"limit_ms": limit, "measured_ms": value, "met": value is not None and value <= limit}
    return report


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
            if self._words is None:
                self._words = self._calibrate(point)
            trial = execute_in_processes(
                self.settings, point, chains, offsets, self.profile.client_processes, stop_rule, self._words
            )
            return trial, chains
        runner, _ = _event_loop_runner()
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

        work = asyncio.create_task(
            execute(self.settings, point, chains, offsets, stop_rule, None, self._words, None, open_window)
        )
        try:
            while not work.done():
                await asyncio.wait({work}, timeout=STOP_POLL_SECONDS)
                if self.should_stop is not None and self.should_stop() and not work.done():
                    work.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await work
                    raise RunInterrupted("load run stopped before it finished")
            return work.result()
        finally:
            stop_sampling.set()
            if sampler is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await sampler
            await client.aclose()

    def _calibrate(self, point: LoadPoint) -> int:
        """Warm-up in this process only, to learn the words per token (client processes then skip it)."""
        runner, _ = _event_loop_runner()
        with runner:
            trial = runner.run(execute(self.settings, LoadPoint("concurrent", 1), [], None, False))
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
        settings = self.settings.model_copy(
            update={"concurrency": point.users, "request_rate": point.rate if point.kind != "throughput" else None}
        )
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
            raise RunnerError(
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
                return await _Load(self.settings, clients).score_accuracy(self.settings.accuracy_tasks)

        runner, _ = _event_loop_runner()
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

        def trial(level: float) -> Measurement:
            point = (
                LoadPoint("poisson", cap, level, profile.burstiness) if by_rate else LoadPoint("concurrent", int(level))
            )
            measurement = self.measure_point(point)
            report = goal_report(measurement, profile.goals)
            met = all(item["met"] for item in report.values()) and not measurement.detailed_metrics["oversaturated"]
            log.append({"level": level, "met": met, "goals": report})
            measurement.detailed_metrics["goals_met"] = met
            return measurement

        level, best, best_level, miss_level = 1.0, None, None, None
        while True:
            measured = trial(level)
            if measured.detailed_metrics["goals_met"]:
                best, best_level = measured, level
                if level >= ceiling:
                    break
                level = min(level * 2, ceiling)
            else:
                miss_level = level
                break
        if best is None:
            raise RunnerError(
                f"no load meets the goals, not even {'a rate of 1 request/s' if by_rate else 'one user'}: "
                + "; ".join(
                    f"{name} {item['measured_ms']} ms > {item['limit_ms']:g} ms"
                    for name, item in log[0]["goals"].items()
                    if not item["met"]
                )
            )
        assert best_level is not None
        while miss_level is not None:
            gap = miss_level - best_level
            if (not by_rate and gap <= 1) or (by_rate and gap <= 0.05 * best_level):
                break
            middle = (best_level + miss_level) / 2
            middle = float(round(middle)) if not by_rate else middle
            measured = trial(middle)
            if measured.detailed_metrics["goals_met"]:
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
