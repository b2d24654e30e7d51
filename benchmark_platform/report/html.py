"""The report's HTML, pure: the use cases' stored rankings in, one self-contained page out. Per use case the
charts (``report.charts``), the top deployments and how one model version fares across hardware and frameworks;
simulated numbers (runner = simulated: roofline estimates, not measurements) are announced in banners and tagged in
every table, so nobody mistakes an estimate for a measurement. What the adaptive planner skipped comes from the
rankings too (``UseCaseRanking.pruning``)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from plotly.offline import get_plotlyjs

from benchmark_platform.progress import ProgressReporter
from benchmark_platform.ranking import UseCaseRanking, criteria
from benchmark_platform.ranking.predictors import held_out_block
from benchmark_platform.ranking.rankings import BREAKS_SLA, INCOMPLETE, NO_PRICE, shape_of, with_shapes
from benchmark_platform.report.charts import best_per, comparison_figure, interactivity_figure, scatter_figure

DEFAULT_TOP = 10


@dataclass(frozen=True)
class Rendered:
    """A drawn page and what it shows: the use cases, ranked configurations and, of those, simulated ones."""

    html: str
    use_cases: list[str]
    configurations: int
    simulated: int


def scoped_ranking(ranking: UseCaseRanking, model_version: str | None) -> UseCaseRanking:
    """What the report shows of a use case's ranking: all of it, or one model version's deployments (``version_key``)
    with their use-case-wide ranks and scores, and the counts recounted over that version's deployments."""
    if model_version is None:
        return ranking
    configurations = ranking.configurations[ranking.configurations["version_key"] == model_version]
    unranked = ranking.unranked[ranking.unranked["version_key"] == model_version]
    return replace(
        ranking,
        configurations=configurations.reset_index(drop=True),
        unranked=unranked.reset_index(drop=True),
        considered=len(configurations) + len(unranked),
        excluded={
            "incomplete": int(unranked["status"].eq(INCOMPLETE).sum()),
            "no_price": int(unranked["status"].eq(NO_PRICE).sum()),
            "sla_total": int(unranked["status"].eq(BREAKS_SLA).sum()),
        },
    )


def _deployments(ranking: UseCaseRanking) -> pd.DataFrame:
    """Every deployment the ranking considered, ranked or not."""
    columns = ["version_key", "hardware_name", "framework_name", "simulated"]
    return pd.concat([ranking.configurations[columns], ranking.unranked[columns]], ignore_index=True)


def _text(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return "–"
    return format(value, spec)


def _slug(index: int, name: str) -> str:
    return f"uc{index}-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _latency_criterion(ranking: UseCaseRanking) -> str:
    """The latency the use case cares most about (the heaviest-weighted latency criterion; the first on a tie)."""
    weights = ranking.use_case.weights
    latencies = [key for key, criterion in criteria.CRITERIA.items() if criterion.latency]
    return max(latencies, key=lambda key: weights.get(key, 0.0))


def table_columns(
    registry: Mapping[str, criteria.Criterion] | None = None,
) -> tuple[tuple[str, str, str | None], ...]:
    """The top-configurations table's (column, header, format): the deployment, every criterion as the use case ranks
    on it (``registry``; cost in its unit), then what serving it means (interactivity, node throughput, price basis)
    and its Pareto and simulated flags."""
    registry = criteria.CRITERIA if registry is None else registry
    return (
        ("rank", "rank", "d"),
        ("score", "score", ".3f"),
        ("version_key", "model version", None),
        ("hardware_name", "hardware", None),
        ("framework_name", "framework", None),
        ("shape", "shape (TP, options)", None),
        ("replicas", "replicas", "d"),
        ("batch_size", "concurrency / replica", "d"),
        *((c.column, c.short_label, c.format) for c in registry.values()),
        ("interactivity_tokens_sec", "tok/s per user", ".1f"),
        ("throughput_tokens_sec", "tok/s per node", ",.0f"),
        ("price_basis", "price", None),
        ("pareto", "Pareto (all criteria)", None),
        ("source", "numbers", None),
    )


SOURCE_LABELS = {"measured": "measured", "inferencex": "measured: InferenceX", "mlperf": "measured: MLPerf"}


def _cell(column: str, value: Any, spec: str | None, predictor: str | None = None) -> str:
    if column == "source":
        if value == "simulated":
            named = f" · {_text(predictor)}" if predictor else ""
            return f'<td><span class="tag-simulated">SIMULATED</span>{named}</td>'
        return f'<td><span class="tag-source">{_text(SOURCE_LABELS.get(value, f"measured: {value}"))}</span></td>'

    if column == "pareto":
        return f"<td>{'yes' if value else 'no'}</td>"
    if spec is None:
        return f"<td>{_text(value)}</td>"
    return f'<td class="num">{_text(_number(value, spec))}</td>'


def _table(configs: pd.DataFrame, columns: Sequence[tuple[str, str, str | None]] | None = None) -> str:
    columns = columns or table_columns()
    head = "".join(f"<th>{_text(label)}</th>" for _, label, _ in columns)
    rows = []
    for _, row in configs.iterrows():
        cells = "".join(_cell(column, row[column], spec, row.get("predictor")) for column, _, spec in columns)
        rows.append(f'<tr class="{"simulated" if row["simulated"] else "measured"}">{cells}</tr>')
    return f'<table class="configs"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _simulated_banner(simulated: int, total: int, where: str) -> str:
    if not simulated:
        return ""
    share = "All" if simulated == total else f"{simulated} of {total}"
    return (
        f'<div class="banner-simulated" role="alert"><strong>SIMULATED NUMBERS.</strong> {share} configurations '
        f"{where} are roofline estimates (runner = simulated), not measurements: open markers, hatched bars and "
        "SIMULATED tags show which.</div>"
    )


def _use_case_header(ranking: UseCaseRanking) -> str:
    use_case = ranking.use_case
    sla = ", ".join(
        f"{label} ≤ {value:g} ms"
        for label, value in (("TTFT p90", use_case.sla_ttft_p90_ms), ("TPOT p90", use_case.sla_tpot_p90_ms))
        if value is not None
    )
    weights = ", ".join(f"{criteria.CRITERIA[key].label} {weight:.2f}" for key, weight in ranking.weights.items())
    excluded = ranking.excluded
    notes = "".join(f"<li>{_text(note)}</li>" for note in ranking.notes)
    return (
        f"<h2>{_text(use_case.subcategory)}"
        + (f" <small>{_text(use_case.category)}</small>" if use_case.category else "")
        + "</h2>"
        f'<p class="facts">SLA: {_text(sla or "none")}. TOPSIS weights: {_text(weights)}. '
        f"Costs: {_text(use_case.cost_statement)}. "
        f"{len(ranking.configurations)} of {ranking.considered} configurations ranked; excluded: "
        f"{excluded['sla_total']} breaking the SLA, {excluded['incomplete']} incomplete, "
        f"{excluded['no_price']} without a {_text(use_case.price_basis)} price.</p>"
        + (f'<ul class="notes">{notes}</ul>' if notes else "")
    )


def _comparisons(ranking: UseCaseRanking, model_version: str | None, slug: str) -> str:
    configs = ranking.configurations
    version = model_version or configs.iloc[0]["version_key"]
    why = "the report's model version" if model_version else "the top-ranked model version; --model-version chooses"
    mine = configs[configs["version_key"] == version]
    parts = [f"<h3>{_text(version)} across hardware and frameworks <small>({_text(why)})</small></h3>"]
    if mine.empty:
        parts.append(f"<p>No configuration of {_text(version)} meets this use case's SLA.</p>")
        return "".join(parts)
    parts.append(
        "<p>Each bar is the best-ranked configuration of this model version on that hardware (or framework); "
        "hover for the configuration. Hatched bars are simulated.</p>"
    )
    latency_key = _latency_criterion(ranking)
    registry = ranking.use_case.registry
    deployments = _deployments(ranking)
    benchmarked = deployments.loc[deployments["version_key"] == version]
    for group, label in (("hardware_name", "hardware"), ("framework_name", "framework")):
        best = best_per(mine, group)
        parts.append(
            _simulated_banner(int(best["simulated"].sum()), len(best), f"in this per-{label} comparison")
            + '<div class="figure">'
            + comparison_figure(
                best,
                group=group,
                latency_key=latency_key,
                title=f"{version}: best configuration per {label}",
                div_id=f"{slug}-per-{label}",
                registry=registry,
            )
            + "</div>"
        )
        missing = sorted(set(benchmarked[group]) - set(best[group]))
        if missing:
            parts.append(
                f"<p>Benchmarked {label} with no configuration meeting the SLA or complete: "
                f"{_text(', '.join(missing))}.</p>"
            )
    return "".join(parts)


_VERSUS = (
    ("ttft_p90_ms", "simulated_ttft_p90_ms", "TTFT p90 (ms)", ".0f"),
    ("tpot_p90_ms", "simulated_tpot_p90_ms", "TPOT p90 (ms)", ".1f"),
    ("output_tokens_sec_per_gpu", "simulated_output_tokens_sec_per_gpu", "output tok/s per GPU", ",.0f"),
)


def _simulated_versus_measured(configs: pd.DataFrame) -> str:
    """The ranked deployments measured where the simulator also has an estimate of the same shape: both figures
    and their ratio, so a reader sees how far the estimates that rank the rest may be off."""
    both = configs[configs["simulated_output_tokens_sec_per_gpu"].notna()]
    if both.empty:
        return ""
    head = "<th>rank</th><th>deployment</th><th>numbers</th>" + "".join(
        f"<th>{_text(label)}: measured</th><th>simulated</th><th>simulated / measured</th>"
        for _, _, label, _ in _VERSUS
    )
    rows = []
    for _, row in both.iterrows():
        deployment = " · ".join(str(row[c]) for c in ("version_key", "hardware_name", "framework_name"))
        shape = f"{shape_of(row)} · concurrency {row['batch_size']}"
        cells = f"<td>{_number(row['rank'], 'd')}</td><td>{_text(deployment)} · {shape}</td>"
        cells += _cell("source", row["source"], None)
        for measured, simulated, _, spec in _VERSUS:
            ratio = row[simulated] / row[measured] if row[measured] else None
            cells += "".join(
                f'<td class="num">{_text(_number(value, fmt))}</td>'
                for value, fmt in ((row[measured], spec), (row[simulated], spec), (ratio, ".2f"))
            )
        rows.append(f"<tr>{cells}</tr>")
    return (
        "<h3>Simulated versus measured</h3><p>Ranked deployments measured where the simulator also estimated the same "
        "shape: the measurement ranks them; the estimate is shown beside it.</p>"
        f'<table class="configs versus"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def _held_out_note(shown: pd.DataFrame) -> str:
    """What the validation rows say of the predictors behind the table's simulated numbers (``held_out_block``)."""
    lines = held_out_block(shown["held_out"]) if "held_out" in shown else []
    if not lines:
        return ""
    heading, *phrases = lines
    items = "".join(f"<li>{_text(phrase.strip())}</li>" for phrase in phrases)
    return f'<div class="held-out"><p>{_text(heading)}</p><ul>{items}</ul></div>'


def _use_case_section(ranking: UseCaseRanking, model_version: str | None, top: int, slug: str) -> str:
    configs = ranking.configurations
    parts = [f'<section class="use-case" id="{slug}">', _use_case_header(ranking)]
    if configs.empty:
        reason = "no benchmark results" if ranking.considered == 0 else "no configuration meets the SLA"
        parts.append(f'<p class="empty">Nothing to rank: {reason}.</p></section>')
        return "".join(parts)
    simulated = int(configs["simulated"].sum())
    parts.append(_simulated_banner(simulated, len(configs), "ranked for this use case"))
    latency_key = _latency_criterion(ranking)
    registry = ranking.use_case.registry
    latency = registry[latency_key].label
    parts.append('<div class="charts">')
    for key, higher_better, name in (
        ("throughput", True, "throughput per GPU"),
        ("cost_per_million_tokens", False, "cost"),
    ):
        y_column, y_label = registry[key].column, registry[key].axis_label
        figure = interactivity_figure(
            configs,
            y_column=y_column,
            y_label=y_label,
            higher_y_better=higher_better,
            title=f"{ranking.use_case.subcategory}: {name} vs interactivity",
            div_id=f"{slug}-{name.replace(' ', '-')}-vs-interactivity",
        )
        parts.append(f'<div class="figure">{figure}</div>')
    for y_key, higher_better, name in (
        ("throughput", True, "throughput"),
        ("cost_per_million_tokens", False, "cost"),
    ):
        figure = scatter_figure(
            configs,
            x_key=latency_key,
            y_key=y_key,
            higher_y_better=higher_better,
            title=f"{ranking.use_case.subcategory}: {name} vs {latency}",
            div_id=f"{slug}-{name}-vs-latency",
            registry=registry,
        )
        parts.append(f'<div class="figure">{figure}</div>')
    parts.append("</div>")
    shown = configs.head(top)
    parts.append(f"<h3>Top {len(shown)} configurations</h3>")
    parts.append(_simulated_banner(int(shown["simulated"].sum()), len(shown), "in this table"))
    parts.append(_table(with_shapes(shown), table_columns(registry)))
    parts.append(_held_out_note(shown))
    parts.append(_simulated_versus_measured(configs))
    parts.append(_comparisons(ranking, model_version, slug))
    parts.append("</section>")
    return "".join(parts)


def pruning_note(rankings: Sequence[UseCaseRanking], model_version: str | None) -> str:
    """One sentence on what the adaptive planner skipped in scope (the use cases reported, all versions or one),
    why, and the GPU-hours that saved: summed from what the rankings stored (``UseCaseRanking.pruning``)."""
    skipped: dict[str, int] = {}
    saved = to_run = 0.0
    top_k = None
    for ranking in rankings:
        for version, summary in ranking.pruning.get("versions", {}).items():
            if model_version is not None and version != model_version:
                continue
            top_k = ranking.pruning["top_k"]
            for reason, count in summary["skipped_by_reason"].items():
                skipped[reason] = skipped.get(reason, 0) + count
            saved += summary["gpu_hours_saved"]
            to_run += summary["gpu_hours_to_run"]
    if not skipped:
        return ""
    reasons = ", ".join(f"{reason.replace('_', ' ')} {count}" for reason, count in sorted(skipped.items()))
    return (
        f"Adaptive benchmarking skipped {sum(skipped.values())} configs that could not change any use case's top "
        f"{top_k} or Pareto front ({reasons}), saving about {saved:.0f} of {saved + to_run:.0f} GPU-hours (run times "
        "predicted by the simulator). `benchmark-platform requeue VERSION` measures them."
    )


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 16px 24px; color: #222; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 40px; }
h2 small, h3 small { color: #777; font-weight: normal; font-size: 0.7em; }
.facts, .scope, .held-out { color: #444; } .notes { color: #8a5300; }
.banner-simulated { background: #fff3cd; border: 2px solid #e0a800; color: #5c4300; padding: 10px 14px;
                    border-radius: 6px; margin: 12px 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.figure { border: 1px solid #eee; border-radius: 6px; margin: 8px 0; min-width: 0; overflow: hidden; }
table.configs { border-collapse: collapse; font-size: 13px; width: 100%; }
table.configs th, table.configs td { border-bottom: 1px solid #e5e5e5; padding: 4px 8px; text-align: left; }
table.configs td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.configs tr.simulated { background: #fffaf0; }
.tag-simulated { background: #e0a800; color: #000; font-weight: bold; padding: 1px 6px; border-radius: 3px;
                 font-size: 11px; }
.tag-source { background: #d4edda; color: #000; padding: 1px 6px; border-radius: 3px; font-size: 11px; }
nav a { margin-right: 12px; }
"""


def render_scoped(
    rankings: Sequence[UseCaseRanking],
    *,
    model_version: str | None,
    top: int,
    generated_at: datetime,
    progress: ProgressReporter | None,
) -> Rendered:
    """``render_report`` with what the page shows counted (``write_report`` and the report asset report them)."""
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    scoped = [scoped_ranking(ranking, model_version) for ranking in rankings]
    sections, ranked, simulated = [], 0, 0
    with progress if progress is not None else nullcontext():
        for index, ranking in enumerate(scoped):
            sections.append(_use_case_section(ranking, model_version, top, _slug(index, ranking.use_case.subcategory)))
            ranked += len(ranking.configurations)
            simulated += int(ranking.configurations["simulated"].sum())
            if progress is not None:
                progress.update(index + 1, len(scoped))
    scope = f"model version {model_version}" if model_version else "all model versions"
    deployments = pd.concat([_deployments(ranking) for ranking in scoped], ignore_index=True) if scoped else None
    considered = 0 if deployments is None else len(deployments)
    simulated_deployments = 0 if deployments is None else int(deployments["simulated"].astype(bool).sum())
    computed = sorted({ranking.calculated_at for ranking in scoped})
    ranked_at = f" Rankings computed {computed[-1]:%Y-%m-%d %H:%M} UTC." if computed else ""
    nav = "".join(
        f'<a href="#{_slug(index, ranking.use_case.subcategory)}">{_text(ranking.use_case.subcategory)}</a>'
        for index, ranking in enumerate(scoped)
    )
    has_figures = ranked > 0
    note = pruning_note(rankings, model_version)
    page = "".join(
        [
            '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
            f"<title>Benchmark report: {_text(scope)}</title><style>{_STYLE}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>' if has_figures else "",
            "</head><body><h1>LLM inference benchmark report</h1>",
            f'<p class="scope">Scope: {_text(scope)}; {considered} deployments considered over the use cases '
            f"({considered - simulated_deployments} measured, {simulated_deployments} simulated).{ranked_at} Generated "
            f"{generated_at:%Y-%m-%d %H:%M} UTC from the stored rankings. Scores are TOPSIS closeness within each use "
            "case over every model version ranked; a deployment is model version × hardware × framework × "
            "tensor-parallel degree × concurrency per replica, ranked on its use case's representative sequence "
            "lengths (the ranking module's rules). The dashed line on each scatter plot is the Pareto front of the "
            "two plotted axes.</p>",
            _simulated_banner(simulated, ranked, "in this report"),
            f'<p class="scope">{_text(note)}</p>' if note else "",
            f"<nav>{nav}</nav>" if nav else '<p class="empty">No use case to report.</p>',
            *sections,
            "</body></html>",
        ]
    )
    return Rendered(page, [ranking.use_case.subcategory for ranking in scoped], ranked, simulated)


def render_report(
    rankings: Sequence[UseCaseRanking],
    *,
    model_version: str | None = None,
    top: int = DEFAULT_TOP,
    generated_at: datetime | None = None,
    progress: ProgressReporter | None = None,
) -> str:
    """The report's HTML for the use cases' ``rankings`` (in that order), without touching a database.

    ``model_version`` (a version key) limits the report to that version's deployments; ``top`` is the number of rows
    of each top-configurations table; ``progress`` (not yet entered) is advanced once per use case.
    """
    return render_scoped(
        rankings,
        model_version=model_version,
        top=top,
        generated_at=generated_at or datetime.now(UTC),
        progress=progress,
    ).html
