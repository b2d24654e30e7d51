"""One criterion registry: every list of criteria derives from ``ranking.criteria.CRITERIA``, and a criterion added
there shows up in the catalog validation, the ranking, recommend, the asset metadata and the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest
import yaml
from pydantic import ValidationError

from benchmark_platform import catalogs
from benchmark_platform.cli import recommend as recommend_command
from benchmark_platform.defs import analytics
from benchmark_platform.ranking import Constraints, criteria, rank_use_case, recommend, store
from benchmark_platform.ranking.rankings import DEPLOYMENT_COLUMNS, configuration_columns
from benchmark_platform.report import html as report
from benchmark_platform_tests.factories import chatbot, insert_results, insert_use_case, result_row, results_frame

INTERACTIVITY = criteria.Criterion(
    key="interactivity",
    column="interactivity_tokens_sec",
    benefit=True,
    label="interactivity",
    short_label="tok/s/user!",
    unit="tokens/s per user",
    axis_label="interactivity (tokens/s per user)",
    format=".1f",
)


@pytest.fixture
def with_interactivity(monkeypatch):
    """The registry with one more criterion, as adding an entry to ranking/criteria.py would make it."""
    monkeypatch.setattr(criteria, "CRITERIA", MappingProxyType({**criteria.CRITERIA, "interactivity": INTERACTIVITY}))
    return INTERACTIVITY


def _recommend_table(frame) -> str:
    return recommend_command._table(frame, chatbot().registry)


def test_every_consumer_lists_exactly_the_registered_criteria() -> None:
    registered = list(criteria.CRITERIA)
    columns = [criterion.column for criterion in criteria.CRITERIA.values()]
    for spec in catalogs.load_use_cases():  # the catalog validates a weight for each, no more
        assert list(spec.default_weights.model_dump()) == registered, spec.subcategory
    assert [c for c in configuration_columns() if c.startswith("closeness_")] == [
        criteria.closeness_column(key) for key in registered
    ]
    assert [column for column, _, _ in report.table_columns() if column in columns] == columns
    assert [column for column in analytics.top_columns() if column in columns] == columns
    rows = (result_row(accuracy_score=0.8), result_row(model="other", accuracy_score=0.7))
    ranking = rank_use_case(results_frame(*rows), chatbot())
    header = _recommend_table(ranking.configurations).splitlines()[0]
    assert all(criterion.short_label in header for criterion in criteria.CRITERIA.values())
    assert list(ranking.weights) == [key for key in registered if chatbot().weights.get(key, 0) > 0]


def test_a_use_case_missing_a_registered_criterion_or_naming_an_unknown_one_is_refused(
    with_interactivity, tmp_path: Path
) -> None:
    bundled = yaml.safe_load(catalogs.USE_CASES_FILE.read_text())
    path = tmp_path / "use_cases.yaml"
    path.write_text(yaml.safe_dump(bundled))
    with pytest.raises(catalogs.CatalogError) as missing:
        catalogs.load_use_cases(path)
    assert "use_cases[0].default_weights: Value error, no weight for the registered criterion 'interactivity'" in str(
        missing.value
    )

    for use_case in bundled["use_cases"]:
        use_case["default_weights"] = {key: 0.0 for key in criteria.CRITERIA} | {"interactivity": 1.0}
    bundled["use_cases"][1]["default_weights"]["energy"] = 0.0
    path.write_text(yaml.safe_dump(bundled))
    with pytest.raises(catalogs.CatalogError, match=r"use_cases\[1\]\.default_weights: .*not a registered criterion"):
        catalogs.load_use_cases(path)

    del bundled["use_cases"][1]["default_weights"]["energy"]
    path.write_text(yaml.safe_dump(bundled))
    assert all(spec.default_weights["interactivity"] == 1.0 for spec in catalogs.load_use_cases(path))


def test_a_registered_criterion_is_ranked_explained_tabled_and_reported(with_interactivity) -> None:
    with pytest.raises(ValidationError, match="unknown criteria"):
        chatbot(weights={"energy": 1.0})
    frame = results_frame(
        result_row(model="snappy", tpot_p50_ms=8.0, throughput_tokens_sec=900.0),
        result_row(model="sluggish", tpot_p50_ms=16.0, throughput_tokens_sec=1000.0),
    )
    ranking = rank_use_case(frame, chatbot(weights={"throughput": 0.2, "interactivity": 0.8}))

    assert ranking.weights == pytest.approx({"throughput": 0.2, "interactivity": 0.8})
    best = ranking.configurations.iloc[0]
    assert best["model_name"] == "snappy" and best["closeness_interactivity"] == 1.0
    assert "best in use case on interactivity" in recommend(ranking, Constraints()).configurations.iloc[0]["why"]
    assert "tok/s/user!" in _recommend_table(ranking.configurations)
    assert "interactivity_tokens_sec" in analytics.top_columns()
    page = report.render_report([ranking])
    assert "<th>tok/s/user!</th>" in page and "interactivity 0.80" in page


def test_registry_entries_are_complete_and_unique() -> None:
    for key, criterion in criteria.CRITERIA.items():
        assert key == criterion.key
        assert all(getattr(criterion, field.name) != "" for field in dataclasses.fields(criterion)), key
        format(1234.5, criterion.format)  # a usable format spec
    assert len({criterion.column for criterion in criteria.CRITERIA.values()}) == len(criteria.CRITERIA)
    assert any(criterion.latency for criterion in criteria.CRITERIA.values())  # the report's x-axis needs one


def test_a_criterion_without_a_deployment_column_is_stored_and_read_back_without_a_migration(
    monkeypatch, engine
) -> None:
    list_price = dataclasses.replace(
        INTERACTIVITY, key="list_price", column="cost_per_hour_usd", benefit=False, label="list price"
    )
    monkeypatch.setattr(criteria, "CRITERIA", MappingProxyType({**criteria.CRITERIA, "list_price": list_price}))
    insert_use_case(engine, weights={"throughput": 0.5, "list_price": 0.5})
    insert_results(
        engine,
        [
            result_row(model="cheap", cost_per_hour_usd=2.0),
            result_row(model="dear", hardware="dear-h100", cost_per_hour_usd=8.0, throughput_tokens_sec=1500.0),
        ],
    )
    ranked = store.refresh_rankings(engine)["chatbot"]

    stored = store.load_stored_rankings(engine, store.load_use_cases(engine))["chatbot"]

    assert "cost_per_hour_usd" not in DEPLOYMENT_COLUMNS  # so it travels in the stored criteria breakdown
    assert stored.configurations.set_index("model_name")["cost_per_hour_usd"].to_dict() == {"cheap": 2.0, "dear": 8.0}
    assert (
        stored.configurations["closeness_list_price"].tolist() == ranked.configurations["closeness_list_price"].tolist()
    )
    assert stored.weights == pytest.approx({"throughput": 0.5, "list_price": 0.5})
