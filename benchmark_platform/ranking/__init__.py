"""Pure ranking maths: TOPSIS, Pareto fronts, use-case rankings, recommendations and daily statistics.

Nothing here touches the database or Dagster except ``benchmark_platform.ranking.store``, the one edge module
that loads the results frame and writes the computed rows.
"""

from benchmark_platform.ranking.criteria import CRITERIA, Criterion
from benchmark_platform.ranking.daily_stats import DAILY_STATS_COLUMNS, daily_model_stats
from benchmark_platform.ranking.frames import RESULT_FRAME_COLUMNS
from benchmark_platform.ranking.pareto import pareto_front
from benchmark_platform.ranking.rankings import (
    DEFAULT_RANKING_TTL,
    DEPLOYMENT_COLUMNS,
    ModelRankingRecord,
    ModelUseCaseRecord,
    UseCaseCriteria,
    UseCaseRanking,
    configuration_columns,
    rank_use_case,
    rank_use_cases,
)
from benchmark_platform.ranking.recommend import Constraints, Recommendation, evidence, recommend
from benchmark_platform.ranking.topsis import criterion_closeness, topsis

__all__ = [
    "CRITERIA",
    "DAILY_STATS_COLUMNS",
    "DEFAULT_RANKING_TTL",
    "DEPLOYMENT_COLUMNS",
    "RESULT_FRAME_COLUMNS",
    "Constraints",
    "Criterion",
    "ModelRankingRecord",
    "ModelUseCaseRecord",
    "Recommendation",
    "UseCaseCriteria",
    "UseCaseRanking",
    "configuration_columns",
    "criterion_closeness",
    "daily_model_stats",
    "pareto_front",
    "rank_use_case",
    "rank_use_cases",
    "evidence",
    "recommend",
    "topsis",
]
