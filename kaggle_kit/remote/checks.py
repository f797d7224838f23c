"""`kaggle-kit doctor`, Kaggle side: credentials (never their value), the client's timeout setting and the rules."""

from __future__ import annotations

from kaggle_kit.competition.spec import rules_url
from kaggle_kit.config import ProjectConfig
from kaggle_kit.doctor import Check
from kaggle_kit.errors import KitError, RemoteError
from kaggle_kit.remote.client import (
    CREDENTIALS_HINT,
    call,
    credentials_problem,
    credentials_source,
    default_timeout,
    get_api,
    optional_timeout,
)


def check_credentials() -> Check:
    problem = credentials_problem()
    if problem:  # the client would find no usable credentials: `status` and every remote command fail
        return Check("kaggle credentials", False, problem, CREDENTIALS_HINT)
    source = credentials_source()
    detail = f"from {source}" if source else "none found"
    return Check("kaggle credentials", source is not None, detail, CREDENTIALS_HINT)


def check_timeout() -> Check:
    try:
        return Check("KAGGLE_KIT_TIMEOUT", True, f"{default_timeout():.0f}s per call")
    except KitError as exc:
        return Check("KAGGLE_KIT_TIMEOUT", False, exc.message, "unset it, or give seconds, e.g. 120")


def check_rules(cfg: ProjectConfig) -> Check:
    """A 403 on the competition's file listing means its rules are not accepted."""
    name = "competition rules"
    try:
        api = get_api()
        call("list competition files", lambda: api.competition_list_files(cfg.competition), retries=1,
             competition=cfg.competition, timeout=optional_timeout())  # a diagnosis: never minutes of silence
    except KitError as exc:
        if isinstance(exc, RemoteError) and exc.status == 403:
            return Check(name, False, "not accepted", f"accept them at {rules_url(cfg.competition)}")
        return Check(name, False, f"could not check: {exc.message}", exc.hint or "")
    return Check(name, True, f"accepted for {cfg.competition}")


def remote_checks(cfg: ProjectConfig, offline: bool) -> list[Check]:
    checks = [check_timeout(), check_credentials()]
    if not offline and all(c.ok for c in checks):
        checks.append(check_rules(cfg))
    return checks
