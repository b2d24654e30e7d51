"""Held-out discipline: a fitted constant cites only calibration rows, and every published row says its role."""

from __future__ import annotations

from collections import Counter

from benchmark_platform.runners.simulated import calibration
from benchmark_platform_tests.factories import benchmark_script

accuracy = benchmark_script("simulator_accuracy")

ROWS = accuracy.load_rows()


def test_every_published_row_has_a_role_and_a_unique_id():
    assert {row["role"] for row in ROWS} <= set(accuracy.ROLES)
    duplicated = [row_id for row_id, count in Counter(row["id"] for row in ROWS).items() if count > 1]
    assert not duplicated


def test_fitted_constants_cite_only_calibration_rows():
    roles = {row["id"]: row["role"] for row in ROWS}
    assert calibration.FITTED
    for name, constant in calibration.FITTED.items():
        assert constant.fitted_on, name
        for row_id in constant.fitted_on:
            assert row_id in roles, f"{name} cites {row_id}, which no data file holds"
            assert roles[row_id] == "calibration", f"{name} was fitted on validation row {row_id}"


def test_the_check_catches_a_constant_fitted_on_a_validation_row(monkeypatch):
    """The test above would fail if a constant cited a validation row (guards against a vacuous check)."""
    validation = [row["id"] for row in ROWS if row["role"] == "validation"]
    if not validation:
        return
    leaky = calibration.FittedConstant(1.0, "s", (validation[0],), "a constant fitted where it must not be")
    monkeypatch.setitem(calibration.FITTED, "LEAKY", leaky)
    try:
        test_fitted_constants_cite_only_calibration_rows()
    except AssertionError as error:
        assert "validation row" in str(error)
    else:
        raise AssertionError("a constant fitted on a validation row went unnoticed")
