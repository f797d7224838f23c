"""README.md and docs/: links and anchors that resolve, paths that exist, the generated command table, and the
troubleshooting messages the code really prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
QUOTED_PATH = re.compile(r"`((?:kaggle_kit|tests|kernels|docs|\.ci)/[\w./-]+?)(?:::(\w+))?`")


def _prose(page: Path) -> str:
    """The page without its fenced code blocks (a link or heading inside them is an example, not a link)."""
    return re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped (word characters, '-' and ' ' stay), spaces to '-'."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6} (.+)$", _prose(page), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def test_docs_pages_exist():
    assert (ROOT / "docs" / "commands.md").exists() and len(PAGES) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    dead = []
    for target in LINK.findall(_prose(page)):
        if re.match(r"[a-z]+:", target):  # https:, mailto: ... are not ours to check offline
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            dead.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            dead.append(f"{target} (no heading #{anchor} in {linked.name})")
    assert not dead, f"{page.relative_to(ROOT)}: dead links: {dead}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_quoted_repository_path_exists(page):
    """`kaggle_kit/...`, `tests/x.py::test_y` and the like name files (and tests) that are there."""
    missing = []
    for path, name in QUOTED_PATH.findall(page.read_text(encoding="utf-8")):
        if path.startswith("kernels/build/"):  # build output, written by build-kernel
            continue
        file = ROOT / path.rstrip("/")
        if not file.exists():
            missing.append(path)
        elif name and not re.search(rf"^\s*def {name}\(", file.read_text(encoding="utf-8"), flags=re.M):
            missing.append(f"{path}::{name}")
    assert not missing, f"{page.relative_to(ROOT)} names what is not in the repository: {missing}"


def test_command_page_is_generated():
    from kaggle_kit.cli.docs import COMMANDS_PAGE, END, START, replace_table

    page = (ROOT / COMMANDS_PAGE).read_text(encoding="utf-8")
    assert START in page and END in page
    assert replace_table(page) == page, "run: python -m kaggle_kit.cli.docs"


def test_troubleshooting_messages_are_the_codes_messages():
    """Each message quoted in the troubleshooting table is printed by the code (placeholders aside)."""
    table = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "kaggle_kit").rglob("*.py"))
    messages = re.findall(r"^\| `([^`]+)`", table, flags=re.M)
    assert len(messages) >= 8
    for message in messages:
        for fragment in re.split(r"<[^>]+>|\.\.\.", message):
            fragment = fragment.strip(" ()")
            if len(fragment) >= 8:
                assert fragment.split(" (")[0] in source, f"troubleshooting message not in code: {fragment!r}"
