"""Measured beside simulated: a measured result (ours or imported) takes a deployment's place in the ranking, says its
source, and keeps the simulator's figures for the same shape beside its own."""

from __future__ import annotations

import pytest

from benchmark_platform.ranking.rankings import rank_use_case
from benchmark_platform_tests.factories import chatbot, result_row, results_frame


def _ranking(*rows):
    ranking = rank_use_case(results_frame(*rows), chatbot(sequence_lengths=(512,)))
    return ranking.configurations.set_index("hardware_name")


def test_a_measured_row_takes_the_place_of_the_simulated_one_and_keeps_it_beside():
    simulated = result_row(hardware="a", runner="simulated", throughput_tokens_sec=2000.0, ttft_p90_ms=90.0)
    imported = result_row(hardware="a", runner="measured", source="inferencex", throughput_tokens_sec=1500.0)
    alone = result_row(hardware="b", runner="simulated", throughput_tokens_sec=1200.0)
    configs = _ranking(simulated, imported, alone)
    a, b = configs.loc["a"], configs.loc["b"]
    assert (a["source"], bool(a["simulated"])) == ("inferencex", False)
    assert a["output_tokens_sec_per_gpu"] == pytest.approx(1500.0)  # the measurement, not the estimate
    assert a["simulated_output_tokens_sec_per_gpu"] == pytest.approx(2000.0)
    assert a["simulated_ttft_p90_ms"] == pytest.approx(90.0) and a["ttft_p90_ms"] == pytest.approx(100.0)
    assert (b["source"], bool(b["simulated"])) == ("simulated", True)
    assert b[["simulated_ttft_p90_ms", "simulated_output_tokens_sec_per_gpu"]].isna().all()


def test_a_deployment_whose_buckets_come_from_different_sources_is_mixed():
    use_case = chatbot(sequence_lengths=(512, 1024))
    rows = [
        result_row(hardware="a", sequence_length=512, source="inferencex"),
        result_row(hardware="a", sequence_length=1024),
    ]
    configs = rank_use_case(results_frame(*rows), use_case).configurations
    assert configs["source"].tolist() == ["mixed"]
    assert configs["simulated_output_tokens_sec_per_gpu"].isna().all()  # no simulated result of its shape
