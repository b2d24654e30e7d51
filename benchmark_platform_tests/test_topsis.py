"""TOPSIS against two independent implementations (pymcdm, scikit-criteria) and on its documented edge cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import skcriteria as skc
from pymcdm.methods import TOPSIS as PymcdmTopsis
from pymcdm.normalizations import vector_normalization
from skcriteria.agg.topsis import TOPSIS as SkcriteriaTopsis
from skcriteria.preprocessing.scalers import SumScaler, VectorScaler

from benchmark_platform.ranking import criterion_closeness, topsis


def _pymcdm(matrix: np.ndarray, weights: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    # pymcdm's vector normalisation turns a cost column into 1 - r, which leaves TOPSIS distances unchanged.
    method = PymcdmTopsis(normalization_function=vector_normalization)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about dominated and dominant alternatives
        return method(matrix, weights / weights.sum(), np.where(benefit, 1, -1))


def _skcriteria(matrix: np.ndarray, weights: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns that cost criteria are "not recommended"
        decision = skc.mkdm(matrix, objectives=[max if flag else min for flag in benefit], weights=weights)
        decision = VectorScaler(target="matrix").transform(SumScaler(target="weights").transform(decision))
        return SkcriteriaTopsis().evaluate(decision).e_.similarity


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_pymcdm_and_scikit_criteria(seed: int) -> None:
    rng = np.random.default_rng(seed)
    alternatives, criteria = rng.integers(2, 60), rng.integers(1, 8)
    matrix = rng.uniform(0.01, 10.0, size=(alternatives, criteria)) * 10.0 ** rng.integers(-2, 4, size=criteria)
    weights = rng.uniform(0.05, 3.0, size=criteria)  # deliberately not summing to 1
    benefit = rng.random(criteria) < 0.5

    ours = topsis(matrix, weights, benefit)

    assert ours.shape == (alternatives,)
    np.testing.assert_allclose(ours, _pymcdm(matrix, weights, benefit), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours, _skcriteria(matrix, weights, benefit), rtol=0, atol=1e-9)
    assert np.all((ours >= 0) & (ours <= 1))


@pytest.mark.parametrize("seed", range(5))
def test_a_reference_set_fixes_the_normalisation_and_scores_its_own_rows_as_classic_topsis(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    matrix = rng.uniform(0.1, 10.0, size=(30, 4)) * np.array([1.0, 100.0, 0.01, 10.0])
    weights = rng.uniform(0.1, 1.0, size=4)
    benefit = np.array([True, False, True, False])
    reference = matrix[:12]

    scores = topsis(matrix, weights, benefit, reference=reference)

    np.testing.assert_allclose(scores[:12], _pymcdm(reference, weights, benefit), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(topsis(matrix, weights, benefit, reference=matrix), topsis(matrix, weights, benefit))
    # Another alternative's presence changes no reference row's score.
    np.testing.assert_allclose(topsis(matrix[5:], weights, benefit, reference=reference)[:7], scores[5:12], atol=1e-12)
    assert np.all((scores >= 0) & (scores <= 1))


def test_scores_against_a_reference_stay_monotone_beyond_its_anti_ideal() -> None:
    reference = np.array([[100.0, 1000.0], [200.0, 1600.0]])  # latency (cost), throughput (benefit)
    worse = np.array([[300.0, 900.0], [3000.0, 10.0], [150.0, 800.0]])

    scores = topsis(worse, [0.5, 0.5], [False, True], reference=reference)

    # The first two are worse than the anti-ideal (200, 1000) on both criteria: clipped to it, not rewarded for being
    # far from it; the third sits between the reference points on latency only.
    assert scores[0] == scores[1] == 0.0
    assert 0.0 < scores[2] < topsis(reference, [0.5, 0.5], [False, True]).min()
    closeness = criterion_closeness(worse, [False, True], reference=reference)
    np.testing.assert_allclose(closeness, [[0.0, 0.0], [0.0, 0.0], [0.5, 0.0]])


def test_an_empty_reference_is_rejected() -> None:
    with pytest.raises(ValueError, match="reference holds no alternative"):
        topsis(np.ones((2, 2)), [1, 1], [True, False], reference=np.empty((0, 2)))


def test_textbook_example() -> None:
    # pymcdm's documented example (cost, benefit), computed by hand with vector normalisation.
    matrix = np.array([[1, 3000], [2, 3750], [5, 4500]], dtype=float)
    scores = topsis(matrix, [0.5, 0.5], [False, True])
    normalised = matrix / np.sqrt((matrix**2).sum(axis=0)) * 0.5
    ideal = np.array([normalised[:, 0].min(), normalised[:, 1].max()])
    anti = np.array([normalised[:, 0].max(), normalised[:, 1].min()])
    to_ideal = np.sqrt(((normalised - ideal) ** 2).sum(axis=1))
    to_anti = np.sqrt(((normalised - anti) ** 2).sum(axis=1))
    np.testing.assert_allclose(scores, to_anti / (to_ideal + to_anti), atol=1e-12)
    assert np.argmax(scores) == 0


def test_weights_are_normalised() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.uniform(1, 5, size=(10, 3))
    benefit = np.array([True, False, True])
    np.testing.assert_allclose(topsis(matrix, [2, 4, 6], benefit), topsis(matrix, [1 / 6, 2 / 6, 3 / 6], benefit))


@pytest.mark.parametrize("constant", [0.0, 7.5])
def test_a_criterion_equal_for_all_changes_nothing(constant: float) -> None:
    rng = np.random.default_rng(2)
    matrix = rng.uniform(1, 5, size=(12, 3))
    benefit = np.array([True, False, True])
    base = topsis(matrix, [0.2, 0.3, 0.5], benefit)
    with_constant = topsis(np.column_stack([matrix, np.full(12, constant)]), [0.2, 0.3, 0.5, 0.4], [*benefit, False])

    assert np.all(np.isfinite(with_constant))
    np.testing.assert_allclose(with_constant, base, atol=1e-12)


def test_single_alternative_and_identical_alternatives_score_one() -> None:
    assert topsis([[3.0, 10.0]], [0.5, 0.5], [True, False]).tolist() == [1.0]
    assert topsis([[3.0, 10.0]] * 4, [0.5, 0.5], [True, False]).tolist() == [1.0] * 4
    assert topsis(np.zeros((3, 2)), [0.5, 0.5], [True, True]).tolist() == [1.0] * 3


def test_no_alternatives_gives_no_scores() -> None:
    assert topsis(np.empty((0, 3)), [1, 1, 1], [True, True, False]).shape == (0,)


def test_best_and_worst_on_every_criterion_get_one_and_zero() -> None:
    matrix = np.array([[10.0, 1.0], [5.0, 5.0], [1.0, 9.0]])
    scores = topsis(matrix, [0.7, 0.3], [True, False])
    assert scores[0] == pytest.approx(1.0) and scores[2] == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("matrix", "weights", "benefit", "message"),
    [
        ([[1.0, np.nan], [2.0, 3.0]], [0.5, 0.5], [True, True], "NaN/infinite"),
        ([[1.0, np.inf], [2.0, 3.0]], [0.5, 0.5], [True, True], "NaN/infinite"),
        ([[1.0, 2.0]], [0.5, -0.5], [True, True], "non-negative"),
        ([[1.0, 2.0]], [0.0, 0.0], [True, True], "at least one weight"),
        ([[1.0, 2.0]], [np.nan, 1.0], [True, True], "finite"),
        ([[1.0, 2.0]], [1.0], [True, True], "2 criteria but 1 weights"),
        ([[1.0, 2.0]], [1.0, 1.0], [1, 0], "booleans"),
        ([1.0, 2.0], [1.0, 1.0], [True, True], "2-D"),
    ],
)
def test_bad_input_is_rejected(matrix, weights, benefit, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        topsis(matrix, weights, benefit)


def test_criterion_closeness_runs_worst_to_best() -> None:
    matrix = np.array([[10.0, 1.0, 4.0], [5.0, 5.0, 4.0], [0.0, 9.0, 4.0]])
    closeness = criterion_closeness(matrix, [True, False, True])
    np.testing.assert_allclose(closeness, [[1, 1, 1], [0.5, 0.5, 1], [0, 0, 1]])
