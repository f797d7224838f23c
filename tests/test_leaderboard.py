"""`leaderboard`: the medal lines by team count, the placement maths, and the command against the fake."""

from __future__ import annotations

import json

import pytest

from conftest import one_line_error, run_cli
from kaggle_kit.competition.medals import medal_ranks, place


@pytest.mark.parametrize("teams, gold, silver, bronze", [
    (0, 0, 0, 0),
    (9, 0, 1, 3),  # percentages round down: no gold for under 10 teams
    (99, 9, 19, 39),
    (100, 10, 20, 40),  # 100-249: gold is the top 10
    (249, 10, 49, 99),
    (250, 10, 50, 100),  # 250-999: fixed lines; gold top 10 + 0.2% (0.5 rounds down)
    (500, 11, 50, 100),  # "500 teams -> gold to the top 11" (one extra per 500 teams)
    (999, 11, 50, 100),
    (1000, 12, 50, 100),  # 1000+: 5% and 10%
    (1001, 12, 50, 100),
    (5000, 20, 250, 500),  # "5000 teams -> gold to the top 20"
])
def test_medal_ranks_follow_kaggles_table(teams, gold, silver, bronze):
    assert medal_ranks(teams) == {"gold": gold, "silver": silver, "bronze": bronze}


def test_place_lower_is_better_on_the_board():
    board = [0.80 + i / 1000 for i in range(300)]  # 0.800 (1st) ... 1.099 (300th)
    p = place(board[100], board, lower_is_better=True)
    assert (p.rank, p.teams, p.percentile, p.medal) == (101, 300, 33.67, None)
    lines = {line.medal: line for line in p.lines}
    assert lines["gold"].rank == 10 and lines["gold"].score == pytest.approx(0.809)
    assert lines["bronze"].score == pytest.approx(0.899) and lines["bronze"].distance == pytest.approx(-0.001)
    assert lines["silver"].distance == pytest.approx(-0.051)


def test_place_a_score_not_on_the_board_counts_one_more_team():
    p = place(0.8005, [0.80 + i / 1000 for i in range(300)], lower_is_better=True)
    assert (p.rank, p.teams, p.medal) == (2, 301, "gold")
    assert {line.medal: line.distance > 0 for line in p.lines} == {"gold": True, "silver": True, "bronze": True}


def test_place_higher_is_better_and_ties_share_the_best_rank():
    p = place(0.7, [0.9, 0.8, 0.7, 0.7, 0.6], lower_is_better=False)
    assert (p.rank, p.teams, p.percentile) == (3, 5, 60.0)
    assert {line.medal: line.rank for line in p.lines} == {"gold": 0, "silver": 1, "bronze": 2}
    assert p.medal is None and p.lines[0].distance is None and p.lines[2].distance == pytest.approx(-0.1)


def test_place_refuses_a_non_finite_score():
    with pytest.raises(ValueError, match="not a finite number"):
        place(float("nan"), [1.0], lower_is_better=True)


def _board(n: int) -> list[dict]:
    return [{"teamId": i, "teamName": f"team {i}", "submissionDate": "2026-11-01T00:00:00Z",
             "score": f"{0.80 + i / 1000:.3f}"} for i in range(n)]


def test_leaderboard_places_the_best_public_score_on_the_public_board(fake, project):
    fake.leaderboard = _board(300)
    fake.private_leaderboard = [{**t, "score": "0.5"} for t in _board(300)]  # what Kaggle answers unless public
    fake.hide_new_submission = 0
    for score in ("0.95", "0.9005", ""):  # the best COMPLETE one counts; a pending one has no score
        fake._add_submission({"submissionDescription": score, "competitionName": "lmsys-chatbot-arena"}, "s.csv")
        if score:
            fake.finish_submission(fake.submissions[0]["ref"], "COMPLETE", score)
    result = run_cli("leaderboard", "--json")
    assert result.exit_code == 0, result.output
    placed = json.loads(result.stdout)
    assert placed["submission"]["public_score"] == "0.9005"
    assert (placed["rank"], placed["teams"], placed["medal"]) == (102, 301, None)
    lines = {line["medal"]: line for line in placed["lines"]}
    assert lines["bronze"]["rank"] == 100 and lines["bronze"]["score"] == pytest.approx(0.899)
    assert lines["bronze"]["distance"] == pytest.approx(-0.0015)
    calls = fake.calls("GetLeaderboard")
    assert len(calls) == 6 and all(c["body"]["overridePublic"] is True for c in calls)  # pages of 50
    text = run_cli("leaderboard").output
    assert "ranks 102 of 301 teams (top 33.89%), outside the medal zones" in text
    assert "bronze top 100  line 0.899: short by 0.0015" in text


def test_leaderboard_without_a_scored_submission_is_one_line(fake, project):
    fake.leaderboard = _board(20)
    one_line_error(run_cli("leaderboard"), "no scored submission to lmsys-chatbot-arena yet")
    assert fake.calls("GetLeaderboard") == []
