"""Authoring tests: the library and the sandbox API against the real platform (tests/e2e/conftest.py)."""

from __future__ import annotations

import pytest

from runner_kernel.authoring.library import Authoring
from runner_kernel.authoring.service import AuthoringAPI
from tests.e2e.conftest import platform  # noqa: F401 - the session-wide real platform fixture

USERS = {"au-amy": ["authors"], "au-otto": ["authors"], "au-rita": ["reviewers"], "au-tina": []}


@pytest.fixture(scope="module")
def people(platform):
    tokens = {}
    for name, groups in USERS.items():
        if name not in platform.passwords:
            platform.create_user(name, *groups)
        tokens[name] = platform.token_for(name)
    return tokens


@pytest.fixture
def author_factory(platform, people):
    """``make(user, notebook_path)``: an ``Authoring`` session as that user, reading that notebook."""
    made = []

    def make(user: str, notebook=None) -> Authoring:
        api = AuthoringAPI(people[user], api_url=f"{platform.service_url}/api/v1/")
        skr = Authoring(api, notebook=notebook)
        made.append(skr)
        return skr

    yield make
    for skr in made:
        skr._stop.set()
