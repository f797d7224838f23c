"""Where a score stands on a leaderboard: rank, percentile, and the distance to Kaggle's medal lines.

Medal zones by team count, from Kaggle's progression rules (https://www.kaggle.com/progression, "Competition
medals"; percentages are rounded down; "Top 10 + 0.2%" adds one gold per 500 teams):

    teams     0-99       100-249    250-999          1000+
    bronze    top 40%    top 40%    top 100          top 10%
    silver    top 20%    top 20%    top 50           top 5%
    gold      top 10%    top 10     top 10 + 0.2%    top 10 + 0.2%

Medals are awarded on the private leaderboard at the end: on the public one these lines are an estimate."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

MEDALS = ("gold", "silver", "bronze")


def medal_ranks(teams: int) -> dict[str, int]:
    """The last rank that still earns each medal (0: no such medal) for a competition of `teams` teams."""
    if teams < 0:
        raise ValueError(f"a team count cannot be negative ({teams})")
    extra_gold = 10 + teams * 2 // 1000  # top 10 + 0.2%, rounded down
    if teams < 100:
        zones = (teams * 10 // 100, teams * 20 // 100, teams * 40 // 100)
    elif teams < 250:
        zones = (10, teams * 20 // 100, teams * 40 // 100)
    elif teams < 1000:
        zones = (extra_gold, 50, 100)
    else:
        zones = (extra_gold, teams * 5 // 100, teams * 10 // 100)
    return {medal: min(rank, teams) for medal, rank in zip(MEDALS, zones)}


@dataclass
class MedalLine:
    medal: str
    rank: int  # the last rank in the zone
    score: float | None  # the score at that rank on this leaderboard
    distance: float | None  # how far your score is from it, positive = you are inside the zone (better)


@dataclass
class Placement:
    score: float
    rank: int
    teams: int
    percentile: float  # the share of teams at or above your rank, in % (1.0 = top 1%)
    medal: str | None  # the medal zone you are in on this leaderboard, if any
    lines: list[MedalLine]

    def as_dict(self) -> dict:
        return asdict(self)


def place(score: float, board: list[float], lower_is_better: bool) -> Placement:
    """Rank `score` among the leaderboard's scores (one per team). Teams with the same score share a rank (the
    best one). When no team holds your exact score you are counted as one more team."""
    if not math.isfinite(score):
        raise ValueError(f"the score {score} is not a finite number")
    best_first = sorted((s for s in board if math.isfinite(s)), reverse=not lower_is_better)
    better = sum(1 for s in best_first if (s < score if lower_is_better else s > score))
    on_board = any(s == score for s in best_first)
    teams = len(best_first) + (0 if on_board else 1)
    if not on_board:
        best_first.insert(better, score)
    rank = better + 1
    sign = -1.0 if lower_is_better else 1.0
    lines = []
    for medal, last in medal_ranks(teams).items():
        line_score = best_first[last - 1] if last else None
        distance = None if line_score is None else sign * (score - line_score)
        lines.append(MedalLine(medal, last, line_score, distance))
    medal = next((line.medal for line in lines if line.rank and rank <= line.rank), None)
    return Placement(score, rank, teams, round(100.0 * rank / teams, 2), medal, lines)
