"""TOPSIS (Hwang & Yoon, 1981): how close each alternative is to the ideal and how far from the anti-ideal.

Edge cases, decided once here so every caller ranks the same way:

* A criterion equal for every alternative (a constant or all-zero column) has ideal == anti-ideal, so it adds
  nothing to either distance: it cannot change the order. A zero column is normalised to zeros, not divided by zero.
* NaN or infinite values are rejected: silently dropping an alternative or a criterion would change what is
  compared. Callers decide what a missing value means before calling (see ``rankings``).
* Weights are normalised to sum to 1; negative or non-finite weights, or weights that are all zero, are rejected.
* When every alternative sits at the ideal and the anti-ideal at once (d+ + d- == 0: one alternative, or all
  identical on every weighted criterion), nothing beats any of them, so each gets C = 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def _validated(matrix: ArrayLike, weights: ArrayLike, benefit: ArrayLike) -> tuple[np.ndarray, ...]:
    values = np.asarray(matrix, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"matrix must be 2-D (alternatives x criteria), got shape {values.shape}")
    n_criteria = values.shape[1]
    if n_criteria == 0:
        raise ValueError("matrix has no criteria")
    weight_vector = np.asarray(weights, dtype=float).reshape(-1)
    benefit_vector = np.asarray(benefit).reshape(-1)
    if weight_vector.shape[0] != n_criteria or benefit_vector.shape[0] != n_criteria:
        raise ValueError(
            f"{n_criteria} criteria but {weight_vector.shape[0]} weights and {benefit_vector.shape[0]} benefit flags"
        )
    if benefit_vector.dtype != bool:
        raise ValueError("benefit must hold booleans (True = benefit criterion, False = cost criterion)")
    if not np.all(np.isfinite(weight_vector)) or np.any(weight_vector < 0):
        raise ValueError(f"weights must be finite and non-negative, got {weight_vector.tolist()}")
    total = weight_vector.sum()
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    bad = ~np.isfinite(values)
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"matrix holds {bad.sum()} NaN/infinite value(s) (first at alternative {rows[0]}, criterion {cols[0]}); "
            "decide what a missing value means before ranking"
        )
    return values, weight_vector / total, benefit_vector


def topsis(
    matrix: ArrayLike, weights: ArrayLike, benefit: ArrayLike, *, reference: ArrayLike | None = None
) -> np.ndarray:
    """Closeness coefficient C in [0, 1] of each alternative (row); higher is better.

    ``matrix`` is alternatives x criteria, ``weights`` one non-negative weight per criterion (normalised here),
    ``benefit`` True where more is better and False where less is better (a cost).

    ``reference`` (default: ``matrix`` itself, classic TOPSIS) is the set of alternatives that fixes the
    normalisation (each criterion's vector norm) and the ideal and anti-ideal points; ``matrix`` is scored against
    it, its values first clipped to the reference's range per criterion, so that an alternative worse than every
    reference point on a criterion counts as the anti-ideal there (without the clip, moving further away from the
    anti-ideal would raise its score). Scores of the reference's own rows equal classic TOPSIS over the reference.
    """
    values, weight_vector, benefit_vector = _validated(matrix, weights, benefit)
    if values.shape[0] == 0:
        return np.empty(0)
    basis = values if reference is None else _validated(reference, weights, benefit)[0]
    if basis.shape[0] == 0:
        raise ValueError("reference holds no alternative")
    # Criteria x alternatives, each criterion contiguous: per-criterion reductions run several times faster.
    columns = np.ascontiguousarray(basis.T)
    norms = np.sqrt(np.einsum("ji,ji->j", columns, columns))
    safe_norms = np.where(norms > 0, norms, 1.0)
    scale = (weight_vector / safe_norms)[:, None]
    column_max = (columns * scale).max(axis=1)
    column_min = (columns * scale).min(axis=1)
    weighted = np.clip(np.ascontiguousarray(values.T) * scale, column_min[:, None], column_max[:, None])
    ideal = np.where(benefit_vector, column_max, column_min)
    anti_ideal = np.where(benefit_vector, column_min, column_max)
    distance_ideal = np.sqrt(np.square(weighted - ideal[:, None]).sum(axis=0))
    distance_anti_ideal = np.sqrt(np.square(weighted - anti_ideal[:, None]).sum(axis=0))
    total = distance_ideal + distance_anti_ideal
    return np.divide(distance_anti_ideal, total, out=np.ones_like(total), where=total > 0)


def criterion_closeness(matrix: ArrayLike, benefit: ArrayLike, *, reference: ArrayLike | None = None) -> np.ndarray:
    """Per criterion, where each alternative sits between the worst (0) and the best (1) value of ``reference``
    (default: ``matrix``), clipped to [0, 1]; 1 where all tie.

    It explains a TOPSIS score criterion by criterion (vector normalisation and weights are linear per column,
    so this is the same position as in TOPSIS's weighted space, given the same reference).
    """
    values = np.asarray(matrix, dtype=float)
    benefit_vector = np.asarray(benefit, dtype=bool)
    if values.shape[0] == 0:
        return np.empty_like(values)
    basis = values if reference is None else np.asarray(reference, dtype=float)
    best = np.where(benefit_vector, basis.max(axis=0), basis.min(axis=0))
    worst = np.where(benefit_vector, basis.min(axis=0), basis.max(axis=0))
    span = best - worst
    position = np.divide(values - worst, span, out=np.ones_like(values), where=span != 0)
    return np.clip(position, 0.0, 1.0) + 0.0  # no -0.0
