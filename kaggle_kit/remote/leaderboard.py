"""The public leaderboard and this account's best public score, read through the kaggle client.

`competition_leaderboard_view` (kaggle 2.2.5 `kaggle_api_extended.py` L2852) returns one page and prints the next
page token instead of returning it, and GetLeaderboard answers the private leaderboard once there is one unless
`override_public` is set (kaggle-cli #731): so the pages are read through kagglesdk's `get_leaderboard` with
`override_public`, token after token. Scores are strings (`ApiLeaderboardSubmission.score`)."""

from __future__ import annotations

import math

from kaggle_kit.competition.spec import CompetitionSpec
from kaggle_kit.errors import KitError, RemoteError
from kaggle_kit.remote.client import call, get_api
from kaggle_kit.remote.submit import list_submissions

PAGE = 200
MAX_PAGES = 1000  # a token that never ends must not loop forever


def lower_is_better(spec: CompetitionSpec) -> bool:
    return spec.metric == "log_loss"


def as_score(text) -> float | None:
    """A leaderboard or submission score as a finite float; None for '', None, 'nan' or text."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def public_leaderboard(spec: CompetitionSpec) -> list[dict]:
    """Every team on the public leaderboard: {"team", "score"}, in Kaggle's order (best first)."""
    from kagglesdk.competitions.types.competition_api_service import ApiGetLeaderboardRequest

    api = get_api()
    teams: list[dict] = []
    token = ""
    for _ in range(MAX_PAGES):
        def page(token=token):
            with api.build_kaggle_client() as kaggle:
                request = ApiGetLeaderboardRequest()
                request.competition_name, request.override_public, request.page_size = spec.slug, True, PAGE
                if token:
                    request.page_token = token
                return kaggle.competitions.competition_api_client.get_leaderboard(request)

        response = call("public leaderboard", page, competition=spec.slug)
        teams += [{"team": s.team_name, "score": as_score(s.score)} for s in response.submissions or []]
        token = response.next_page_token or ""
        if not token:
            return teams
    raise RemoteError(f"public leaderboard: still more pages after {MAX_PAGES}", hint="try again later")


def best_public_score(spec: CompetitionSpec) -> dict:
    """This account's scored submission with the best public score: {"ref", "public_score", ...}."""
    scored = [s for s in list_submissions(spec)
              if s["status"] == "COMPLETE" and as_score(s["public_score"]) is not None]
    if not scored:
        raise KitError(f"no scored submission to {spec.slug} yet",
                       hint="submit first (kaggle-kit submit), then wait for the score (kaggle-kit submissions)")
    pick = min if lower_is_better(spec) else max
    return pick(scored, key=lambda s: as_score(s["public_score"]))
