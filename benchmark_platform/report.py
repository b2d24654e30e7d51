"""One self-contained HTML report of the rankings: per use case, the chart the field reads first (throughput per
GPU versus interactivity, one line per hardware × framework, Pareto front marked) and cost versus interactivity,
the latency trade-offs with their Pareto fronts, the top deployments, and how one model version fares across
hardware and frameworks.

Plotly draws the charts and its JavaScript is inlined once, so the file opens anywhere without a network. Simulated
numbers (runner = simulated: roofline estimates, not measurements) are announced in banners, drawn as open markers
and hatched bars, and tagged in every table, so nobody mistakes an estimate for a measurement.

The report never ranks: ``render_report`` is pure (the use cases' rankings in, HTML out) and ``write_report``, the
database edge around it, reads the rankings the rankings step stored (``ranking.store.load_stored_rankings``).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots
from pydantic import BaseModel
from sqlalchemy import Engine

from benchmark_platform import files, planner, queue
from benchmark_platform.manifests import list_version_keys, resolve_model_version
from benchmark_platform.progress import ProgressReporter
from benchmark_platform.ranking import UseCaseCriteria, UseCaseRanking, criteria, pareto_front
from benchmark_platform.ranking.rankings import BREAKS_SLA, INCOMPLETE
from benchmark_platform.ranking.store import RankingsNotStoredError, load_stored_rankings, load_use_cases

DEFAULT_TOP = 10
# Beyond this max/min ratio an axis is drawn logarithmic: an L4 and an 8xH100 differ by orders of magnitude.
LOG_AXIS_RATIO = 30.0
FIGURE_HEIGHT = 420
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
_BAR_COLORS = ("#1f77b4", "#2ca02c", "#ff7f0e")


class ReportScopeError(ValueError):
    """The report was asked for a model version or use case the database does not know; the message lists
    the known ones."""


class ReportSummary(BaseModel):
    """What ``write_report`` wrote: the file, the use cases in it, and how many ranked configurations (and of
    those, simulated ones) it shows."""

    path: Path
    model_version: str | None
    use_cases: list[str]
    configurations: int
    simulated: int
    bytes: int


@dataclass(frozen=True)
class _Rendered:
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
            "sla_total": int(unranked["status"].eq(BREAKS_SLA).sum()),
        },
    )


def _deployments(ranking: UseCaseRanking) -> pd.DataFrame:
    """Every deployment the ranking considered, ranked or not."""
    columns = ["version_key", "hardware_name", "framework_name", "simulated"]
    return pd.concat([ranking.configurations[columns], ranking.unranked[columns]], ignore_index=True)


def trade_off_front(x: np.ndarray, y: np.ndarray, *, higher_y_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """The points of the two-axis Pareto front (lower x is better), ordered by x so they can be joined by a line.

    This is the front of the plotted pair only; the ranking's own Pareto flag is over all its criteria.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    on_front = pareto_front(np.column_stack([x, y]), [False, higher_y_better])
    order = np.lexsort((-y[on_front] if higher_y_better else y[on_front], x[on_front]))
    return x[on_front][order], y[on_front][order]


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


def _axis(values: pd.Series) -> dict[str, Any]:
    """A linear axis, or a logarithmic one labelled at powers of ten when the values span orders of magnitude."""
    finite = values[np.isfinite(values) & (values > 0)]
    if len(finite) and finite.max() / finite.min() > LOG_AXIS_RATIO:
        return {"type": "log", "dtick": 1}
    return {"type": "linear"}


def _figure_html(figure: go.Figure, div_id: str) -> str:
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOT_CONFIG)


def _hover_data(configs: pd.DataFrame) -> list[list[Any]]:
    return [
        [
            row.version_key,
            row.hardware_name,
            row.framework_name,
            int(row.batch_size),
            int(row.rank),
            float(row.score),
            "SIMULATED estimate" if row.simulated else "measured",
            f"TP{int(row.tensor_parallel)} × {int(row.replicas)}",
        ]
        for row in configs.itertuples()
    ]


def interactivity_front(interactivity: np.ndarray, y: np.ndarray, *, higher_y_better: bool) -> np.ndarray:
    """Indices of the points on the (interactivity, y) Pareto front (more interactivity is better), ordered by
    interactivity so they can be joined by a line."""
    x, y = np.asarray(interactivity, dtype=float), np.asarray(y, dtype=float)
    on_front = np.flatnonzero(pareto_front(np.column_stack([x, y]), [True, higher_y_better]))
    return on_front[np.argsort(x[on_front], kind="stable")]


def _interactivity_figure(
    configs: pd.DataFrame, *, y_column: str, y_label: str, higher_y_better: bool, title: str, div_id: str
) -> str:
    """One line per hardware × framework through its own front (its deployments' best trade-offs over TP and
    concurrency), every deployment as a marker (open when simulated), and the use case's front dashed."""
    hover = (
        "<b>%{customdata[0]}</b><br>%{customdata[1]} · %{customdata[2]} · %{customdata[7]} replicas · "
        "concurrency %{customdata[3]} per replica<br>rank %{customdata[4]}, score %{customdata[5]:.3f}"
        f"<br>interactivity: %{{x:.4g}} tokens/s per user<br>{y_label}: %{{y:.4g}}<extra>%{{customdata[6]}}</extra>"
    )
    usable = configs[np.isfinite(configs["interactivity_tokens_sec"]) & np.isfinite(configs[y_column])]
    figure = go.Figure()
    for (hardware, framework), series in usable.groupby(["hardware_name", "framework_name"], sort=True):
        front = series.iloc[
            interactivity_front(series["interactivity_tokens_sec"], series[y_column], higher_y_better=higher_y_better)
        ]
        figure.add_trace(
            go.Scatter(
                x=series["interactivity_tokens_sec"],
                y=series[y_column],
                mode="markers",
                name=f"{hardware} · {framework}",
                legendgroup=f"{hardware}/{framework}",
                customdata=_hover_data(series),
                hovertemplate=hover,
                marker={"size": 7, "symbol": ["circle-open" if s else "circle" for s in series["simulated"]]},
            )
        )
        figure.add_trace(
            go.Scatter(
                x=front["interactivity_tokens_sec"],
                y=front[y_column],
                mode="lines",
                legendgroup=f"{hardware}/{framework}",
                showlegend=False,
                line={"width": 1.5},
                hoverinfo="skip",
            )
        )
    overall = usable.iloc[
        interactivity_front(usable["interactivity_tokens_sec"], usable[y_column], higher_y_better=higher_y_better)
    ]
    figure.add_trace(
        go.Scatter(
            x=overall["interactivity_tokens_sec"],
            y=overall[y_column],
            mode="lines+markers",
            line={"color": "#d62728", "width": 3, "dash": "dash"},
            marker={"symbol": "star", "size": 11, "color": "#d62728"},
            name=f"Pareto front ({len(overall)})",
            customdata=_hover_data(overall),
            hovertemplate=hover,
        )
    )
    figure.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        height=FIGURE_HEIGHT,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"font": {"size": 10}},
        xaxis={"title": {"text": "interactivity (tokens/s per user = 1000 / TPOT p50)"}},
        yaxis={"title": {"text": y_label}, **_axis(usable[y_column])},
    )
    return _figure_html(figure, div_id)


def _scatter_figure(
    configs: pd.DataFrame, *, x_key: str, y_key: str, higher_y_better: bool, title: str, div_id: str
) -> str:
    x_column, y_column = criteria.CRITERIA[x_key].column, criteria.CRITERIA[y_key].column
    x_label, y_label = _axis_label(x_key), _axis_label(y_key)
    hover = (
        "<b>%{customdata[0]}</b><br>%{customdata[1]} · %{customdata[2]} · batch %{customdata[3]}"
        "<br>rank %{customdata[4]}, score %{customdata[5]:.3f}"
        f"<br>{x_label}: %{{x:.4g}}<br>{y_label}: %{{y:.4g}}<extra>%{{customdata[6]}}</extra>"
    )
    figure = go.Figure()
    for simulated, name, symbol in ((False, "measured", "circle"), (True, "simulated (estimate)", "circle-open")):
        part = configs[configs["simulated"] == simulated]
        if part.empty:
            continue
        figure.add_trace(
            go.Scatter(
                x=part[x_column],
                y=part[y_column],
                mode="markers",
                name=name,
                customdata=_hover_data(part),
                hovertemplate=hover,
                marker={
                    "symbol": symbol,
                    "size": 10,
                    "color": part["score"],
                    "coloraxis": "coloraxis",
                    "line": {"width": 2} if simulated else {"width": 0.5, "color": "#333"},
                },
            )
        )
    front_x, front_y = trade_off_front(configs[x_column], configs[y_column], higher_y_better=higher_y_better)
    figure.add_trace(
        go.Scatter(
            x=front_x,
            y=front_y,
            mode="lines",
            line={"shape": "hv", "color": "#d62728", "width": 2, "dash": "dash"},
            name=f"Pareto front ({len(front_x)})",
            hoverinfo="skip",
        )
    )
    best = configs.iloc[0]
    figure.add_annotation(
        x=_annotation_coordinate(best[x_column], configs[x_column]),
        y=_annotation_coordinate(best[y_column], configs[y_column]),
        text="#1",
        showarrow=True,
        arrowhead=2,
        ax=24,
        ay=-28,
    )
    figure.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        height=FIGURE_HEIGHT,
        margin={"l": 60, "r": 20, "t": 70, "b": 50},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        coloraxis={"colorscale": "Viridis", "cmin": 0, "cmax": 1, "colorbar": {"title": {"text": "score"}}},
        xaxis={"title": {"text": x_label}, **_axis(configs[x_column])},
        yaxis={"title": {"text": y_label}, **_axis(configs[y_column])},
    )
    return _figure_html(figure, div_id)


def _annotation_coordinate(value: float, values: pd.Series) -> float:
    """Plotly places annotations on a log axis by log10 of the value."""
    return float(np.log10(value)) if _axis(values)["type"] == "log" else float(value)


def _axis_label(key: str) -> str:
    return criteria.CRITERIA[key].axis_label


def _best_per(configs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of ``column``: its best-ranked configuration (configurations come sorted best first)."""
    return configs.drop_duplicates(column, keep="first")


def _comparison_figure(best: pd.DataFrame, *, group: str, latency_key: str, title: str, div_id: str) -> str:
    metrics = ("throughput", "cost_per_million_tokens", latency_key)
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=[_axis_label(key) for key in metrics])
    hover = (
        "<b>%{x}</b>: %{y:.4g}<br>%{customdata[0]} · %{customdata[1]} · %{customdata[2]} · batch %{customdata[3]}"
        "<br>rank %{customdata[4]}, score %{customdata[5]:.3f}<extra>%{customdata[6]}</extra>"
    )
    patterns = ["/" if simulated else "" for simulated in best["simulated"]]
    for position, key in enumerate(metrics, start=1):
        figure.add_trace(
            go.Bar(
                x=best[group],
                y=best[criteria.CRITERIA[key].column],
                name=_axis_label(key),
                customdata=_hover_data(best),
                hovertemplate=hover,
                marker={"color": _BAR_COLORS[position - 1], "pattern": {"shape": patterns}},
                showlegend=False,
            ),
            row=1,
            col=position,
        )
        figure.update_yaxes(**_axis(best[criteria.CRITERIA[key].column]), row=1, col=position)
    figure.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        height=FIGURE_HEIGHT,
        margin={"l": 60, "r": 20, "t": 80, "b": 110},
    )
    return _figure_html(figure, div_id)


def table_columns() -> tuple[tuple[str, str, str | None], ...]:
    """The top-configurations table's (column, header, format): the deployment, every registered criterion, then
    what serving it means (interactivity, node throughput, price basis) and its Pareto and simulated flags."""
    return (
        ("rank", "rank", "d"),
        ("score", "score", ".3f"),
        ("version_key", "model version", None),
        ("hardware_name", "hardware", None),
        ("framework_name", "framework", None),
        ("tensor_parallel", "TP", "d"),
        ("replicas", "replicas", "d"),
        ("batch_size", "concurrency / replica", "d"),
        *((c.column, c.short_label, c.format) for c in criteria.CRITERIA.values()),
        ("interactivity_tokens_sec", "tok/s per user", ".1f"),
        ("throughput_tokens_sec", "tok/s per node", ",.0f"),
        ("price_basis", "price", None),
        ("pareto", "Pareto (all criteria)", None),
        ("simulated", "numbers", None),
    )


def _cell(column: str, value: Any, spec: str | None) -> str:
    if column == "simulated":
        return '<td><span class="tag-simulated">SIMULATED</span></td>' if value else "<td>measured</td>"
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
        cells = "".join(_cell(column, row[column], spec) for column, _, spec in columns)
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
        f"{len(ranking.configurations)} of {ranking.considered} configurations ranked; excluded: "
        f"{excluded['sla_total']} breaking the SLA, {excluded['incomplete']} incomplete.</p>"
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
    deployments = _deployments(ranking)
    benchmarked = deployments.loc[deployments["version_key"] == version]
    for group, label in (("hardware_name", "hardware"), ("framework_name", "framework")):
        best = _best_per(mine, group)
        parts.append(
            _simulated_banner(int(best["simulated"].sum()), len(best), f"in this per-{label} comparison")
            + '<div class="figure">'
            + _comparison_figure(
                best,
                group=group,
                latency_key=latency_key,
                title=f"{version}: best configuration per {label}",
                div_id=f"{slug}-per-{label}",
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
    latency = criteria.CRITERIA[latency_key].label
    parts.append('<div class="charts">')
    for y_column, y_label, higher_better, name in (
        ("output_tokens_sec_per_gpu", "throughput per GPU (output tokens/s)", True, "throughput per GPU"),
        ("cost_per_million_tokens", "cost per million output tokens ($)", False, "cost"),
    ):
        figure = _interactivity_figure(
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
        figure = _scatter_figure(
            configs,
            x_key=latency_key,
            y_key=y_key,
            higher_y_better=higher_better,
            title=f"{ranking.use_case.subcategory}: {name} vs {latency}",
            div_id=f"{slug}-{name}-vs-latency",
        )
        parts.append(f'<div class="figure">{figure}</div>')
    parts.append("</div>")
    shown = configs.head(top)
    parts.append(f"<h3>Top {len(shown)} configurations</h3>")
    parts.append(_simulated_banner(int(shown["simulated"].sum()), len(shown), "in this table"))
    parts.append(_table(shown))
    parts.append(_comparisons(ranking, model_version, slug))
    parts.append("</section>")
    return "".join(parts)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 16px 24px; color: #222; }
h1 { margin-bottom: 4px; } h2 { border-bottom: 2px solid #ddd; padding-bottom: 4px; margin-top: 40px; }
h2 small, h3 small { color: #777; font-weight: normal; font-size: 0.7em; }
.facts, .scope { color: #444; } .notes { color: #8a5300; }
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
nav a { margin-right: 12px; }
"""


def _render(
    rankings: Sequence[UseCaseRanking],
    *,
    model_version: str | None,
    top: int,
    generated_at: datetime,
    progress: ProgressReporter | None,
    pruning_note: str = "",
) -> _Rendered:
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
            f'<p class="scope">{_text(pruning_note)}</p>' if pruning_note else "",
            f"<nav>{nav}</nav>" if nav else '<p class="empty">No use case to report.</p>',
            *sections,
            "</body></html>",
        ]
    )
    return _Rendered(page, [ranking.use_case.subcategory for ranking in scoped], ranked, simulated)


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
    return _render(
        rankings,
        model_version=model_version,
        top=top,
        generated_at=generated_at or datetime.now(UTC),
        progress=progress,
    ).html


def _choices(known: Sequence[str]) -> str:
    return ", ".join(known) if known else "none"


def resolve_scope(
    engine: Engine, *, model_version: str | None = None, use_cases: Sequence[str] | None = None
) -> list[UseCaseCriteria]:
    """Check the requested model version and use cases against the database; return the chosen use cases'
    criteria (all of the taxonomy when none are named). Raises ReportScopeError naming the known values."""
    taxonomy = load_use_cases(engine)
    if model_version is not None:
        with engine.connect() as connection:
            versions = list(list_version_keys(connection))
        if model_version not in versions:
            raise ReportScopeError(f"unknown model version {model_version!r}; known: {_choices(versions)}")
    if use_cases is None:
        return taxonomy
    by_name = {use_case.subcategory: use_case for use_case in taxonomy}
    unknown = [name for name in use_cases if name not in by_name]
    if unknown:
        raise ReportScopeError(f"unknown use case {', '.join(map(repr, unknown))}; known: {_choices(list(by_name))}")
    return [by_name[name] for name in dict.fromkeys(use_cases)]


def pruning_note(engine: Engine, model_version: str | None) -> str:
    """One sentence on what the adaptive planner skipped in scope, why, and the GPU-hours that saved."""
    version_id = None
    if model_version is not None:
        with engine.connect() as connection:
            version_id = resolve_model_version(connection, model_version)
    pruning = queue.pruning_summary(engine, version_id)
    if not pruning.skipped_by_reason:
        return ""
    reasons = ", ".join(f"{reason.replace('_', ' ')} {count}" for reason, count in pruning.skipped_by_reason.items())
    return (
        f"Adaptive benchmarking skipped {sum(pruning.skipped_by_reason.values())} configs that could not change any "
        f"use case's top {planner.DEFAULT_SETTINGS.top_k} or Pareto front ({reasons}), saving about "
        f"{pruning.gpu_hours_saved:.0f} of {pruning.gpu_hours_saved + pruning.gpu_hours_to_run:.0f} GPU-hours "
        "(run times predicted by the simulator). `benchmark-platform requeue VERSION` measures them."
    )


def stored_rankings(
    engine: Engine, *, model_version: str | None = None, use_cases: Sequence[str] | None = None
) -> list[UseCaseRanking]:
    """The stored rankings the report covers, in taxonomy order: the named use cases, or every use case with a
    deployment in scope. Raises ReportScopeError for unknown names and RankingsNotStoredError when a named use case
    (or, with none named, every one) has no stored ranking yet."""
    chosen = resolve_scope(engine, model_version=model_version, use_cases=use_cases)
    stored = load_stored_rankings(engine, chosen)
    if use_cases is not None:
        if missing := [use_case.subcategory for use_case in chosen if use_case.subcategory not in stored]:
            raise RankingsNotStoredError(f"no stored ranking for use case {', '.join(map(repr, missing))}")
        return [stored[use_case.subcategory] for use_case in chosen]
    if not stored:
        raise RankingsNotStoredError("no stored rankings")
    return [
        stored[use_case.subcategory]
        for use_case in chosen
        if use_case.subcategory in stored and scoped_ranking(stored[use_case.subcategory], model_version).considered
    ]


def write_report(
    engine: Engine,
    out_path: Path | str,
    *,
    model_version: str | None = None,
    use_cases: list[str] | None = None,
    top: int = DEFAULT_TOP,
    progress: ProgressReporter | None = None,
) -> ReportSummary:
    """Render the report from the stored rankings (``stored_rankings``; nothing is ranked here) and write it to
    ``out_path`` (replaced whole, never left half-written). Without ``use_cases``, every use case with a deployment
    in scope is reported."""
    rankings = stored_rankings(engine, model_version=model_version, use_cases=use_cases)
    rendered = _render(
        rankings,
        model_version=model_version,
        top=top,
        generated_at=datetime.now(UTC),
        progress=progress,
        pruning_note=pruning_note(engine, model_version),
    )
    data = rendered.html.encode("utf-8")
    path = files.write_output(out_path, data).resolve()
    return ReportSummary(
        path=path,
        model_version=model_version,
        use_cases=rendered.use_cases,
        configurations=rendered.configurations,
        simulated=rendered.simulated,
        bytes=len(data),
    )
