"""What a serving step costs, behind one interface, and which predictor answers for a GPU and engine.

The continuous-batching simulation (``serving_sim``) asks one question of a step: how many GPU seconds does a forward
pass take that runs ``tokens`` tokens through the model, computes ``pairs`` query-key pairs and reads or writes
``kv_tokens`` cached tokens? Two backends answer it:

- ``roofline``: spec-sheet peaks times the framework's efficiencies (``roofline.StepCosts``); it answers for every GPU
  and engine.
- ``kernels``: NVIDIA's measured kernel timings (``aiconfigurator-core``, ``kernel_costs``) where that package has
  silicon data for the GPU and engine; elsewhere it cannot answer.

``auto`` picks per GPU x engine and model kind (dense or mixture of experts) the backend with the lower validation
error (``AUTO_BACKEND``; the table and the errors behind it are in docs/simulator-accuracy.md). A backend that cannot
answer falls back to the roofline and says why in ``Predictor.fallback``: a result never changes predictor silently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, Protocol

from benchmark_platform.domain import ServingOptions
from benchmark_platform.runners.base import FrameworkFacts, HardwareFacts, ModelFacts

PredictorChoice = Literal["auto", "roofline", "kernels"]
PREDICTOR_CHOICES: tuple[PredictorChoice, ...] = ("auto", "roofline", "kernels")
ModelKind = Literal["dense", "moe"]
# What a result's data version ends with where the measured tables costed only an MoE model's expert layers and the
# roofline the rest (``kernel_costs.MoeLayerStepCosts``; ``ranking.predictors`` labels such results apart).
MOE_LAYERS_ONLY = "(MoE layers; attention, dense layers: roofline)"
# (GPU type, engine, model kind) where ``auto`` asks the measured kernels first; everything else gets the roofline.
# Chosen by validation error (docs/simulator-accuracy.md, "Which predictor answers"): where the mean of the kernels'
# per-metric median errors over the validation rows of that GPU, engine and model kind was below the roofline's. The
# dense pairs' per-request and per-sequence costs were fitted under the roofline; their calibration rows came out
# further off under the kernels (said in the doc), the validation rows nearer, and the validation rows decide.
AUTO_BACKEND: dict[tuple[str, str, ModelKind], PredictorChoice] = {
    key: "kernels"
    for key in (
        ("A100-80GB", "sglang", "dense"),
        ("A100-80GB", "tensorrt-llm", "dense"),
        ("H100-SXM", "sglang", "dense"),
        ("H100-SXM", "vllm", "moe"),
        ("H100-SXM", "sglang", "moe"),
        ("H100-SXM", "tensorrt-llm", "moe"),
        ("H200", "vllm", "moe"),
        ("H200", "sglang", "moe"),
        ("H200", "tensorrt-llm", "moe"),
        ("B200", "vllm", "moe"),
        ("B200", "sglang", "moe"),
        ("B200", "tensorrt-llm", "moe"),
    )
}


@dataclass(frozen=True)
class Predictor:
    """What predicted a simulated result: stored in ``detailed_metrics.predictor`` and shown beside answers."""

    backend: Literal["roofline", "kernels"]
    version: str  # the backend's own version (this package's model revision, or aiconfigurator-core's)
    data_version: str  # where its figures come from (spec sheets, or a measured-kernel table: system/engine/version)
    in_measured_range: bool | None  # whether the shape lay inside the backend's measured range (None: not measured)
    requested: PredictorChoice = "auto"
    fallback: str | None = None  # why the requested backend did not answer, when it did not

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class StepCostModel(Protocol):
    """Seconds of GPU time per forward pass of one replica; every argument may be a number or a numpy array."""

    tensor_parallel: int
    predictor: Predictor
    step_overhead_s: float  # host time per forward pass the GPU time does not hold (a fitted constant per backend)

    def gpu_seconds(self, tokens, pairs, kv_tokens): ...

    def compute_bound(self, tokens, pairs, kv_tokens): ...


def model_kind(model: ModelFacts) -> ModelKind:
    return "dense" if model.moe is None else "moe"


class KernelsUnavailable(RuntimeError):
    """The measured-kernel backend cannot answer for this model, GPU and engine (the message says why)."""


def step_cost_model(
    model: ModelFacts,
    hardware: HardwareFacts,
    framework: FrameworkFacts,
    *,
    tensor_parallel: int,
    predictor: PredictorChoice = "auto",
    options: ServingOptions | None = None,
) -> StepCostModel:
    """The step-cost model that answers for this replica under the serving ``options``: the requested backend, or the
    roofline with the reason (``KernelsUnavailable``: a GPU, engine, precision or shape without measurements, or
    options the measured kernels leave to the roofline)."""
    from benchmark_platform.runners.simulated import roofline

    if predictor not in PREDICTOR_CHOICES:
        raise ValueError(f"predictor must be one of {', '.join(PREDICTOR_CHOICES)}, got {predictor!r}")
    wants_kernels = predictor == "kernels" or (
        predictor == "auto" and AUTO_BACKEND.get((hardware.gpu_type, framework.name, model_kind(model))) == "kernels"
    )
    fallback = None
    if wants_kernels:
        try:
            from benchmark_platform.runners.simulated import kernel_costs

            return kernel_costs.kernel_step_costs(
                model, hardware, framework, tensor_parallel=tensor_parallel, requested=predictor, options=options
            )
        except ImportError as error:
            fallback = f"measured kernels unavailable ({error}); roofline used"
        except KernelsUnavailable as error:
            fallback = f"{error}; roofline used"
    return roofline.step_costs(
        model,
        hardware,
        framework,
        tensor_parallel=tensor_parallel,
        requested=predictor,
        fallback=fallback,
        options=options,
    )
