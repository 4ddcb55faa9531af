"""Browser tests: the real platform (``skriptoteket up`` in a temp home, tests/e2e/conftest.py) driven by
Debian's Chromium through Playwright. Never ``playwright install``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.e2e.conftest import platform  # noqa: F401 - the session-wide real platform fixture

CHROMIUM = "/usr/bin/chromium"
# Where the path tests leave their screenshots. docs/img is refreshed on purpose only:
#   SKRIPTOTEKET_SCREENSHOTS=docs/img ./scripts/test.sh tests/browser/test_teacher_path.py tests/browser/test_authoring.py
SCREENSHOTS = Path(os.environ.get("SKRIPTOTEKET_SCREENSHOTS") or Path(tempfile.gettempdir()) / "skriptoteket-screenshots")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module. Module-scoped on purpose: while Playwright's sync API is open it keeps an
    event loop running in the main thread, which would break every asyncio test that runs after it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def login(context, url: str, name: str, password: str):
    """A page logged in through the hub's login form (NativeAuthenticator)."""
    page = context.new_page()
    page.goto(url + "/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_load_state()
    return page
