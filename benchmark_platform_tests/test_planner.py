"""The adaptive planner's rules, each on a hand-built case (pure: no database)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from benchmark_platform import planner
from benchmark_platform.planner import Config, Metrics, Settings, UseCase
from benchmark_platform.ranking import UseCaseCriteria, rank_use_case, topsis
from benchmark_platform.ranking.criteria import CRITERIA as RANKING_CRITERIA
from benchmark_platform_tests.factories import result_row, results_frame

CHAT = UseCase(
    "chat",
    sla_ttft_p90_ms=500,
    sla_tpot_p90_ms=50,
    weights={"ttft_p90": 0.3, "tpot_p90": 0.3, "throughput": 0.2, "cost_per_million_tokens": 0.2},
)
OFFLINE = UseCase("offline", weights={"throughput": 0.5, "cost_per_million_tokens": 0.5})
USE_CASES = {"chat": CHAT, "offline": OFFLINE}
GOOD = Metrics(ttft_p90_ms=100, tpot_p90_ms=10, throughput_tokens_sec=1000)


def config(key, *, hw="h1", fw="vllm", seq=1024, c=1, status="pending", **more) -> Config:
    values = dict(
        key=key, hardware=hw, framework=fw, workload="chat", sequence_length=seq, concurrency=c, gpu_count=1,
        hourly_price_usd=2.0, status=status,
    )  # fmt: skip
    values.update(more)
    return Config(**values)


def scaled(metrics: Metrics, latency: float = 1.0, throughput: float = 1.0) -> Metrics:
    return Metrics(
        metrics.ttft_p90_ms * latency, metrics.tpot_p90_ms * latency, metrics.throughput_tokens_sec * throughput
    )


def decide(configs, predictions, measured, settings=planner.DEFAULT_SETTINGS):
    return planner.plan(configs, predictions, measured, USE_CASES, settings).decisions


def test_sla_break_at_a_lower_concurrency_skips_higher_concurrency_of_that_deployment_only():
    configs = [config(f"c{c}", c=c, status="completed" if c <= 2 else "pending") for c in (1, 2, 4, 8)]
    configs += [config("other-hw-c4", hw="h2", c=4)]
    measured = {"c1": GOOD, "c2": Metrics(ttft_p90_ms=600, tpot_p90_ms=10, throughput_tokens_sec=1500)}
    predictions = {c.key: GOOD for c in configs}
    decisions = decide(configs, predictions, measured)
    assert decisions["c4"].reason == decisions["c8"].reason == planner.EXCEEDS_SLA_AT_LOWER_CONCURRENCY
    assert decisions["other-hw-c4"].action == planner.RUN
    # A config also serving a use case whose SLA still holds is not skipped.
    serving_both = [dataclasses.replace(c, serves=("chat", "offline")) for c in configs]
    assert decide(serving_both, predictions, measured)["c4"].action == planner.RUN


def test_sla_break_at_one_sequence_length_skips_the_rest_of_that_configuration():
    configs = [
        config("long", seq=4096, c=4, status="completed"),
        config("short", seq=1024, c=4),
        config("short-c2", seq=1024, c=2),
    ]
    measured = {"long": Metrics(ttft_p90_ms=100, tpot_p90_ms=80, throughput_tokens_sec=900)}
    decisions = decide(configs, {c.key: GOOD for c in configs}, measured)
    assert decisions["short"].reason == planner.EXCEEDS_SLA_AT_OTHER_SEQUENCE_LENGTH
    assert decisions["short-c2"].action == planner.RUN


@pytest.mark.parametrize(("last_gain", "skipped"), [(0.03, True), (0.08, False)])
def test_saturated_throughput_skips_higher_concurrency(last_gain: float, skipped: bool):
    throughput = {1: 100.0, 2: 190.0, 4: 190.0 * (1 + last_gain)}
    configs = [config(f"c{c}", c=c, status="completed" if c in throughput else "pending") for c in (1, 2, 4, 8, 16)]
    measured = {f"c{c}": Metrics(50, 10, t) for c, t in throughput.items()}
    decisions = decide(configs, {c.key: GOOD for c in configs}, measured)
    expected = planner.THROUGHPUT_SATURATED if skipped else None
    assert decisions["c8"].reason == decisions["c16"].reason == expected


def test_saturation_needs_every_sequence_length_of_the_configuration():
    configs = []
    measured = {}
    for seq, gain in ((1024, 1.01), (4096, 1.9)):  # the short prompt saturated, the long one did not
        for c in (1, 2):
            configs.append(config(f"s{seq}-c{c}", seq=seq, c=c, status="completed"))
            measured[f"s{seq}-c{c}"] = Metrics(50, 10, 100 * (gain if c == 2 else 1))
        configs.append(config(f"s{seq}-c4", seq=seq, c=4))
    decisions = decide(configs, {c.key: GOOD for c in configs}, measured)
    assert decisions["s1024-c4"].action == decisions["s4096-c4"].action == planner.RUN


def test_a_config_whose_optimistic_bound_breaks_the_sla_is_skipped():
    configs = [config("hopeless", hw="h1"), config("plausible", hw="h2")]
    predictions = {"hopeless": Metrics(5000, 10, 100), "plausible": Metrics(900, 10, 100)}  # prior margin: x2.2
    decisions = decide(configs, predictions, {})
    assert decisions["hopeless"].reason == planner.CANNOT_MEET_SLA
    assert decisions["plausible"].action == planner.RUN


def _incumbents(count: int) -> tuple[list[Config], dict]:
    configs = [config(f"best{i}", hw=f"fast{i}", status="completed") for i in range(count)]
    return configs, {c.key: scaled(GOOD, latency=0.5, throughput=2.0) for c in configs}


def test_dominated_needs_top_k_measured_configurations_beating_the_optimistic_bound():
    incumbents, measured = _incumbents(5)
    candidate = config("slow", hw="slow")
    predictions = {c.key: measured[c.key] for c in incumbents} | {"slow": scaled(GOOD, latency=3, throughput=0.2)}
    assert decide([*incumbents, candidate], predictions, measured)["slow"].reason == planner.DOMINATED
    fewer, measured4 = _incumbents(4)
    assert decide([*fewer, candidate], predictions, measured4)["slow"].action == planner.RUN


def test_dominated_by_planned_counts_the_pessimistic_bounds_of_configurations_that_will_run():
    """A hopeless config need not wait until five better ones are measured when their pessimistic bounds already
    beat its optimistic one; it is back to run once they are skipped instead (they will then never be measured)."""
    planned = [config(f"fast-c{2**i}", hw="fast", c=2**i) for i in range(5)]
    candidate = config("slow", hw="slow")
    predictions = {c.key: scaled(GOOD, latency=0.1, throughput=10) for c in planned}
    predictions["slow"] = scaled(GOOD, latency=3, throughput=0.2)  # prior margin x2.2 either way: still far behind

    decisions = decide([*planned, candidate], predictions, {})

    assert decisions["slow"].reason == planner.DOMINATED_BY_PLANNED
    assert all(decisions[c.key].action == planner.RUN for c in planned)
    assert decide([*planned[:4], candidate], predictions, {})["slow"].action == planner.RUN
    without = Settings(planned_dominators=False)
    assert decide([*planned, candidate], predictions, {}, without)["slow"].action == planner.RUN
    close = predictions | {"slow": scaled(GOOD, latency=0.2, throughput=5)}  # within both margins
    assert decide([*planned, candidate], close, {})["slow"].action == planner.RUN

    broke_sla = [dataclasses.replace(planned[0], status="completed"), *planned[1:], candidate]
    measured = {"fast-c1": Metrics(ttft_p90_ms=600, tpot_p90_ms=1, throughput_tokens_sec=10_000)}
    after = decide(broke_sla, predictions, measured)
    assert {after[c.key].reason for c in planned[1:]} == {planner.EXCEEDS_SLA_AT_LOWER_CONCURRENCY}
    assert after["slow"].action == planner.RUN


def test_the_margin_comes_from_the_error_seen_on_that_hardware_and_framework():
    """Slightly worse than the incumbents: kept while its pair is unknown (wide prior), skipped once measurements
    show the simulator is accurate there, kept again when they show it underestimates that pair by 2x."""
    incumbents, measured = _incumbents(5)
    predictions = {c.key: measured[c.key] for c in incumbents}
    candidate = config("close", hw="h9")
    predictions["close"] = scaled(GOOD, latency=0.6, throughput=1.7)
    settings = Settings(min_pooled_measurements=2)
    assert decide([*incumbents, candidate], predictions, measured, settings)["close"].action == planner.RUN

    evidence = [config(f"e{i}", hw="h9", seq=2048, c=2 ** (i + 3), status="completed") for i in range(3)]
    for noise, e in zip((0.99, 1.0, 1.01), evidence, strict=True):
        predictions[e.key] = Metrics(300, 30, 50)
        measured[e.key] = scaled(predictions[e.key], latency=noise, throughput=noise)
    accurate = decide([*incumbents, *evidence, candidate], predictions, measured, settings)
    assert accurate["close"].reason == planner.DOMINATED
    for e in evidence:
        measured[e.key] = scaled(predictions[e.key], latency=0.5, throughput=2.0)
    faster = decide([*incumbents, *evidence, candidate], predictions, measured, settings)
    assert faster["close"].action == planner.RUN


def test_a_configuration_with_a_started_config_is_never_cut_in_half():
    incumbents, measured = _incumbents(5)
    predictions = {c.key: measured[c.key] for c in incumbents}
    running = config("slow-long", hw="slow", seq=4096, status="running")
    waiting = config("slow-short", hw="slow", seq=1024)
    for c in (running, waiting):
        predictions[c.key] = scaled(GOOD, latency=3, throughput=0.2)
    assert decide([*incumbents, running, waiting], predictions, measured)["slow-short"].action == planner.RUN


def test_exploration_runs_one_configuration_per_unexplored_pair_first_then_the_most_promising():
    configs = [
        config("known-fast", hw="known", c=2),
        config("known-slow", hw="known", c=1),
        config("known-done", hw="known", c=4, status="completed"),
        config("new-a", hw="new", c=1),
        config("new-b", hw="new", c=2),
    ]
    predictions = {
        "known-fast": scaled(GOOD, latency=0.5, throughput=3),
        "known-slow": scaled(GOOD, latency=2, throughput=0.5),
        "known-done": GOOD,
        "new-a": scaled(GOOD, latency=1.5, throughput=0.8),
        "new-b": scaled(GOOD, latency=1.6, throughput=0.7),
    }
    decisions = decide(configs, predictions, {"known-done": GOOD})
    order = sorted((d.priority, key) for key, d in decisions.items())
    assert [key for _, key in order] == ["new-a", "known-fast", "new-b", "known-slow"]


def test_within_a_configuration_the_longest_prompt_runs_first():
    configs = [config(f"s{seq}", seq=seq) for seq in (1024, 8192, 2048)]
    decisions = decide(configs, {c.key: GOOD for c in configs}, {})
    assert sorted(decisions, key=lambda k: decisions[k].priority) == ["s8192", "s2048", "s1024"]


def test_exempt_configs_run_whatever_the_rules_say():
    configs = [config("c1", status="completed"), config("c2", c=2, exempt=True), config("c4", c=4)]
    measured = {"c1": Metrics(900, 10, 100)}
    decisions = decide(configs, {c.key: GOOD for c in configs}, measured)
    assert decisions["c2"].action == planner.RUN
    assert decisions["c4"].reason == planner.EXCEEDS_SLA_AT_LOWER_CONCURRENCY


def test_planning_again_after_applying_the_decisions_changes_nothing():
    incumbents, measured = _incumbents(6)
    predictions = {c.key: measured[c.key] for c in incumbents}
    others = [config(f"x{i}", hw=f"x{i % 3}", c=2 ** (i % 4), seq=1024 * (1 + i % 2)) for i in range(24)]
    for i, c in enumerate(others):
        predictions[c.key] = scaled(GOOD, latency=0.4 + 0.15 * i, throughput=2.2 - 0.08 * i)
    configs = [*incumbents, *others]
    first = decide(configs, predictions, measured)
    assert {d.action for d in first.values()} == {planner.RUN, planner.SKIP}
    applied = [
        dataclasses.replace(c, status="skipped")
        if first.get(c.key, planner.Decision(planner.RUN)).action == "skip"
        else c
        for c in configs
    ]
    assert decide(applied, predictions, measured) == first


def test_residual_summary_is_the_geometric_mean_and_log_spread_of_measured_over_predicted():
    configs = [config(f"k{i}", c=2**i, status="completed") for i in range(3)]
    predictions = {c.key: GOOD for c in configs}
    ratios = (0.8, 1.0, 1.25)
    measured = {c.key: scaled(GOOD, throughput=r) for c, r in zip(configs, ratios, strict=True)}
    summary = planner.residual_summary(configs, predictions, measured).pairs[("h1", "vllm")]
    throughput = summary.metrics["throughput_tokens_sec"]
    assert summary.n == 3
    assert throughput.ratio == pytest.approx(1.0)
    logs = [math.log(r) for r in ratios]
    assert throughput.sd == pytest.approx(math.sqrt(sum(v * v for v in logs) / 2))
    assert summary.metrics["ttft_p90_ms"].sd == pytest.approx(0.0)


def test_tensor_parallel_defaults_to_the_node_and_separates_deployments():
    one_group = config("tp-default", gpu_count=8)
    replicas = config("tp1", gpu_count=8, tensor_parallel=1)
    assert one_group.tensor_parallel == 8
    assert one_group.deployment != replicas.deployment


def test_what_dominance_skips_cannot_reverse_the_ranking_of_what_was_measured():
    """Configurations skipped as dominated used to reverse classic TOPSIS: ranked with them, the stretched TTFT
    column let throughput decide and the order of the five measured ones flipped. The ranking now normalises over
    the Pareto front, which they are not on: measuring them changes no score."""
    latency_and_throughput = UseCase("chatbot", weights={"ttft_p90": 0.5, "throughput": 0.5})
    front = {"c1": (100, 1000), "c2": (120, 1100), "c4": (150, 1300), "c8": (180, 1500), "c16": (200, 1600)}
    configs = [config(key, c=int(key[1:]), workload="chatbot", status="completed") for key in front]
    configs += [config(f"slow{c}", hw="h2", c=c, workload="chatbot") for c in (1, 2, 4)]
    measured = {key: Metrics(ttft, 10, throughput) for key, (ttft, throughput) in front.items()}
    slow = {f"slow{c}": Metrics(2000 + c, 10, 300 - c) for c in (1, 2, 4)}  # what they would measure
    decisions = planner.plan(configs, measured | slow, measured, {"chatbot": latency_and_throughput}).decisions
    assert {decisions[key].reason for key in slow} == {planner.DOMINATED}

    def ranked(results: dict[str, Metrics]) -> pd.DataFrame:
        # One model version per configuration: of one version, rankings rule 8 would order them by throughput alone
        # (at one price, more throughput is also less cost), which is not what this test is about.
        rows = [
            result_row(
                version=key,
                hardware=next(c.hardware for c in configs if c.key == key),
                batch_size=next(c.concurrency for c in configs if c.key == key),
                ttft_p90_ms=float(m.ttft_p90_ms),
                throughput_tokens_sec=float(m.throughput_tokens_sec),
            )
            for key, m in results.items()
        ]
        criteria = UseCaseCriteria(subcategory="chatbot", weights=dict(latency_and_throughput.weights))
        return rank_use_case(results_frame(*rows), criteria).configurations

    every_config, what_was_measured = ranked(measured | slow), ranked(measured)
    columns = ["hardware_name", "batch_size", "score"]
    pd.testing.assert_frame_equal(every_config[columns].head(5), what_was_measured[columns])
    assert list(what_was_measured["batch_size"]) == [1, 2, 4, 8, 16]
    points = np.array([[m.ttft_p90_ms, m.throughput_tokens_sec] for m in (measured | slow).values()], dtype=float)
    assert np.argmax(topsis(points, [0.5, 0.5], [False, True])) == 4  # classic TOPSIS over all: c16 first


def test_every_registered_ranking_criterion_is_known_to_the_planner():
    """A criterion the planner ignored could make dominance skip the config that wins on it."""
    known = set(planner.DOMINANCE_CRITERIA) | planner.VERSION_LEVEL_CRITERIA
    assert set(RANKING_CRITERIA) == known
