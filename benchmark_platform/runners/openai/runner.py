"""The ``openai`` runner: measures a live OpenAI-compatible server with the load generator (label "measured";
"simulated" when the server is the local emulator, whose latencies are injected).

Either point it at a running server (``base_url``) or let it launch the config's framework from the catalog launch
command. Launched servers stay up across consecutive configs of the same (framework, model version, hardware,
tensor-parallel degree) and are replaced when that changes; ``close()`` stops them.

Deployment shape: a node runs ``replicas = gpu_count / tensor_parallel`` replicas and ``batch_size`` is the
concurrency per replica. A launched deployment is measured whole, at ``batch_size x replicas`` concurrent requests:
when the framework's launch template takes ``{dp}`` (vLLM's ``--data-parallel-size``, SGLang's ``--dp-size``) one
server runs every replica; otherwise one server per replica is started, replica ``r`` on its own port and seeing only
GPUs ``[r * tp, (r + 1) * tp)`` (``CUDA_VISIBLE_DEVICES``, ``HIP_VISIBLE_DEVICES`` on AMD), and the load is dealt
round-robin over them (closed-loop user ``i`` stays on replica ``i mod replicas``, so each gets ``batch_size``).
Throughput is then the node's (every replica's tokens over one window), percentiles are over all requests and
per-GPU figures divide by ``gpu_count``. An external ``base_url`` is one replica: it is measured at ``batch_size``
and its figures are scaled by the node's replicas, as ``detailed_metrics.deployment`` says. Energy per output token
comes from the NVML energy counters of the GPUs the servers use, read around the measurement (absent without a GPU).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from benchmark_platform.runners.base import Measurement, RunnerError, RunSpec
from benchmark_platform.runners.gpu_monitor import energy_counter_joules
from benchmark_platform.runners.launcher import (
    ServerGroup,
    ServerProcess,
    build_launch_command,
    free_port,
    replica_devices,
    served_model,
    serves_data_parallel,
    visible_devices_env,
)
from benchmark_platform.runners.openai.datasets import DatasetError, named_dataset
from benchmark_platform.runners.openai.profiles import ProfileSettings, measure_profile
from benchmark_platform.runners.openai.protocol import LoadSettings
from benchmark_platform.runners.serving_metrics import deployment_figures

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
    - ``profile``: load-profile options (``runners.openai.profiles.ProfileSettings`` fields: kind, rate, burstiness,
      goals, repeats, client_processes...; a sweep is not allowed: a config has one result). The requests
      follow the use case's named dataset; the batch size is the concurrency unless the profile sets one.
    - ``request_timeout_seconds``, ``max_error_fraction`` (the run fails above it), ``accuracy_tasks`` (scored
      only when the workload measures accuracy).
    - ``startup_timeout_seconds`` and ``stop_grace_seconds`` for launched servers, ``log`` (a logger, e.g. the
      op's ``context.log``) receiving the servers' output, ``should_stop`` polled to abort a start-up or a load
      (raises ``RunInterrupted``; ``close()`` then stops the servers).
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
        if request_rate is not None and (self.profile.get("kind", "poisson") not in ("constant", "poisson")):
            raise ValueError(
                f"request_rate applies to the constant and poisson profiles, not to {self.profile['kind']}"
            )
        if request_rate is not None and "rate" in self.profile:
            raise ValueError("give request_rate or the profile's rate, not both")
        self.startup_timeout_seconds = startup_timeout_seconds
        self.stop_grace_seconds = stop_grace_seconds
        self.log = log or logging.getLogger("benchmark_platform.runners.openai")
        self.should_stop = should_stop
        self._servers: ServerGroup | None = None
        self._server_key: tuple[str, ...] | None = None
        self._owned_by: str | None = None
        self._served_model: str | None = None

    def run(self, spec: RunSpec) -> Measurement:
        base_urls, model, server_detail = self._endpoint(spec)
        # Launched servers run every replica of the node; an external endpoint is measured as one replica.
        whole_node = bool(server_detail["launched"])
        batch = spec.batch_size * (spec.replicas if whole_node else 1)
        num_requests = self.num_requests
        if num_requests is None and self.duration_seconds is None:
            num_requests = max(5 * batch, 50)
        try:
            settings = LoadSettings(
                base_url=base_urls[0],
                replica_urls=tuple(base_urls[1:]),
                model=model,
                input_tokens=spec.sequence_length,
                output_tokens=spec.workload.typical_output_tokens,
                concurrency=batch,
                num_requests=num_requests,
                duration_seconds=self.duration_seconds,
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
        gpus = list(range(spec.hardware.gpu_count if whole_node else spec.tensor_parallel))
        energy_before, started = energy_counter_joules(gpus), time.monotonic()
        measurement = measure_profile(settings, profile, self.should_stop, detail)[0]
        energy_after, seconds = energy_counter_joules(gpus), time.monotonic() - started
        measurement.detailed_metrics["tool_versions"][spec.framework.name] = spec.framework.version
        self._add_deployment_figures(measurement, spec, server_detail, energy_before, energy_after, seconds)
        if spec.framework.name == EMULATOR or server_detail.get("owned_by") == EMULATOR:
            # The local emulator's latencies are injected, not a GPU's: never let them pass as a measurement.
            measurement.runner = "simulated"
            measurement.detailed_metrics["simulated_by"] = "the local OpenAI-compatible emulator (injected latencies)"
        return measurement

    @staticmethod
    def _add_deployment_figures(
        measurement: Measurement,
        spec: RunSpec,
        server_detail: dict[str, Any],
        energy_before: float | None,
        energy_after: float | None,
        seconds: float,
    ) -> None:
        """Node, per-GPU, cost and energy figures (revision 0002's columns) from what was measured."""
        whole_node = bool(server_detail["launched"])
        scale = 1 if whole_node else spec.replicas
        measured_output = measurement.throughput_tokens_sec
        tokens_per_request = spec.sequence_length + spec.workload.typical_output_tokens
        measured_total = measurement.rps_sustained * tokens_per_request
        power = (energy_after - energy_before) / seconds if energy_before is not None and energy_after else None
        figures, basis = deployment_figures(
            spec.hardware,
            output_tokens_per_s_node=measured_output * scale,
            total_tokens_per_s_node=measured_total * scale,
            tpot_p50_ms=measurement.tpot_p50_ms,
            node_power_watts=power * scale if power and power > 0 else None,
        )
        for column, value in figures.items():
            setattr(measurement, column, value)
        measurement.rps_sustained *= scale
        servers = len(server_detail["replicas"]) if whole_node else 0
        if not whole_node:
            how = f"one replica measured (an external endpoint), x {spec.replicas} replicas"
        elif servers > 1:
            how = (
                f"measured on the whole node: {servers} servers, one per replica, {spec.batch_size} concurrent "
                "requests each (round-robin); throughput is their sum over one window, percentiles over all requests"
            )
        elif spec.replicas > 1:
            how = "measured on the whole node (one data-parallel server)"
        else:
            how = "measured on the whole node (one replica)"
        measurement.detailed_metrics["deployment"] = {
            "tensor_parallel": spec.tensor_parallel,
            "replicas": spec.replicas,
            "gpu_count": spec.hardware.gpu_count,
            "servers": servers if whole_node else None,
            "scaled_from_one_replica": not whole_node,
            "node_figures": f"{how}; per GPU = node / gpu_count",
        }
        if servers > 1:
            measurement.detailed_metrics["deployment"]["server_metrics_from"] = server_detail["base_url"]
        measurement.detailed_metrics["cost"] = {**basis, "note": "node price / node tokens per hour"}
        measurement.detailed_metrics["energy"] = (
            "NVML energy counters of the servers' GPUs over the measurement / output tokens"
            if power
            else "not measured (no NVML energy counter)"
        )
        measurement.detailed_metrics["total_tokens"] = "requests/s x (prompt + output tokens asked for)"

    def _endpoint(self, spec: RunSpec) -> tuple[list[str], str, dict[str, Any]]:
        """The servers to measure (one, or one per replica) and the model name to request, launching (or reusing)
        them when needed."""
        if self.base_url is not None:
            served = served_model(self.base_url)
            detail = {"launched": False, "base_url": self.base_url, "owned_by": served.get("owned_by")}
            return [self.base_url], self.model_name or served["id"], detail
        key = (
            spec.framework.name,
            spec.framework.version,
            spec.model.version_key,
            spec.hardware.name,
            str(spec.tensor_parallel),
            repr(spec.options),  # other options, other launch flags
        )
        if self._servers is None or self._server_key != key or not self._servers.running:
            self.close()
            servers = self._launch(spec)
            try:
                models = [served_model(url) for url in servers.base_urls]
            except RunnerError:
                servers.stop()
                raise
            if len({model["id"] for model in models}) > 1:
                servers.stop()
                raise RunnerError(f"the replicas serve different models: {sorted({m['id'] for m in models})}")
            self._servers, self._server_key = servers, key
            self._served_model = self.model_name or models[0]["id"]
            self._owned_by = models[0].get("owned_by")
        assert self._servers is not None and self._served_model is not None
        first = self._servers.servers[0]
        return (
            self._servers.base_urls,
            self._served_model,
            {
                "launched": True,
                "base_url": first.base_url,
                "command": first.argv,
                "owned_by": self._owned_by,
                "replicas": [
                    {"base_url": server.base_url, "command": server.argv, "env": server.env}
                    for server in self._servers.servers
                ],
            },
        )

    def _launch(self, spec: RunSpec) -> ServerGroup:
        """Start the deployment's servers and wait until all are healthy: one data-parallel server where the
        template takes ``{dp}``, else one per replica on its own port and GPUs. An expert-parallel deployment is one
        server per replica too: one server's data-parallel ranks would spread the experts over the whole node."""
        max_model_len = spec.sequence_length + spec.workload.typical_output_tokens + MAX_MODEL_LEN_MARGIN
        data_parallel = serves_data_parallel(spec.framework) and spec.options.expert_parallel == 1
        count = 1 if data_parallel else spec.replicas
        servers: list[ServerProcess] = []
        ports: set[int] = set()
        for replica in range(count):
            port = free_port(LAUNCH_HOST)
            while port in ports:  # the ports are bound only when the servers start: never hand one out twice
                port = free_port(LAUNCH_HOST)
            ports.add(port)
            argv = build_launch_command(
                spec.framework,
                spec.model,
                spec.tensor_parallel,
                port,
                max_model_len,
                data_parallel=spec.replicas if data_parallel else 1,
                options=spec.options,
            )
            env = None
            name = spec.framework.name
            if count > 1:
                devices = replica_devices(spec.tensor_parallel, replica)
                env = visible_devices_env(spec.hardware.vendor, devices)
                name = f"{spec.framework.name}[{replica}]"
            servers.append(ServerProcess(argv, f"http://{LAUNCH_HOST}:{port}", self.log, name=name, env=env))
        group = ServerGroup(servers, self.stop_grace_seconds)
        group.start(self.startup_timeout_seconds, self.should_stop)
        return group

    def close(self) -> None:
        """Stop the launched servers, if any."""
        servers, self._servers, self._server_key, self._served_model = self._servers, None, None, None
        if servers is not None:
            servers.stop(self.stop_grace_seconds)
