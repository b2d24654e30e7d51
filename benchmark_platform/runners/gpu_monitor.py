"""GPU utilization and memory sampled from NVML during a run; None when no NVIDIA GPU (or driver) is present."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

SAMPLE_INTERVAL_SECONDS = 0.1


@dataclass
class GpuSamples:
    """What was seen: mean utilization over GPUs and time, the most memory in use (all sampled GPUs together)."""

    devices: list[str] = field(default_factory=list)
    utilization_pct: list[float] = field(default_factory=list)
    memory_used_bytes: list[int] = field(default_factory=list)
    unavailable_reason: str | None = None

    @property
    def mean_utilization_pct(self) -> float | None:
        return sum(self.utilization_pct) / len(self.utilization_pct) if self.utilization_pct else None

    @property
    def peak_memory_used_gb(self) -> float | None:
        return max(self.memory_used_bytes) / 1e9 if self.memory_used_bytes else None

    def as_dict(self) -> dict[str, object]:
        return {
            "devices": self.devices,
            "samples": len(self.utilization_pct),
            "mean_utilization_pct": self.mean_utilization_pct,
            "peak_memory_used_gb": self.peak_memory_used_gb,
            "unavailable_reason": self.unavailable_reason,
            "note": "NVML device-wide figures: memory includes every process on the sampled GPUs",
        }


def _visible_indices(count: int) -> list[int]:
    """The GPUs CUDA_VISIBLE_DEVICES names (NVML itself ignores it); all of them when unset or not plain indices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return list(range(count))
    parts = [part.strip() for part in visible.split(",") if part.strip()]
    if all(part.isdigit() for part in parts):
        return [int(part) for part in parts if int(part) < count]
    return list(range(count))


class GpuSampler:
    """Context manager: samples every visible GPU in a background thread while the block runs."""

    def __init__(self, interval_seconds: float = SAMPLE_INTERVAL_SECONDS) -> None:
        self.interval_seconds = interval_seconds
        self.samples = GpuSamples()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._handles: list[object] = []

    def __enter__(self) -> GpuSampler:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as error:  # no library, no driver, no GPU: all mean "not measured"
            self.samples.unavailable_reason = f"NVML unavailable: {error}"
            return self
        indices = _visible_indices(pynvml.nvmlDeviceGetCount())
        if not indices:
            self.samples.unavailable_reason = "no GPU visible"
            pynvml.nvmlShutdown()
            return self
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in indices]
        self.samples.devices = [str(pynvml.nvmlDeviceGetName(handle)) for handle in self._handles]
        self._thread = threading.Thread(target=self._loop, name="gpu-sampler", daemon=True)
        self._thread.start()
        return self

    def _sample_once(self) -> None:
        import pynvml

        utilization = [pynvml.nvmlDeviceGetUtilizationRates(handle).gpu for handle in self._handles]
        memory = [pynvml.nvmlDeviceGetMemoryInfo(handle).used for handle in self._handles]
        self.samples.utilization_pct.append(sum(utilization) / len(utilization))
        self.samples.memory_used_bytes.append(sum(memory))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            self._sample_once()

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._sample_once()
        import pynvml

        pynvml.nvmlShutdown()


def energy_counter_joules(indices: list[int]) -> float | None:
    """The summed NVML energy counters (joules since driver load) of the GPUs at ``indices``; None without NVML, a
    GPU, or a counter (before Volta). Read it before and after a window: the difference is what those GPUs drew."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no library, no driver, no GPU
        return None
    try:
        count = pynvml.nvmlDeviceGetCount()
        if not indices or max(indices) >= count:
            return None
        handles = [pynvml.nvmlDeviceGetHandleByIndex(index) for index in indices]
        return sum(pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) for handle in handles) / 1e3
    except Exception:  # a GPU without the counter
        return None
    finally:
        pynvml.nvmlShutdown()
