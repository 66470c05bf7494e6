"""The README is the front door (issue 27): short, and every link it gives leads somewhere.
The docs site's own links are checked by `make docs` (mkdocs --strict), part of `make test`."""

from __future__ import annotations

import re

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


def test_the_readme_is_a_front_door():
    assert len(README.splitlines()) <= 200
    for needed in ("make demo", "make test", "The operator", "The data scientist", "The compliance officer"):
        assert needed in README


def test_every_link_of_the_readme_leads_to_a_file():
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    assert len(links) >= 8
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert missing == []
