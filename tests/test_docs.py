"""The project documents itself: every link in the README and docs/ resolves inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO_ROOT

DOCUMENTS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
# [text](target) and <scheme://...> autolinks; images are links too.
LINK = re.compile(r"\]\(([^)\s]+)\)|<(https?://[^>]+)>")
# Pages on the running service, which the README points people to.
SERVICE = re.compile(r"https?://(127\.0\.0\.1|localhost)(:\d+)?/")


def links(document: Path) -> list[str]:
    return [inline or auto for inline, auto in LINK.findall(document.read_text(encoding="utf-8"))]


def test_the_design_documents_exist_and_the_readme_links_them() -> None:
    readme = links(REPO_ROOT / "README.md")
    for name in ("docs/architecture.md", "docs/model-contract.md", "docs/api.md"):
        assert (REPO_ROOT / name).is_file()
        assert name in readme


@pytest.mark.parametrize("document", DOCUMENTS, ids=[path.name for path in DOCUMENTS])
def test_links_stay_inside_the_repository(document: Path) -> None:
    for target in links(document):
        if SERVICE.match(target) or target.startswith("#"):
            continue
        assert "://" not in target, f"{document.name} links outside the repository: {target}"
        path = (document.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(REPO_ROOT), f"{document.name}: {target} leaves the repository"
        assert path.exists(), f"{document.name}: {target} does not exist"
