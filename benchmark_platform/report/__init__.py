"""The HTML report of the stored rankings: ``report.html`` draws it (pure), ``report.charts`` its figures; this
module is its edge with the database. It never ranks and never reads the queue or the planner: it checks the scope
against the database, loads the rankings the rankings step stored (``ranking.store.load_stored_rankings``, with what
the planner skipped) and writes the page whole.

Plotly draws the charts and its JavaScript is inlined once, so the file opens anywhere without a network.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel
from sqlalchemy import Engine

from benchmark_platform import files
from benchmark_platform.manifests import list_version_keys
from benchmark_platform.progress import ProgressReporter
from benchmark_platform.ranking import UseCaseCriteria, UseCaseRanking
from benchmark_platform.ranking.store import (
    RankingsNotStoredError,
    load_stored_rankings,
    load_use_cases,
    with_predictors,
)
from benchmark_platform.report.charts import trade_off_front
from benchmark_platform.report.html import DEFAULT_TOP, render_report, render_scoped, scoped_ranking

__all__ = [
    "DEFAULT_TOP",
    "ReportScopeError",
    "ReportSummary",
    "render_report",
    "resolve_scope",
    "stored_rankings",
    "trade_off_front",
    "write_report",
]


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
    """Render the report from the stored rankings (``stored_rankings``; nothing is ranked here), each simulated
    number labelled with the predictor that made it (``with_predictors``), and write it to
    ``out_path`` (replaced whole, never left half-written). Without ``use_cases``, every use case with a deployment
    in scope is reported."""
    rankings = [
        with_predictors(engine, ranking)
        for ranking in stored_rankings(engine, model_version=model_version, use_cases=use_cases)
    ]
    rendered = render_scoped(
        rankings, model_version=model_version, top=top, generated_at=datetime.now(UTC), progress=progress
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
