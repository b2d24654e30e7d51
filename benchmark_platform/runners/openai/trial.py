"""One trial: a load point (closed loop with N users, or open-loop arrivals) executed against the endpoint, in this
process or spread over client processes whose records merge exactly.

Open-loop runs stop early when queueing keeps growing (over-saturation: the requests in flight and the TTFT both
rise over the recent window, twice in a row) and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from benchmark_platform.runners.base import RunnerError
from benchmark_platform.runners.openai.datasets import Chain, PlannedRequest
from benchmark_platform.runners.openai.protocol import (
    LoadClients,
    LoadSettings,
    RequestRecord,
    event_loop_runner,
    open_clients,
    request_payload,
    sample_loop_lag,
    send_streaming,
)

WARMUP_CAP = 32
SATURATION_WINDOW_SECONDS = 2.0
SATURATION_CHECK_SECONDS = 0.25
SATURATION_MIN_RISE = 0.5  # both series must rise by half their window mean over the window
SATURATION_MIN_IN_FLIGHT_RISE = 2.0
CLIENT_START_DELAY_SECONDS = 0.2


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


async def _send(load: LoadClients, planned: PlannedRequest, shard: int) -> RequestRecord:
    settings = load.settings
    payload = request_payload(settings, planned.prompt, planned.output_tokens, settings.ignore_eos, load.include_usage)
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
    """Warm up (calibrating the prompt length unless ``words`` is given), then send ``chains``: closed loop with
    ``point.users`` users, or open loop starting chain i at ``offsets[i]`` with at most ``point.users`` in flight.
    ``start_at`` (a perf_counter time) aligns client processes; ``stop_flag`` (an Event shared between them) is
    set by whichever detects over-saturation first; ``window_opening`` is awaited just before the measured window
    opens (after the warm-up)."""
    async with contextlib.AsyncExitStack() as stack:
        clients = await open_clients(settings, point.users, stack)
        warm = settings.model_copy(update={"concurrency": point.users})
        if settings.warmup_requests is None:
            warm = warm.model_copy(update={"warmup_requests": min(point.users, WARMUP_CAP)})
        load = LoadClients(warm, list(clients))
        # Every trial warms up its own new connections; the prompt length is calibrated once per run (``words``).
        calibrated, warmup_tokens = await load.warm_up()
        words = words or calibrated
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
        lag_task = asyncio.create_task(sample_loop_lag(lag, stop_lag))
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
    runner, _ = event_loop_runner()
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
