"""Starts inference servers from their framework's catalog launch command, waits until they are healthy, streams
their logs to a logger and stops them cleanly (SIGTERM to each process group, SIGKILL after a grace period).

A deployment of ``replicas`` copies of a model on a node is one server when the framework's template takes ``{dp}``
(data parallelism inside the server), else one server per replica (``ServerGroup``), replica ``r`` on its own port
and seeing only GPUs ``[r * tp, (r + 1) * tp)`` of the node."""

from __future__ import annotations

import collections
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from benchmark_platform.domain import PLAIN_DEPLOYMENT, ServingOptions, Vendor
from benchmark_platform.http_bodies import IDENTITY, read_body
from benchmark_platform.runners.base import FrameworkFacts, ModelFacts, RunInterrupted, RunnerError

HEALTH_PATHS = ("/health", "/v1/models")
LOG_TAIL_LINES = 40
URI_PREFIXES_TO_STRIP = ("hf://", "file://")
MAX_MODELS_BODY_BYTES = 1 << 20  # /v1/models of a server with a few models is a few KB
# The variable that limits which GPUs a process sees, by vendor (ROCm: HIP's; vLLM is deprecating CUDA's there).
VISIBLE_DEVICES_VARIABLE = {"nvidia": "CUDA_VISIBLE_DEVICES", "amd": "HIP_VISIBLE_DEVICES"}


def free_port(host: str = "127.0.0.1") -> int:
    """A port free right now on ``host`` (the server binds it moments later; a clash fails the start clearly)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def model_argument(artifact_uri: str) -> str:
    """What the server's command line takes for a model: a Hugging Face id or a local path."""
    for prefix in URI_PREFIXES_TO_STRIP:
        if artifact_uri.startswith(prefix):
            return artifact_uri[len(prefix) :]
    return artifact_uri


def serves_data_parallel(framework: FrameworkFacts) -> bool:
    """Whether the framework's launch template takes ``{dp}``: one server then runs every replica of the node
    (vLLM's ``--data-parallel-size``, SGLang's ``--dp-size``); otherwise a server is one replica."""
    return any(name == "dp" for _, name, _, _ in string.Formatter().parse(framework.launch_command))


def replica_devices(tensor_parallel: int, replica: int) -> list[int]:
    """The node's GPU indices replica ``replica`` runs on: ``[replica * tp, (replica + 1) * tp)``."""
    return list(range(replica * tensor_parallel, (replica + 1) * tensor_parallel))


def visible_devices_env(
    vendor: Vendor, devices: list[int], inherited: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment that shows a server only ``devices`` (indices of the node's GPUs). When this process already
    sees a subset (the variable set by a scheduler), the indices pick entries of that list, so a server never
    reaches a GPU this process was not given."""
    variable = VISIBLE_DEVICES_VARIABLE[vendor]
    current = (os.environ if inherited is None else inherited).get(variable, "").strip()
    names = [part.strip() for part in current.split(",") if part.strip()] if current else None
    if names is not None and max(devices) >= len(names):
        raise RunnerError(
            f"{variable}={current} shows {len(names)} GPU(s), but the deployment needs GPU index {max(devices)}"
        )
    return {variable: ",".join(names[index] if names else str(index) for index in devices)}


def serving_option_flags(framework: FrameworkFacts, model: ModelFacts, options: ServingOptions) -> str:
    """The launch flags of the config's serving options (the catalog's ``serving_options``); RunnerError where the
    framework cannot run one (the matrix does not queue those; a hand-made config can ask)."""
    support, method = framework.serving_options, options.speculative_method
    wanted: list[tuple[str, str | None]] = []  # (what, its flag template; None: the framework has none)
    if options.expert_parallel > 1:
        wanted.append(("expert parallelism", support.expert_parallel))
    if options.data_parallel_attention:
        attention = support.data_parallel_attention
        wanted.append(("data-parallel attention", attention.flag if attention is not None else None))
    if method != "none":
        wanted.append((f"{method} speculation", support.speculative.get(method)))
    if options.kv_cache_dtype == "fp8":
        wanted.append(("an FP8 KV cache", support.kv_cache_fp8))
    caching = support.prefix_caching
    if caching is not None:
        state = caching.enabled if options.prefix_caching else caching.disabled
        wanted.append((f"prefix caching {'on' if options.prefix_caching else 'off'}", state))
    elif options.prefix_caching:
        wanted.append(("prefix caching", None))
    if missing := [what for what, flag in wanted if flag is None]:
        raise RunnerError(f"{framework.name} has no launch flag for {', '.join(missing)}")
    draft = model.speculative_methods.get(method) if method != "none" else None  # None: the model's own head
    return " ".join(
        flag.format(ep=options.expert_parallel, draft_model=shlex.quote(model_argument(draft or "")))
        for _, flag in wanted
        if flag
    )


def build_launch_command(
    framework: FrameworkFacts,
    model: ModelFacts,
    tensor_parallel: int,
    port: int,
    max_model_len: int,
    data_parallel: int = 1,
    options: ServingOptions = PLAIN_DEPLOYMENT,
) -> list[str]:
    """The argv of the framework's launch template, filled in (``{tp}`` GPUs per replica, ``{dp}`` replicas), then
    the serving options' flags; the quantization flag is looked up by format (awq, gptq, gguf) first, then by
    quantization (fp8, int8...), and is empty when neither is listed. Under data-parallel attention the replica's
    GPUs are attention ranks: vLLM's are TP 1 × DP ``tp``, SGLang's TP ``tp`` with DP ``tp``."""
    flag = framework.quantization_flags.get(model.format) or framework.quantization_flags.get(model.quantization, "")
    attention = framework.serving_options.data_parallel_attention
    if options.data_parallel_attention and attention is not None:
        data_parallel = tensor_parallel * data_parallel
        tensor_parallel = 1 if attention.attention_tensor_parallel == "one" else tensor_parallel
    try:
        line = framework.launch_command.format(
            model=shlex.quote(model_argument(model.artifact_uri)),
            port=port,
            tp=tensor_parallel,
            dp=data_parallel,
            max_model_len=max_model_len,
            quantization_flag=flag,
        )
        line = f"{line} {serving_option_flags(framework, model, options)}"
    except (KeyError, IndexError) as error:
        raise RunnerError(f"launch command of {framework.name} has an unknown placeholder: {error}") from error
    argv = shlex.split(line)
    if not argv:
        raise RunnerError(f"launch command of {framework.name} is empty")
    search_path = os.pathsep.join(filter(None, [os.environ.get("PATH"), os.path.dirname(sys.executable)]))
    executable = shutil.which(argv[0], path=search_path)
    if executable is None:
        raise RunnerError(f"cannot start {framework.name}: `{argv[0]}` is not installed (not found on PATH)")
    return [executable, *argv[1:]]


class ServerProcess:
    """One running inference server; ``start`` blocks until healthy, ``stop`` is idempotent."""

    def __init__(
        self,
        argv: list[str],
        base_url: str,
        log: logging.Logger | Any | None = None,
        name: str = "server",
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.base_url = base_url.rstrip("/")
        self.log = log or logging.getLogger("benchmark_platform.inference_server")
        self.name = name
        self.env = env
        self.log_tail: collections.deque[str] = collections.deque(maxlen=LOG_TAIL_LINES)
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._spawned_at = 0.0

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_seconds: float, should_stop: Callable[[], bool] | None = None) -> None:
        """Spawn the server and wait until it is healthy; it is stopped again if it is not (or on interrupt)."""
        self.spawn()
        self.wait_until_healthy(timeout_seconds, should_stop)

    def spawn(self) -> None:
        """Start the process without waiting for it (``wait_until_healthy`` does)."""
        self.log.info(f"starting {self.name}: {shlex.join(self.argv)}")
        self._spawned_at = time.monotonic()
        self._process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group: stop() reaches the workers it spawns too
            env=None if self.env is None else os.environ | self.env,
        )
        self._reader = threading.Thread(target=self._stream_log, name=f"{self.name}-log", daemon=True)
        self._reader.start()

    def wait_until_healthy(self, timeout_seconds: float, should_stop: Callable[[], bool] | None = None) -> None:
        """Block until the spawned server answers a health path, at most ``timeout_seconds`` after it was spawned;
        on failure or interrupt (``should_stop`` true: ``RunInterrupted``) the server is stopped and the error
        raised."""
        try:
            self._wait_healthy(timeout_seconds, should_stop)
        except BaseException:
            self.stop()
            raise
        self.log.info(f"{self.name} is healthy at {self.base_url}")

    def _stream_log(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            line = line.rstrip()
            self.log_tail.append(line)
            self.log.info(f"[{self.name}] {line}")

    def _wait_healthy(self, timeout_seconds: float, should_stop: Callable[[], bool] | None) -> None:
        assert self._process is not None
        deadline = self._spawned_at + timeout_seconds
        pause = 0.05
        with httpx.Client(base_url=self.base_url, timeout=2.0, trust_env=False) as client:
            while True:
                if should_stop is not None and should_stop():
                    raise RunInterrupted(f"{self.name} start-up interrupted")
                code = self._process.poll()
                if code is not None:
                    if self._reader is not None:
                        self._reader.join(timeout=2)  # collect its last words for the message
                    raise RunnerError(f"{self.name} exited with code {code} during startup; {self._tail_text()}")
                for path in HEALTH_PATHS:
                    try:
                        with client.stream("GET", path) as response:  # the status only: the body is never read
                            if response.status_code == 200:
                                return
                    except httpx.HTTPError:
                        break  # not listening yet
                if time.monotonic() >= deadline:
                    raise RunnerError(f"{self.name} not healthy after {timeout_seconds:g} s; {self._tail_text()}")
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def _tail_text(self) -> str:
        tail = " | ".join(list(self.log_tail)[-5:])
        return f"last log lines: {tail}" if tail else "no log output"

    def terminate(self) -> None:
        """Send SIGTERM to the server's process group without waiting (``stop`` waits)."""
        if self._process is not None and self._process.poll() is None:
            self._signal_group(self._process, signal.SIGTERM)

    def stop(self, grace_seconds: float = 30.0) -> int | None:
        """SIGTERM the server's process group, SIGKILL it after ``grace_seconds``; returns the exit code. Whatever
        the server leaves in its group once it has ended (the workers of a server that crashed) is killed: a
        leftover would hold its GPUs."""
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            self._signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                self.log.warning(f"{self.name} ignored SIGTERM for {grace_seconds:g} s; killing it")
                self._signal_group(process, signal.SIGKILL)
                process.wait()
        self._signal_group(process, signal.SIGKILL)
        if self._reader is not None:
            self._reader.join(timeout=5)
        self.log.info(f"{self.name} stopped (exit code {process.returncode})")
        return process.returncode

    @staticmethod
    def _signal_group(process: subprocess.Popen[str], signum: int) -> None:
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            pass


class ServerGroup:
    """The servers of one deployment, one per replica: started together (each may take minutes to load its model),
    healthy together, stopped together. Whatever goes wrong while starting (a replica that dies or never gets
    healthy, an interrupt) stops every server already spawned."""

    def __init__(self, servers: list[ServerProcess], stop_grace_seconds: float = 30.0) -> None:
        if not servers:
            raise ValueError("a server group needs at least one server")
        self.servers = servers
        self.stop_grace_seconds = stop_grace_seconds

    @property
    def running(self) -> bool:
        return all(server.running for server in self.servers)

    @property
    def base_urls(self) -> list[str]:
        return [server.base_url for server in self.servers]

    def start(self, timeout_seconds: float, should_stop: Callable[[], bool] | None = None) -> None:
        try:
            for server in self.servers:
                server.spawn()
            for server in self.servers:  # each waits until timeout_seconds after its own spawn: a common deadline
                server.wait_until_healthy(timeout_seconds, should_stop)
        except BaseException:
            self.stop()
            raise

    def stop(self, grace_seconds: float | None = None) -> list[int | None]:
        """SIGTERM every server at once, then wait for each within one grace period; returns their exit codes."""
        grace = self.stop_grace_seconds if grace_seconds is None else grace_seconds
        for server in self.servers:
            server.terminate()
        deadline = time.monotonic() + grace
        return [server.stop(max(0.0, deadline - time.monotonic())) for server in self.servers]


def served_model(base_url: str, timeout_seconds: float = 10.0) -> dict[str, Any]:
    """The first model the server lists at /v1/models: its ``id`` (what requests must name) and ``owned_by``.
    At most MAX_MODELS_BODY_BYTES of the answer are read: a server streaming without end is an error, not a leak."""
    url = f"{base_url.rstrip('/')}/v1/models"
    try:
        with httpx.stream("GET", url, timeout=timeout_seconds, trust_env=False, headers=IDENTITY) as response:
            response.raise_for_status()
            body = read_body(response, MAX_MODELS_BODY_BYTES)
        model = dict(json.loads(body)["data"][0])
        model["id"] = str(model["id"])
        return model
    except (httpx.HTTPError, KeyError, IndexError, ValueError, TypeError, RecursionError) as error:
        message = " ".join(str(error).split())[:300]
        raise RunnerError(f"cannot read the served model from {url}: {message}") from error


def served_model_name(base_url: str, timeout_seconds: float = 10.0) -> str:
    """The first model id the server lists at /v1/models (what requests must name)."""
    return served_model(base_url, timeout_seconds)["id"]
