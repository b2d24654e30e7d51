"""The invariants of the stored rankings, as queries returning the rows that break them (none: the invariant holds).
The asset checks (``defs/checks.py``) run them; ``store.py`` writes what they read. Read-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text


def unranked_or_out_of_range(engine: Engine) -> list[Any]:
    """Use cases without any ranking, or with a composite score outside [0, 1]: (use case, rankings, min, max)."""
    with engine.connect() as connection:
        return connection.execute(
            text(
                "SELECT u.subcategory, count(r.id), min(r.composite_score), max(r.composite_score)"
                " FROM use_case_taxonomy u LEFT JOIN model_rankings r ON r.use_case_category = u.subcategory"
                " GROUP BY u.subcategory"
                " HAVING count(r.id) = 0 OR min(r.composite_score) < 0 OR max(r.composite_score) > 1"
            )
        ).all()


def expired_rankings(engine: Engine) -> list[Any]:
    """Rankings past their expiry (the refresh is overdue): (use case, model, expires_at)."""
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT use_case_category, model_id, expires_at FROM model_rankings WHERE expires_at <= now()")
        ).all()
