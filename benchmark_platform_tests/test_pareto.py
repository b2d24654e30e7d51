"""Pareto front against a brute-force O(n^2) reference, with ties and duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark_platform.ranking import pareto_front


def _brute_force(matrix: np.ndarray, benefit: np.ndarray) -> np.ndarray:
    costs = np.where(benefit, -matrix, matrix)
    no_worse = np.all(costs[:, None, :] <= costs[None, :, :], axis=2)
    better_somewhere = np.any(costs[:, None, :] < costs[None, :, :], axis=2)
    return ~(no_worse & better_somewhere).any(axis=0)


@pytest.mark.parametrize("criteria", [1, 2, 3, 4, 5])
def test_matches_brute_force_on_random_data_with_ties(criteria: int) -> None:
    rng = np.random.default_rng(criteria)
    for _ in range(40):
        points = int(rng.integers(1, 400))
        distinct_values = int(rng.integers(1, 12))  # few distinct values: many ties and exact duplicates
        matrix = rng.integers(0, distinct_values, size=(points, criteria)).astype(float)
        benefit = rng.random(criteria) < 0.5
        np.testing.assert_array_equal(pareto_front(matrix, benefit), _brute_force(matrix, benefit))


@pytest.mark.parametrize("criteria", [2, 4])
def test_matches_brute_force_on_continuous_data_larger_than_a_block(criteria: int) -> None:
    rng = np.random.default_rng(10 + criteria)
    matrix = rng.normal(size=(3000, criteria))
    matrix[:, -1] = matrix[:, 0] + rng.normal(scale=0.1, size=3000)  # a trade-off: a large front
    benefit = np.array([True] * (criteria - 1) + [False])
    front = pareto_front(matrix, benefit)
    np.testing.assert_array_equal(front, _brute_force(matrix, benefit))
    assert front.sum() > 10


def test_duplicates_of_a_front_point_are_all_on_the_front() -> None:
    matrix = np.array([[1.0, 5.0], [1.0, 5.0], [2.0, 2.0], [0.5, 4.0], [1.0, 5.0]])
    assert pareto_front(matrix, [False, True]).tolist() == [True, True, False, True, True]


def test_equal_on_one_criterion_and_worse_on_the_other_is_dominated() -> None:
    matrix = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, 2.0], [1.0, 1.0, 1.0]])
    assert pareto_front(matrix, [False, False, False]).tolist() == [True, False, True]


def test_benefit_flags_flip_the_direction() -> None:
    matrix = np.array([[1.0, 1.0], [2.0, 2.0]])
    assert pareto_front(matrix, [True, True]).tolist() == [False, True]
    assert pareto_front(matrix, [False, False]).tolist() == [True, False]
    assert pareto_front(matrix, [True, False]).tolist() == [True, True]


def test_empty_and_single_inputs() -> None:
    assert pareto_front(np.empty((0, 3)), [True, True, True]).shape == (0,)
    assert pareto_front([[4.0, 2.0]], [True, False]).tolist() == [True]


@pytest.mark.parametrize(
    ("matrix", "benefit", "message"),
    [
        ([[1.0, np.nan]], [True, True], "NaN"),
        ([[1.0, 2.0]], [True], "one benefit flag per column"),
        ([[1.0, 2.0]], [1, 0], "booleans"),
    ],
)
def test_bad_input_is_rejected(matrix, benefit, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pareto_front(matrix, benefit)
