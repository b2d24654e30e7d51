"""Quality flags from the result's detail to the database column, the ranking (left out or marked) and the asset
check that counts them per version."""

from __future__ import annotations

import json

from sqlalchemy import text

from benchmark_platform.defs.checks import flagged_results_per_version
from benchmark_platform.defs.resources import PlatformDatabase
from benchmark_platform.ranking import rank_use_case
from benchmark_platform.ranking.store import load_results_frame
from benchmark_platform_tests.factories import chatbot, insert_results, result_row, results_frame

CLIENT_BOUND = {"client_bound": "the client's event loop lagged 9.0 ms at p99 (> 5 ms)"}
THIN = {"too_few_requests": "50 requests cannot support a p99 (needs 100)"}


def _rows():
    return [
        result_row(hardware="aws-h100", quality_flags=CLIENT_BOUND, ttft_p90_ms=50.0),
        result_row(hardware="aws-a100", quality_flags=THIN),
        result_row(hardware="aws-l4", quality_flags={}),
    ]


def test_ranking_leaves_out_excluding_flags_and_marks_the_others():
    ranking = rank_use_case(results_frame(*_rows()), chatbot())
    assert set(ranking.configurations["hardware_name"]) == {"aws-a100", "aws-l4"}  # the client-bound one is out
    assert ranking.excluded["quality_flagged_results"] == 1
    assert "1 results flagged client_bound: left out" in ranking.notes
    assert "1 results flagged too_few_requests: ranked, but marked" in ranking.notes
    unflagged = rank_use_case(results_frame(*[row | {"quality_flags": {}} for row in _rows()]), chatbot())
    assert "aws-h100" in set(unflagged.configurations["hardware_name"])


def test_flags_column_is_computed_and_counted_per_version(engine, database_url):
    rows = _rows()
    insert_results(engine, rows)
    with engine.begin() as connection:
        for row in rows:
            connection.execute(
                text("UPDATE benchmark_results SET detailed_metrics = CAST(:detail AS jsonb) WHERE id = :id"),
                {"detail": json.dumps({"quality_flags": row["quality_flags"]}), "id": row["result_id"]},
            )
        stored = dict(connection.execute(text("SELECT id, quality_flags FROM benchmark_results")).all())
    assert stored[rows[0]["result_id"]] == CLIENT_BOUND and stored[rows[2]["result_id"]] == {}
    frame = load_results_frame(engine)
    assert sorted(len(flags) for flags in frame["quality_flags"]) == [0, 1, 1]
    assert set(rank_use_case(frame, chatbot()).configurations["hardware_name"]) == {"aws-a100", "aws-l4"}

    result = flagged_results_per_version(database=PlatformDatabase(url=database_url))
    assert not result.passed  # one result is left out of the rankings
    assert result.metadata["flagged_results"].value == 2
    assert result.metadata["excluded_from_rankings"].value == 1
    assert result.metadata["per_flag"].value == {"client_bound": 1, "too_few_requests": 1}
    assert "| llama@fp16 | 3 | 2 | 1 |" in result.metadata["per_version"].value
