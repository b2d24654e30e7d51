"""Every constant of the serving model that was fitted on published measurements, with the rows it was fitted on.

Held-out discipline: a constant may cite only rows whose ``role`` is ``calibration`` in ``benchmarks/data/``; the rows
marked ``validation`` never feed a constant, so the accuracy quoted on them is evidence
(``test_calibration.py`` fails when a constant cites a validation row or a row that does not exist). Each constant
says what it stands for; docs/simulator-accuracy.md lists them with the figures before and after the fit.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FittedConstant:
    value: float
    unit: str
    fitted_on: tuple[str, ...]  # ids of calibration rows in benchmarks/data/*.yaml
    stands_for: str


STEP_OVERHEAD = FittedConstant(
    1.8e-3,
    "s per step",
    ("vllm-ci-latency-8b-h100",),
    "host work per forward pass the GPU does not overlap (scheduling, sampling, launches)",
)
ALLREDUCE_LATENCY_NVLINK = FittedConstant(
    25e-6,
    "s per all-reduce",
    ("vllm-ci-latency-70b-h100x4",),
    "latency of one all-reduce over NVLink/NVSwitch; two per layer per step under tensor parallelism",
)
EAGER_PREFILL_PER_LAYER = FittedConstant(
    0.25e-3,
    "s per layer of a step with prompt tokens",
    ("sgl060-sglang-70b-h100x4-rps4",),
    "kernel launches from Python in engines that run prompt steps without CUDA graphs (SGLang, vLLM V0, TGI, LMDeploy)",
)

FITTED: dict[str, FittedConstant] = {
    "STEP_OVERHEAD": STEP_OVERHEAD,
    "ALLREDUCE_LATENCY_NVLINK": ALLREDUCE_LATENCY_NVLINK,
    "EAGER_PREFILL_PER_LAYER": EAGER_PREFILL_PER_LAYER,
}
