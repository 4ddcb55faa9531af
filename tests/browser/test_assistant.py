"""The AI assistant in JupyterLab (Playwright, Debian Chromium): ask for a change, see the diff, accept, and the
tool's source cell is updated.

Written against the authoring setup (hub_config: the named server "lab" runs JupyterLab for authors; the
authoring library creates the tool notebook) but NOT YET RUN: it was written in the last minutes of the AI
work and has not been debugged against a live lab server. The same flow is covered at the kernel level by
tests/ai/test_assistant_kernel.py (streamed answer, diff, accept → the kernel's cell content changes, the
on-screen update script is emitted). Remove the skip once it has passed once.
"""

from __future__ import annotations

import pytest

from tests.ai.conftest import ai_platform, fake_openai  # noqa: F401 - the platform with AI on (fake model)

from .conftest import login

pytestmark = [
    pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(900),
    pytest.mark.skip(reason="written against the lab setup but not yet run/debugged (see the module docstring)"),
]


def run_cell(page, text: str) -> None:
    cell = page.locator(".jp-Notebook .jp-Cell").last
    cell.click()
    page.keyboard.type(text)
    page.keyboard.press("Shift+Enter")


def test_ask_see_the_diff_accept_and_the_source_cell_changes(ai_platform, browser):  # noqa: F811
    ai_platform.create_user("br-amy", "authors")
    context = browser.new_context()
    page = login(context, ai_platform.url, "br-amy", ai_platform.passwords["br-amy"])
    page.goto(f"{ai_platform.url}/hub/spawn/br-amy/lab")
    page.wait_for_url("**/user/br-amy/lab/lab**", timeout=180_000)
    page.wait_for_selector(".jp-Launcher", timeout=120_000)
    page.locator(".jp-LauncherCard[title*='Python']").first.click()
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    run_cell(page, '%load_ext runner_kernel.authoring\nskr.create_tool("AI browser tool", path="ai-tool.ipynb")')
    page.wait_for_selector("text=ai-tool.ipynb", timeout=60_000)

    page.goto(f"{ai_platform.url}/user/br-amy/lab/lab/tree/ai-tool.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+End")
    page.locator(".jp-Notebook").press("b")  # a new cell at the end
    run_cell(page, "%load_ext runner_kernel.authoring\n%load_ext runner_kernel.authoring.assistant")
    page.locator(".jp-Notebook").press("b")
    run_cell(page, "%%skr_ai edit\nAdd a greeting comment")  # a cell magic must be the cell's first line
    page.wait_for_selector(".skr-ai-diff-box .skr-ai-diff", timeout=120_000)
    assert "# Change requested: Add a greeting comment" in page.locator(".skr-ai-diff").first.inner_text()
    page.locator(".skr-ai-accept").first.click()
    page.wait_for_selector(".skr-ai-accepted", timeout=30_000)
    source_cell = page.locator(".jp-Cell", has_text="%%skr_source").first
    assert "# Change requested: Add a greeting comment" in source_cell.inner_text()
    context.close()
