"""The documents hold together: every relative link and anchor resolves, and the README stays a
newcomer's page (short, no links outside the repository, no dates or commit hashes)."""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCUMENTS = sorted(
    {
        README,
        *(ROOT / "docs").rglob("*.md"),
        *(ROOT / "bench").glob("*.md"),
        ROOT / "tests" / "README.md",
    }
)
README_MAX_LINES = 250

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"(`+).*?\1")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = ("http://", "https://", "mailto:", "#")
COMMIT_HASH = re.compile(r"\b(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", re.IGNORECASE)
DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def _prose(path: Path) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, numbered from 1."""
    lines, fenced = [], False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append((number, line))
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, only letters, digits, spaces, hyphens and
    underscores kept, each space a hyphen."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in ``path``; a repeated one gets ``-1``, ``-2``..., as on GitHub."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose(path):
        if match := HEADING.match(line):
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    """The links of ``path`` that point into the repository, with their line numbers; links in
    code (fenced blocks and code spans) are not links."""
    return [
        (number, target)
        for number, line in _prose(path)
        for target in LINK.findall(CODE_SPAN.sub("", line))
        if not target.startswith(EXTERNAL)
    ]


def broken(path: Path, target: str) -> str | None:
    """Why ``target``, linked from ``path``, does not resolve; None when it does."""
    file_part, _, anchor = target.partition("#")
    resolved = (path.parent / unquote(file_part)).resolve()
    if not resolved.is_relative_to(ROOT):
        return f"points outside the repository ({resolved})"
    if not resolved.exists():
        return f"no such file: {resolved.relative_to(ROOT)}"
    if anchor:
        if resolved.suffix != ".md" or not resolved.is_file():
            return f"an anchor into {resolved.relative_to(ROOT)}, which is no markdown file"
        if anchor not in anchors(resolved):
            return f"no heading of {resolved.relative_to(ROOT)} has the anchor #{anchor}"
    return None


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_the_documents_are_found() -> None:
    names = {_name(path) for path in DOCUMENTS}
    assert {"README.md", "docs/architecture.md", "tests/README.md", "bench/README.md"} <= names


@pytest.mark.parametrize("path", DOCUMENTS, ids=_name)
def test_every_relative_link_resolves_to_a_file_and_heading(path: Path) -> None:
    problems = [
        f"{_name(path)}:{number}: ({target}) {why}"
        for number, target in relative_links(path)
        if (why := broken(path, target)) is not None
    ]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_is_short_and_links_nothing_outside_the_repository() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, more than {README_MAX_LINES}: "
        "move the detail into docs/"
    )
    outside = [f"README.md:{n}: {line}" for n, line in enumerate(lines, 1) if "../shared" in line]
    assert not outside, "README.md names ../shared, outside the repository:\n" + "\n".join(outside)


def test_the_readme_has_no_dates_or_commit_hashes() -> None:
    found = [
        f"README.md:{number}: {kind} {match.group()!r}"
        for number, line in enumerate(README.read_text(encoding="utf-8").splitlines(), 1)
        for kind, pattern in (("commit hash", COMMIT_HASH), ("date", DATE))
        for match in pattern.finditer(line)
    ]
    assert not found, "dated runs and commit hashes belong in bench/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        (
            "What it costs here, and what the 2 cores limit",
            "what-it-costs-here-and-what-the-2-cores-limit",
        ),
        ("What `make up` starts, and where", "what-make-up-starts-and-where"),
        ("Where the code departs from STYLE.md", "where-the-code-departs-from-stylemd"),
        ("snake_case and [a link](x.md)", "snake_case-and-a-link"),
    ],
)
def test_slugs_are_githubs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_broken_link_or_anchor_is_named() -> None:
    page = ROOT / "docs" / "architecture.md"
    assert broken(page, "guarantees.md#what-the-saga-guarantees") is None
    assert "no such file" in (broken(page, "nowhere.md") or "")
    assert "no heading" in (broken(page, "guarantees.md#nowhere") or "")
    assert "outside the repository" in (broken(page, "../../shared/ARCHITECTURE.md") or "")
