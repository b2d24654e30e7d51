"""The report's charts (Plotly): throughput per GPU and cost versus interactivity with each hardware × framework's
front, the latency trade-offs with their Pareto fronts, and one version's best configuration per hardware or
framework. Pure: frames of ranked configurations in, HTML fragments out (Plotly's JavaScript is inlined once by
``report.html``). Simulated configurations are drawn as open markers and hatched bars."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from benchmark_platform.domain import deployment_shape, serving_options
from benchmark_platform.ranking import criteria, pareto_front

# Beyond this max/min ratio an axis is drawn logarithmic: an L4 and an 8xH100 differ by orders of magnitude.
LOG_AXIS_RATIO = 30.0


FIGURE_HEIGHT = 420


PLOT_CONFIG = {"displaylogo": False, "responsive": True}


_BAR_COLORS = ("#1f77b4", "#2ca02c", "#ff7f0e")


def trade_off_front(x: np.ndarray, y: np.ndarray, *, higher_y_better: bool) -> tuple[np.ndarray, np.ndarray]:
    """The points of the two-axis Pareto front (lower x is better), ordered by x so they can be joined by a line.

    This is the front of the plotted pair only; the ranking's own Pareto flag is over all its criteria.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    on_front = pareto_front(np.column_stack([x, y]), [False, higher_y_better])
    order = np.lexsort((-y[on_front] if higher_y_better else y[on_front], x[on_front]))
    return x[on_front][order], y[on_front][order]


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
            (f"SIMULATED · {row.predictor}" if getattr(row, "predictor", None) else "SIMULATED estimate")
            if row.simulated
            else "measured",
            deployment_shape(int(row.tensor_parallel), serving_options(row), int(row.replicas)),
        ]
        for row in configs.itertuples()
    ]


def interactivity_front(interactivity: np.ndarray, y: np.ndarray, *, higher_y_better: bool) -> np.ndarray:
    """Indices of the points on the (interactivity, y) Pareto front (more interactivity is better), ordered by
    interactivity so they can be joined by a line."""
    x, y = np.asarray(interactivity, dtype=float), np.asarray(y, dtype=float)
    on_front = np.flatnonzero(pareto_front(np.column_stack([x, y]), [True, higher_y_better]))
    return on_front[np.argsort(x[on_front], kind="stable")]


def interactivity_figure(
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


def scatter_figure(
    configs: pd.DataFrame,
    *,
    x_key: str,
    y_key: str,
    higher_y_better: bool,
    title: str,
    div_id: str,
    registry: Mapping[str, criteria.Criterion],
) -> str:
    """``y_key`` against ``x_key`` (criteria as the use case ranks on them: ``registry``), with the trade-off front."""
    x_column, y_column = registry[x_key].column, registry[y_key].column
    x_label, y_label = registry[x_key].axis_label, registry[y_key].axis_label
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
        predictors = sorted(set(part["predictor"].dropna())) if simulated and "predictor" in part else []
        figure.add_trace(
            go.Scatter(
                x=part[x_column],
                y=part[y_column],
                mode="markers",
                name=f"simulated ({', '.join(predictors)})" if predictors else name,
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


def best_per(configs: pd.DataFrame, column: str) -> pd.DataFrame:
    """Per value of ``column``: its best-ranked configuration (configurations come sorted best first)."""
    return configs.drop_duplicates(column, keep="first")


def comparison_figure(
    best: pd.DataFrame,
    *,
    group: str,
    latency_key: str,
    title: str,
    div_id: str,
    registry: Mapping[str, criteria.Criterion],
) -> str:
    metrics = ("throughput", "cost_per_million_tokens", latency_key)
    figure = make_subplots(rows=1, cols=len(metrics), subplot_titles=[registry[key].axis_label for key in metrics])
    hover = (
        "<b>%{x}</b>: %{y:.4g}<br>%{customdata[0]} · %{customdata[1]} · %{customdata[2]} · batch %{customdata[3]}"
        "<br>rank %{customdata[4]}, score %{customdata[5]:.3f}<extra>%{customdata[6]}</extra>"
    )
    patterns = ["/" if simulated else "" for simulated in best["simulated"]]
    for position, key in enumerate(metrics, start=1):
        figure.add_trace(
            go.Bar(
                x=best[group],
                y=best[registry[key].column],
                name=registry[key].axis_label,
                customdata=_hover_data(best),
                hovertemplate=hover,
                marker={"color": _BAR_COLORS[position - 1], "pattern": {"shape": patterns}},
                showlegend=False,
            ),
            row=1,
            col=position,
        )
        figure.update_yaxes(**_axis(best[registry[key].column]), row=1, col=position)
    figure.update_layout(
        title={"text": title, "x": 0.01},
        template="plotly_white",
        height=FIGURE_HEIGHT,
        margin={"l": 60, "r": 20, "t": 80, "b": 110},
    )
    return _figure_html(figure, div_id)
