"""Which predictor made a simulated number, said in a few words beside it (issue 19): a roofline estimate and a
measured-kernel one can differ by tens of percent, so a reader of the report or of ``recommend`` must be able to
tell them apart without opening ``detailed_metrics``. Pure: the store loads the predictors, these functions label
them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from benchmark_platform.runners.simulated.held_out import held_out_text
from benchmark_platform.runners.simulated.step_costs import MOE_LAYERS_ONLY

# A deployment as the results name it: the key a configuration's simulated results share.
DEPLOYMENT_KEY = ("model_version_id", "hardware_config_id", "framework_id", "tensor_parallel", "batch_size")


def predictor_label(predictor: Mapping[str, Any]) -> str:
    """``detailed_metrics.predictor`` as a short phrase: "roofline v3", "kernels (aiconfigurator 0.12.0)" (or "MoE
    kernels (aiconfigurator 0.12.0) + roofline" where the tables costed an MoE model's expert layers only), plus
    "fallback from kernels" when the requested backend could not answer and "outside measured range" when the
    kernel tables were extrapolated."""
    backend, version = predictor.get("backend", "unknown"), predictor.get("version")
    if backend == "kernels":
        text = f"kernels (aiconfigurator {version})"  # its version is the aiconfigurator-core package's
        if str(predictor.get("data_version", "")).endswith(MOE_LAYERS_ONLY):
            text = f"MoE {text} + roofline"
    else:
        text = f"{backend} v{version}" if version else str(backend)
    if predictor.get("fallback"):
        text += f", fallback from {predictor.get('requested', 'the requested backend')}"
    if predictor.get("in_measured_range") is False:
        text += ", outside measured range"
    return text


def predictor_labels(configurations: pd.DataFrame, predictors: pd.DataFrame) -> pd.Series:
    """Per configuration, the labels of the predictors behind its simulated numbers (``predictors``: DEPLOYMENT_KEY
    and a ``predictor`` dict per row), " + "-joined when its buckets had different ones; None where its numbers are
    not simulated (a measured deployment may keep simulated results beside its own)."""
    empty = pd.Series([None] * len(configurations), index=configurations.index, dtype=object)
    if predictors.empty or configurations.empty:
        return empty
    labelled = predictors.assign(label=[predictor_label(predictor) for predictor in predictors["predictor"]])
    joined = labelled.groupby(list(DEPLOYMENT_KEY))["label"].agg(lambda labels: " + ".join(sorted(set(labels))))
    lookup = dict(zip(joined.index, joined.to_numpy(), strict=True))
    keys = configurations[list(DEPLOYMENT_KEY)].itertuples(index=False, name=None)
    shown = _simulated(configurations)
    return pd.Series(
        [lookup.get(key) if simulated else None for key, simulated in zip(keys, shown, strict=True)],
        index=configurations.index,
        dtype=object,
    )


def _simulated(configurations: pd.DataFrame) -> pd.Series | list[bool]:
    """Whose numbers are simulated (every configuration, where the frame does not say)."""
    return configurations["simulated"] if "simulated" in configurations else [True] * len(configurations)


def held_out_phrases(configurations: pd.DataFrame, predictors: pd.DataFrame) -> pd.Series:
    """Per configuration, what the validation rows say of each predictor behind its simulated numbers: a tuple of
    "label: median |error| ... on validation rows of ..." phrases (``held_out.held_out_text``); empty where its
    numbers are not simulated (a measured deployment may keep simulated results beside its own) or its results
    predate ``predictor.held_out_error``."""
    empty = pd.Series([()] * len(configurations), index=configurations.index, dtype=object)
    if predictors.empty or configurations.empty:
        return empty
    phrases: dict[tuple, set[str]] = {}
    for row in predictors.itertuples(index=False):
        predictor = row.predictor
        if predictor.get("held_out_error"):
            key = tuple(getattr(row, column) for column in DEPLOYMENT_KEY)
            text = f"{predictor_label(predictor)}: {held_out_text(predictor['held_out_error'])}"
            phrases.setdefault(key, set()).add(text)
    keys = configurations[list(DEPLOYMENT_KEY)].itertuples(index=False, name=None)
    return pd.Series(
        [
            tuple(sorted(phrases.get(key, ()))) if simulated else ()
            for key, simulated in zip(keys, _simulated(configurations), strict=True)
        ],
        index=configurations.index,
        dtype=object,
    )


def held_out_block(phrase_lists: Iterable[tuple[str, ...]], indent: str = "  ") -> list[str]:
    """The distinct held-out phrases of the configurations shown, as lines under one heading (none: no lines)."""
    distinct = sorted({phrase for phrases in phrase_lists for phrase in phrases})
    if not distinct:
        return []
    heading = (
        "Held-out error of the predictors above (simulated vs published on validation rows, which fitted no constant; "
        "docs/simulator-accuracy.md says where they chose the predictor):"
    )
    return [heading, *(f"{indent}{phrase}" for phrase in distinct)]


def numbers_label(source: str, predictor: str | None) -> str:
    """Where a configuration's numbers come from, compactly: "simulated · roofline v3", or its source."""
    return f"simulated · {predictor}" if source == "simulated" and predictor else source
