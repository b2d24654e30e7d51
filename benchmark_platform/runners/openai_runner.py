"""The ``openai`` runner: measures a live OpenAI-compatible server with the load generator (label "measured";
"simulated" when the server is the local emulator, whose latencies are injected).

Either point it at a running server (``base_url``) or let it launch the config's framework from the catalog launch
command. A launched server stays up across consecutive configs of the same (framework, model version, hardware) and
is replaced when that changes; ``close()`` stops it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from benchmark_platform.runners.base import Measurement, RunnerError, RunSpec
from benchmark_platform.runners.datasets import DatasetError, named_dataset
from benchmark_platform.runners.launcher import ServerProcess, build_launch_command, free_port, served_model
from benchmark_platform.runners.loadgen import LoadSettings
from benchmark_platform.runners.profiles import ProfileSettings, measure_profile

# Room above prompt + output for the chat template and the prompt-length calibration.
MAX_MODEL_LEN_MARGIN = 128
LAUNCH_HOST = "127.0.0.1"
EMULATOR = "emulator"  # the framework name and the owned_by that `benchmark-platform emulate-server` reports


class OpenAIRunner:
    """Options:

    - ``base_url``: measure this server instead of launching one; ``model_name`` names the model to request
      (default: the first id of its /v1/models).
    - ``num_requests`` (default max(5 × batch size, 50)) or ``duration_seconds``; ``request_rate`` switches to
      open-loop Poisson arrivals (the batch size then caps requests in flight); ``warmup_requests`` (default one
      per concurrent request).
    - ``profile``: load-profile options (``runners.profiles.ProfileSettings`` fields: kind, rate, burstiness,
      goals, repeats, client_processes...; a sweep is not allowed: a config has one result). The requests
      follow the use case's named dataset; the batch size is the concurrency unless the profile sets one.
    - ``request_timeout_seconds``, ``max_error_fraction`` (the run fails above it), ``accuracy_tasks`` (scored
      only when the workload measures accuracy).
    - ``startup_timeout_seconds`` and ``stop_grace_seconds`` for launched servers, ``log`` (a logger, e.g. the
      op's ``context.log``) receiving the server's output, ``should_stop`` polled to abort (raises
      ``RunInterrupted``).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model_name: str | None = None,
        num_requests: int | None = None,
        duration_seconds: float | None = None,
        request_rate: float | None = None,
        warmup_requests: int | None = None,
        request_timeout_seconds: float = 120.0,
        max_error_fraction: float = 0.05,
        accuracy_tasks: int = 50,
        profile: dict[str, Any] | None = None,
        startup_timeout_seconds: float = 1200.0,
        stop_grace_seconds: float = 30.0,
        log: logging.Logger | Any | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        self.base_url = base_url
        self.model_name = model_name
        self.num_requests = num_requests
        self.duration_seconds = duration_seconds
        self.request_rate = request_rate
        self.warmup_requests = warmup_requests
        self.request_timeout_seconds = request_timeout_seconds
        self.max_error_fraction = max_error_fraction
        self.accuracy_tasks = accuracy_tasks
        self.profile = dict(profile or {})
        if self.profile.get("kind") == "sweep":
            raise ValueError("the sweep profile gives several results; a config has one (use bench-endpoint)")
        self.startup_timeout_seconds = startup_timeout_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.log = log or logging.getLogger("benchmark_platform.runners.openai")
        self.should_stop = should_stop
        self._server: ServerProcess | None = None
        self._server_key: tuple[str, ...] | None = None
        self._owned_by: str | None = None
        self._served_model: str | None = None

    def run(self, spec: RunSpec) -> Measurement:
        base_url, model, server_detail = self._endpoint(spec)
        batch = spec.batch_size
        num_requests = self.num_requests
        if num_requests is None and self.duration_seconds is None:
            num_requests = max(5 * batch, 50)
        try:
            settings = LoadSettings(
                base_url=base_url,
                model=model,
                input_tokens=spec.sequence_length,
                output_tokens=spec.workload.typical_output_tokens,
                concurrency=batch,
                num_requests=num_requests,
                duration_seconds=self.duration_seconds,
                request_rate=self.request_rate,
                warmup_requests=self.warmup_requests,
                chat=spec.workload.chat,
                ignore_eos=spec.framework.supports_ignore_eos,
                completions_path=spec.framework.completions_path,
                chat_completions_path=spec.framework.chat_completions_path,
                request_timeout_seconds=self.request_timeout_seconds,
                max_error_fraction=self.max_error_fraction,
                sla_ttft_ms=spec.workload.sla_ttft_p90_ms,
                sla_tpot_ms=spec.workload.sla_tpot_p90_ms,
                accuracy_tasks=self.accuracy_tasks if spec.workload.measure_accuracy else 0,
                seed=spec.seed,
            )
            workload = spec.workload
            kind = self.profile.get("kind") or ("poisson" if self.request_rate else "concurrent")
            profile = ProfileSettings(
                **(
                    {"kind": kind, "rate": self.request_rate, "concurrency": batch}
                    | self.profile
                    | {"dataset": named_dataset(workload.dataset, spec.sequence_length, workload.typical_output_tokens)}
                )
            )
        except (ValidationError, DatasetError) as error:
            raise RunnerError(f"cannot build the load for this config: {error}") from error
        detail = {
            "server": server_detail,
            "config": {
                "model_version": spec.model.version_key,
                "hardware": spec.hardware.name,
                "framework": f"{spec.framework.name} {spec.framework.version}",
                "workload": spec.workload.name,
            },
        }
        measurement = measure_profile(settings, profile, self.should_stop, detail)[0]
        measurement.detailed_metrics["tool_versions"][spec.framework.name] = spec.framework.version
        if spec.framework.name == EMULATOR or server_detail.get("owned_by") == EMULATOR:
            # The local emulator's latencies are injected, not a GPU's: never let them pass as a measurement.
            measurement.runner = "simulated"
            measurement.detailed_metrics["simulated_by"] = "the local OpenAI-compatible emulator (injected latencies)"
        return measurement

    def _endpoint(self, spec: RunSpec) -> tuple[str, str, dict[str, Any]]:
        """The server to measure and the model name to request, launching (or reusing) one when needed."""
        if self.base_url is not None:
            served = served_model(self.base_url)
            detail = {"launched": False, "base_url": self.base_url, "owned_by": served.get("owned_by")}
            return self.base_url, self.model_name or served["id"], detail
        key = (spec.framework.name, spec.framework.version, spec.model.version_key, spec.hardware.name)
        if self._server is None or self._server_key != key or not self._server.running:
            self.close()
            port = free_port(LAUNCH_HOST)
            max_model_len = spec.sequence_length + spec.workload.typical_output_tokens + MAX_MODEL_LEN_MARGIN
            argv = build_launch_command(spec.framework, spec.model, spec.hardware.gpu_count, port, max_model_len)
            server = ServerProcess(argv, f"http://{LAUNCH_HOST}:{port}", self.log, name=spec.framework.name)
            server.start(self.startup_timeout_seconds)
            try:
                served = served_model(server.base_url)
            except RunnerError:
                server.stop(self.stop_grace_seconds)
                raise
            self._server, self._server_key, self._served_model = server, key, self.model_name or served["id"]
            self._owned_by = served.get("owned_by")
        assert self._server is not None and self._served_model is not None
        return (
            self._server.base_url,
            self._served_model,
            {
                "launched": True,
                "base_url": self._server.base_url,
                "command": self._server.argv,
                "owned_by": self._owned_by,
            },
        )

    def close(self) -> None:
        """Stop the launched server, if any."""
        server, self._server, self._server_key, self._served_model = self._server, None, None, None
        if server is not None:
            server.stop(self.stop_grace_seconds)
