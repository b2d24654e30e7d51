"""Which predictor made a simulated number, said in a few words beside it (issue 19): a roofline estimate and a
measured-kernel one can differ by tens of percent, so a reader of the report or of ``recommend`` must be able to
tell them apart without opening ``detailed_metrics``. Pure: the store loads the predictors, these functions label
them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
    labels = _per_configuration(configurations, predictors, predictor_label)
    return pd.Series([" + ".join(texts) or None for texts in labels], index=configurations.index, dtype=object)


def held_out_phrases(configurations: pd.DataFrame, predictors: pd.DataFrame) -> pd.Series:
    """Per configuration, what the validation rows say of each predictor behind its simulated numbers: a tuple of
    "label: median |error| ... on validation rows of ..." phrases (``held_out.held_out_text``); empty where its
    numbers are not simulated or its results predate ``predictor.held_out_error``."""

    def phrase(predictor: Mapping[str, Any]) -> str | None:
        held_out = predictor.get("held_out_error")
        return f"{predictor_label(predictor)}: {held_out_text(held_out)}" if held_out else None

    phrases = _per_configuration(configurations, predictors, phrase)
    return pd.Series(phrases, index=configurations.index, dtype=object)


def _per_configuration(
    configurations: pd.DataFrame,
    predictors: pd.DataFrame,
    text_of: Callable[[Mapping[str, Any]], str | None],
) -> list[tuple[str, ...]]:
    """Per configuration, the distinct texts (sorted) of the predictors behind its deployment's simulated results
    (``text_of`` a predictor dict; None leaves it out); none where the configuration's numbers are not simulated (every
    configuration counts as simulated where the frame does not say)."""
    if configurations.empty:
        return []
    texts: dict[tuple, set[str]] = {}
    for row in predictors.itertuples(index=False):
        if (text := text_of(row.predictor)) is not None:
            texts.setdefault(tuple(getattr(row, column) for column in DEPLOYMENT_KEY), set()).add(text)
    keys = configurations[list(DEPLOYMENT_KEY)].itertuples(index=False, name=None)
    simulated = configurations["simulated"] if "simulated" in configurations else [True] * len(configurations)
    return [tuple(sorted(texts.get(key, ()))) if shown else () for key, shown in zip(keys, simulated, strict=True)]


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
