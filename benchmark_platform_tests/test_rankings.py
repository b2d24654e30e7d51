"""Use-case rankings: the documented rules on small frames, then the store round trip on a real database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, func, select

from benchmark_platform.orm import (
    DEPLOYMENT_STATUSES,
    DeploymentRanking,
    Model,
    ModelRanking,
    ModelUseCase,
)
from benchmark_platform.ranking import (
    RESULT_FRAME_COLUMNS,
    UseCaseCriteria,
    configuration_columns,
    pareto_front,
    rank_use_case,
    rank_use_cases,
    topsis,
)
from benchmark_platform.ranking.rankings import DEPLOYMENT_STATUSES as RANKING_STATUSES
from benchmark_platform.ranking.rankings import economic_caps, tokens_per_dollar
from benchmark_platform.ranking.store import (
    load_results_frame,
    load_stored_rankings,
    load_use_cases,
    refresh_rankings,
    write_rankings,
)
from benchmark_platform_tests.factories import (
    DAY,
    chatbot,
    insert_results,
    insert_use_case,
    result_row,
    results_frame,
    uid,
)

# --- pure rules -------------------------------------------------------------------------------------------------


def test_representative_buckets_fold_by_the_documented_rule() -> None:
    """Only the use case's representative buckets count: latency is their worst, throughput their harmonic mean,
    accuracy their mean. A bucket the use case never sends (8,192 here) changes nothing."""
    frame = results_frame(
        result_row(sequence_length=1024, ttft_p90_ms=80.0, tpot_p90_ms=15.0, throughput_tokens_sec=1200.0),
        result_row(sequence_length=2048, ttft_p90_ms=150.0, tpot_p90_ms=18.0, throughput_tokens_sec=600.0),
        result_row(sequence_length=8192, ttft_p90_ms=3000.0, tpot_p90_ms=45.0, throughput_tokens_sec=100.0),
    )
    frame["accuracy_score"] = [0.6, 0.8, np.nan]

    row = rank_use_case(frame, chatbot(sequence_lengths=(1024, 2048))).configurations.iloc[0]

    assert (row["ttft_p90_ms"], row["tpot_p90_ms"]) == (150.0, 18.0)
    assert row["throughput_tokens_sec"] == pytest.approx(2 / (1 / 1200 + 1 / 600)) == 800.0
    assert row["accuracy_score"] == pytest.approx(0.7)
    assert (row["n_sequence_lengths"], row["min_sequence_length"], row["max_sequence_length"]) == (2, 1024, 2048)

    every_bucket = rank_use_case(frame, chatbot(sla_ttft_p90_ms=None)).configurations.iloc[0]  # none declared
    assert (every_bucket["ttft_p90_ms"], every_bucket["n_sequence_lengths"]) == (3000.0, 3)


def test_a_deployment_missing_a_representative_bucket_is_incomplete() -> None:
    frame = results_frame(
        result_row(batch_size=1, sequence_length=1024),
        result_row(batch_size=1, sequence_length=2048),
        result_row(batch_size=2, sequence_length=1024, ttft_p90_ms=50.0),  # never benchmarked at 2,048
    )
    ranking = rank_use_case(frame, chatbot(sequence_lengths=(1024, 2048)))
    assert ranking.configurations["batch_size"].tolist() == [1]
    assert ranking.excluded["incomplete"] == 1


def test_a_deployment_is_keyed_by_tensor_parallel_and_ranked_on_throughput_per_gpu() -> None:
    """The same node at TP 1 (eight replicas) and TP 8 (one replica) are two deployments; the throughput criterion
    is per GPU (node / GPUs), so an eight-GPU node does not win on raw node tokens/s."""
    frame = results_frame(
        result_row(hardware="h100-x8", gpu_count=8, tensor_parallel=1, throughput_tokens_sec=24000.0),
        result_row(hardware="h100-x8", gpu_count=8, tensor_parallel=8, throughput_tokens_sec=8000.0),
        result_row(hardware="h100-x1", gpu_count=1, tensor_parallel=1, throughput_tokens_sec=3000.0),
    )
    configurations = rank_use_case(frame, chatbot()).configurations.set_index(["hardware_name", "tensor_parallel"])
    assert configurations.loc[("h100-x8", 1), "replicas"] == 8 and configurations.loc[("h100-x8", 8), "replicas"] == 1
    assert configurations.loc[("h100-x8", 1), "output_tokens_sec_per_gpu"] == 3000.0
    assert configurations.loc[("h100-x8", 8), "output_tokens_sec_per_gpu"] == 1000.0
    assert configurations.loc[("h100-x1", 1), "output_tokens_sec_per_gpu"] == 3000.0
    assert configurations.loc[("h100-x8", 1), "closeness_throughput"] == 1.0
    assert configurations.loc[("h100-x1", 1), "closeness_throughput"] == 1.0  # equal per GPU: equally good
    assert configurations.loc[("h100-x8", 1), "interactivity_tokens_sec"] == pytest.approx(1000 / 16.0)


def test_cost_spanning_orders_of_magnitude_is_not_flattened_by_vector_normalisation() -> None:
    """A is half B's cost and 4 % slower to first token; C costs $500 per million tokens. In dollars, C's $500
    dominates the cost column's norm, A and B look equally cheap (B 99.97 % of the way from worst to best), and B's
    latency wins. Per dollar (rule 6) a 2x saving keeps its weight: A ranks above B, B is half-way on cost."""
    weights = {"ttft_p90": 0.5, "cost_per_million_tokens": 0.5}
    hourly = 3.6  # $/h: cost per million tokens = 1000 / throughput
    frame = results_frame(
        result_row(model="a", cost_per_hour_usd=hourly, throughput_tokens_sec=1000 / 0.15, ttft_p90_ms=260.0),
        result_row(model="b", cost_per_hour_usd=hourly, throughput_tokens_sec=1000 / 0.30, ttft_p90_ms=250.0),
        result_row(model="c", cost_per_hour_usd=hourly, throughput_tokens_sec=1000 / 500, ttft_p90_ms=100.0),
    )
    ranking = rank_use_case(frame, chatbot(weights=weights, sla_tpot_p90_ms=None))
    configurations = ranking.configurations.set_index("model_name")
    assert configurations["cost_per_million_tokens"].to_dict() == pytest.approx({"a": 0.15, "b": 0.30, "c": 500.0})
    assert configurations.loc["a", "score"] > configurations.loc["b", "score"]
    assert configurations.loc["b", "closeness_cost_per_million_tokens"] == pytest.approx(0.5, abs=1e-3)

    dollars = configurations.loc[["a", "b", "c"], ["ttft_p90_ms", "cost_per_million_tokens"]].to_numpy()
    raw = topsis(dollars, [0.5, 0.5], np.array([False, False]))
    assert raw[1] > raw[0]  # what ranking on dollars would have said
    per_dollar = dollars.copy()
    per_dollar[:, 1] = tokens_per_dollar(per_dollar[:, 1])
    expected = topsis(per_dollar, [0.5, 0.5], np.array([False, True]))
    np.testing.assert_allclose(configurations.loc[["a", "b", "c"], "score"], expected)


def test_scores_ranks_and_pareto_flags_follow_topsis_and_the_front() -> None:
    rng = np.random.default_rng(7)
    rows = [
        result_row(
            model=f"model-{index % 4}",
            batch_size=index + 1,
            ttft_p90_ms=float(rng.uniform(50, 400)),
            tpot_p90_ms=float(rng.uniform(5, 45)),
            throughput_tokens_sec=float(rng.uniform(100, 5000)),
            accuracy_score=float(rng.uniform(0.5, 0.9)),
        )
        for index in range(40)
    ]
    rows.append(dict(rows[0], result_id=uuid.uuid4(), batch_size=999))  # an exact duplicate of a configuration

    ranking = rank_use_case(results_frame(*rows), chatbot())
    configurations = ranking.configurations

    assert list(configurations.columns) == list(configuration_columns())
    keys = list(ranking.weights)
    columns = ["ttft_p90_ms", "tpot_p90_ms", "output_tokens_sec_per_gpu", "cost_per_million_tokens", "accuracy_score"]
    benefit = np.array([False, False, True, False, True])
    matrix = configurations[columns].to_numpy()
    matrix[:, 3] = tokens_per_dollar(matrix[:, 3])  # what TOPSIS is given: cost as tokens per dollar (rule 6)
    benefit[3] = True
    front = pareto_front(matrix, benefit)
    weights = [ranking.weights[k] for k in keys]
    np.testing.assert_array_equal(configurations["pareto"], front)
    # The front is ranked by classic TOPSIS over itself; the rest are scored against the front's normalisation; then
    # a deployment another of its model version beats on throughput per GPU and cost is capped at its score (rule 8).
    raw = topsis(matrix, weights, benefit, reference=matrix[front])
    np.testing.assert_allclose(raw[front], topsis(matrix[front], weights, benefit))
    versions = configurations["version_key"].to_numpy()
    np.testing.assert_allclose(configurations["score"], economic_caps(raw, matrix[:, 2:4], versions))
    assert (configurations["score"] < raw - 1e-9).any()  # the rule changed something here
    assert 0 < front.sum() < len(front)
    assert configurations["score"].is_monotonic_decreasing
    assert configurations["rank"].is_monotonic_increasing and configurations["rank"].iloc[0] == 1
    twins = configurations[configurations["batch_size"].isin([1, 999])]
    assert twins["rank"].nunique() == 1 and twins["score"].nunique() == 1
    assert configurations["pareto"].iloc[0]  # the TOPSIS winner is never dominated


def test_dominated_configurations_move_no_score_so_measuring_fewer_keeps_the_top() -> None:
    """TOPSIS's rank reversal by irrelevant alternatives: over every configuration, three slow ones that both front
    configurations dominate stretch the TTFT column (its norm and anti-ideal) until throughput decides, and the top-1
    flips against a ranking of the front alone; the adaptive planner skips exactly such configurations. (The two
    front configurations serve different model versions: of one version, rule 8 would rank the one serving more per
    GPU for less first whatever its latency.)"""
    use_case = UseCaseCriteria(subcategory="chatbot", weights={"ttft_p90": 0.5, "throughput": 0.5})
    front = [
        result_row(hardware="quick-start", version="fp8", ttft_p90_ms=100.0, throughput_tokens_sec=1000.0),
        result_row(hardware="high-throughput", ttft_p90_ms=200.0, throughput_tokens_sec=1600.0),
    ]
    slow = [
        result_row(hardware=f"slow-{index}", ttft_p90_ms=2000.0 + index, throughput_tokens_sec=900.0 - index)
        for index in range(3)
    ]
    every_row = np.array([[row["ttft_p90_ms"], row["throughput_tokens_sec"]] for row in front + slow])
    classic = topsis(every_row, [0.5, 0.5], [False, True])
    assert classic[1] > classic[0]  # what ranking every configuration by classic TOPSIS did

    measured_only = rank_use_case(results_frame(*front), use_case).configurations
    everything = rank_use_case(results_frame(*front, *slow), use_case).configurations

    assert list(measured_only["hardware_name"]) == ["quick-start", "high-throughput"]
    assert list(everything["hardware_name"][:2]) == ["quick-start", "high-throughput"]
    np.testing.assert_allclose(everything["score"][:2], measured_only["score"], atol=1e-12)
    assert list(everything["pareto"]) == [True, True, False, False, False]
    assert (everything["score"][2:] == 0).all()  # worse than the front's anti-ideal everywhere
    np.testing.assert_allclose(everything["closeness_ttft_p90"][:2], [1.0, 0.0])


def test_model_summary_takes_each_models_best_configuration() -> None:
    calculated_at = datetime(2026, 1, 6, 3, tzinfo=UTC)
    frame = results_frame(
        result_row(model="fast", batch_size=1, ttft_p90_ms=40.0, tpot_p90_ms=8.0, throughput_tokens_sec=3000.0),
        result_row(model="fast", batch_size=32, ttft_p90_ms=400.0, tpot_p90_ms=40.0, throughput_tokens_sec=900.0),
        result_row(model="slow", batch_size=8, ttft_p90_ms=300.0, tpot_p90_ms=30.0, throughput_tokens_sec=600.0),
        result_row(model="twin-a", batch_size=4, ttft_p90_ms=100.0, tpot_p90_ms=20.0),
        result_row(model="twin-b", batch_size=4, ttft_p90_ms=100.0, tpot_p90_ms=20.0),
    )
    use_case = chatbot(id=uuid.uuid4())

    ranking = rank_use_case(frame, use_case, calculated_at=calculated_at, ttl=timedelta(hours=6))

    by_model = {record.model_id: record for record in ranking.model_rankings}
    fast = by_model[uid("model", "fast")]
    assert fast.rank_position == 1 and fast.score_breakdown["best_configuration"]["batch_size"] == 1
    assert fast.composite_score == pytest.approx(ranking.configurations["score"].max())
    assert fast.expires_at - fast.calculated_at == timedelta(hours=6) and fast.calculated_at == calculated_at
    assert fast.use_case_category == "chatbot"
    assert by_model[uid("model", "twin-a")].rank_position == by_model[uid("model", "twin-b")].rank_position == 2
    assert by_model[uid("model", "slow")].rank_position == 4
    assert set(fast.score_breakdown["criteria"]) == set(ranking.weights)
    json.dumps([record.model_dump(mode="json") for record in ranking.model_rankings + ranking.model_use_cases])

    suitability = {record.model_id: record for record in ranking.model_use_cases}
    assert [record.recommended for record in ranking.model_use_cases] == [True, False, False, False]
    assert suitability[uid("model", "fast")].use_case_id == use_case.id
    assert suitability[uid("model", "fast")].performance_summary["configurations_ranked"] == 2
    assert suitability[uid("model", "slow")].suitability_score == by_model[uid("model", "slow")].composite_score


def test_rank_use_cases_ranks_each_workload_separately_and_empty_ones_empty() -> None:
    frame = results_frame(
        result_row(workload_type="chatbot", model="a"),
        result_row(workload_type="summarization", model="b", ttft_p90_ms=2000.0),
    )
    summarization = UseCaseCriteria(subcategory="summarization", weights={"throughput": 1.0})
    code = UseCaseCriteria(subcategory="code", weights={"ttft_p90": 1.0})

    rankings = rank_use_cases(frame, [chatbot(), summarization, code])

    assert rankings["chatbot"].configurations["model_name"].tolist() == ["a"]
    assert rankings["summarization"].configurations["model_name"].tolist() == ["b"]
    assert rankings["code"].configurations.empty and rankings["code"].model_rankings == ()
    assert len({record.calculated_at for ranking in rankings.values() for record in ranking.model_rankings}) == 1


def test_bad_use_cases_and_frames_are_rejected() -> None:
    with pytest.raises(ValidationError, match="non-negative"):
        chatbot(weights={"ttft_p90": -1.0, "throughput": 1.0})
    with pytest.raises(ValidationError, match="needs weight"):
        chatbot(weights={"accuracy": 1.0})
    with pytest.raises(ValidationError):
        chatbot(weights={"latency": 1.0})
    with pytest.raises(ValueError, match="missing: runner"):
        rank_use_case(results_frame(result_row()).drop(columns=["runner"]), chatbot())
    with pytest.raises(ValueError, match="TTL must be positive"):
        rank_use_case(results_frame(result_row()), chatbot(), ttl=timedelta(0))


def test_use_case_criteria_from_a_taxonomy_row() -> None:
    criteria = UseCaseCriteria.from_taxonomy(
        subcategory="qa",
        category="knowledge",
        characteristics={"typical_input_tokens": 512, "sla": {"ttft_p90_ms": 500, "tpot_p90_ms": None}},
        default_weights={"ttft_p90": 0.5, "accuracy": 0.5},
    )
    assert (criteria.sla_ttft_p90_ms, criteria.sla_tpot_p90_ms) == (500, None)


# --- store ------------------------------------------------------------------------------------------------------


def test_load_results_frame_joins_every_dimension(engine: Engine) -> None:
    rows = [
        result_row(spot_available=True, spot_cost_per_hour_usd=1.5, accuracy_score=0.8),
        result_row(model="qwen", version="int4-awq", workload_type="qa", benchmark_date=date(2026, 1, 6)),
    ]
    insert_results(engine, rows)

    frame = load_results_frame(engine)

    assert list(frame.columns) == list(RESULT_FRAME_COLUMNS)
    assert sorted(frame["version_key"]) == ["llama@fp16", "qwen@int4-awq"]
    llama = frame.set_index("version_key").loc["llama@fp16"]
    assert llama["model_id"] == uid("model", "llama") and llama["spot_available"]
    assert (llama["spot_cost_per_hour_usd"], llama["accuracy_score"]) == (1.5, 0.8)
    assert np.isnan(frame.set_index("version_key").loc["qwen@int4-awq", "accuracy_score"])
    assert load_results_frame(engine, workload_types=["qa"])["version_key"].tolist() == ["qwen@int4-awq"]
    assert load_results_frame(engine, day=DAY)["version_key"].tolist() == ["llama@fp16"]
    assert load_results_frame(engine, since=date(2026, 1, 6))["version_key"].tolist() == ["qwen@int4-awq"]
    assert load_results_frame(engine, workload_types=["nothing"]).empty


def test_refresh_rankings_stores_and_then_replaces_a_use_cases_rows(engine: Engine) -> None:
    use_case_id = insert_use_case(engine, sla={"ttft_p90_ms": 500, "tpot_p90_ms": 50})
    insert_use_case(engine, "summarization", weights={"throughput": 0.5, "cost_per_million_tokens": 0.5})
    insert_results(
        engine,
        [
            result_row(model="fast", ttft_p90_ms=50.0),
            result_row(model="slow", ttft_p90_ms=400.0),
            result_row(model="too-slow", ttft_p90_ms=900.0),
        ],
    )
    assert [use_case.subcategory for use_case in load_use_cases(engine)] == ["chatbot", "summarization"]

    rankings = refresh_rankings(engine, ttl=timedelta(hours=2))

    assert rankings["chatbot"].excluded["sla_ttft_p90"] == 1 and rankings["summarization"].configurations.empty
    with engine.connect() as connection:
        stored = connection.execute(
            select(Model.name, ModelRanking.rank_position, ModelRanking.use_case_category, ModelRanking.expires_at)
            .join(Model, Model.id == ModelRanking.model_id)
            .order_by(ModelRanking.rank_position)
        ).all()
        recommended = connection.execute(
            select(Model.name).join(ModelUseCase, ModelUseCase.model_id == Model.id).where(ModelUseCase.recommended)
        ).scalars()
        assert [(name, rank, use_case) for name, rank, use_case, _ in stored] == [
            ("fast", 1, "chatbot"),
            ("slow", 2, "chatbot"),
        ]
        assert list(recommended) == ["fast"]

    insert_results(engine, [result_row(model="fast", ttft_p90_ms=450.0, benchmark_date=date(2026, 1, 7))])
    refresh_rankings(engine)

    with engine.connect() as connection:
        names = connection.execute(
            select(Model.name)
            .join(ModelUseCase, ModelUseCase.model_id == Model.id)
            .where(ModelUseCase.use_case_id == use_case_id, ModelUseCase.recommended)
        ).scalars()
        assert list(names) == ["slow"]
        assert connection.execute(select(func.count()).select_from(ModelRanking)).scalar_one() == 2


def test_write_rankings_is_all_or_nothing(engine: Engine) -> None:
    chatbot_id = insert_use_case(engine, sla={"ttft_p90_ms": 500})
    qa_id = insert_use_case(engine, "qa")
    insert_results(engine, [result_row(model="kept"), result_row(model="kept", workload_type="qa")])
    refresh_rankings(engine)

    frame = results_frame(result_row(model="replacement"), result_row(model="not-in-db", workload_type="qa"))
    rankings = rank_use_cases(frame, [chatbot(id=chatbot_id), chatbot(id=qa_id, subcategory="qa")])
    with pytest.raises(Exception, match="foreign key"):
        write_rankings(engine, rankings.values())  # "not-in-db" has no models row: the whole write rolls back
    with pytest.raises(ValueError, match="without a use_case_taxonomy id"):
        write_rankings(engine, [rank_use_case(frame, chatbot())])

    with engine.connect() as connection:
        names = connection.execute(select(Model.name).join(ModelRanking, ModelRanking.model_id == Model.id)).scalars()
        assert sorted(names) == ["kept", "kept"]


def test_stored_deployment_rankings_read_back_as_ranked(engine: Engine) -> None:
    """Every deployment the ranking considered is stored with the model rankings (one transaction) and reads back
    as the ranking returned it: ranked configurations with their closeness, unranked ones with their reason."""
    insert_use_case(engine, sla={"ttft_p90_ms": 500, "tpot_p90_ms": 50})
    insert_use_case(engine, "summarization", weights={"throughput": 0.5, "cost_per_million_tokens": 0.5})
    insert_results(
        engine,
        [
            result_row(model="fast", ttft_p90_ms=50.0, accuracy_score=0.7),
            result_row(model="slow", ttft_p90_ms=400.0, batch_size=4),
            result_row(model="too-slow", ttft_p90_ms=900.0),
            result_row(model="untimed", ttft_p90_ms=None),
        ],
    )
    ranked = refresh_rankings(engine)["chatbot"]

    stored = load_stored_rankings(engine, load_use_cases(engine))

    assert set(stored) == {"chatbot", "summarization"}
    chatbot_stored = stored["chatbot"]
    pd.testing.assert_frame_equal(
        chatbot_stored.configurations, ranked.configurations, check_dtype=False, check_exact=False
    )
    assert chatbot_stored.unranked.set_index("model_name")["status"].to_dict() == {
        "too-slow": "breaks_sla",
        "untimed": "incomplete",
    }
    assert (chatbot_stored.weights, chatbot_stored.excluded, chatbot_stored.notes) == (
        ranked.weights,
        ranked.excluded,
        ranked.notes,
    )
    assert chatbot_stored.considered == 4 and chatbot_stored.calculated_at == ranked.calculated_at
    assert stored["summarization"].considered == 0 and stored["summarization"].configurations.empty


def test_stored_deployment_rankings_are_replaced_with_the_model_rankings_or_not_at_all(engine: Engine) -> None:
    chatbot_id = insert_use_case(engine, sla={"ttft_p90_ms": 500})
    insert_results(engine, [result_row(model="kept"), result_row(model="kept", batch_size=2)])
    refresh_rankings(engine)
    before = load_stored_rankings(engine, load_use_cases(engine))["chatbot"].configurations

    frame = results_frame(result_row(model="not-in-db"))
    with pytest.raises(Exception, match="foreign key"):
        write_rankings(engine, rank_use_cases(frame, [chatbot(id=chatbot_id)]).values())

    after = load_stored_rankings(engine, load_use_cases(engine))["chatbot"].configurations
    pd.testing.assert_frame_equal(after, before)
    insert_results(engine, [result_row(model="newcomer", ttft_p90_ms=40.0)])
    refresh_rankings(engine)
    replaced = load_stored_rankings(engine, load_use_cases(engine))["chatbot"].configurations
    assert replaced["model_name"].tolist()[0] == "newcomer" and len(replaced) == 3
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(DeploymentRanking)).scalar_one() == 3


def test_the_schema_knows_every_deployment_status_the_ranking_gives() -> None:
    assert DEPLOYMENT_STATUSES == RANKING_STATUSES


def test_the_deployment_row_is_declared_once_and_the_orm_mirrors_it() -> None:
    """``rankings.DeploymentRow`` declares a deployment; the stored columns are its fields without the catalog labels,
    and ``deployment_rankings`` (the migration's ORM mirror) has exactly those, besides its id."""
    from benchmark_platform.orm import DeploymentRanking
    from benchmark_platform.ranking.rankings import DEPLOYMENT_COLUMNS, DEPLOYMENT_LABELS, STORED_DEPLOYMENT_COLUMNS

    stored = {column.key for column in DeploymentRanking.__table__.columns} - {"id"}
    assert stored == set(STORED_DEPLOYMENT_COLUMNS)
    assert set(DEPLOYMENT_LABELS) <= set(DEPLOYMENT_COLUMNS) and not set(DEPLOYMENT_LABELS) & stored
