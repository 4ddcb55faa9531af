"""The AI assistant in JupyterLab (Playwright, Debian Chromium, the real hub and service, the fake OpenAI-compatible
model of tests/ai/fake_openai.py): an author opens their tool's notebook, opens the assistant panel, asks for a
change, watches the answer stream in, sees the diff, presses Accept, and the tool's source cell is updated in the
notebook on screen, in JupyterLab's document model and, after Ctrl-S, in the saved file (the contents API).

The tool and its notebook are made with the authoring library as the author (what ``%skr_new`` does), as in
test_authoring.py, so the test starts where an author starts: a notebook in their JupyterLab.
"""

from __future__ import annotations

import itertools

import pytest
from playwright.sync_api import expect

from runner_kernel.authoring.library import Authoring
from runner_kernel.authoring.service import AuthoringAPI
from tests.ai.conftest import ai_platform, fake, fake_openai  # noqa: F401 - the platform with AI on (fake model)

from .conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(900)]

AUTHOR = "br-amy"
ASK = "Add a greeting comment"
NEW_LINE = f"# Change requested: {ASK}"  # what the fake model's edit puts first in the source

# The tagged source cell's text in the JupyterLab document model of the open notebook (window.jupyterapp).
MODEL_SOURCE = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content.model.cells;
  for (let i = 0; i < nb.length; i++) {
    const tags = nb.get(i).getMetadata('tags') || [];
    if (tags.includes('skr-source')) return nb.get(i).sharedModel.getSource();
  }
  return null;
}"""


@pytest.fixture(scope="module")
def tool_notebook(ai_platform):  # noqa: F811
    ai_platform.create_user(AUTHOR, "authors")
    home = ai_platform.home / "users" / AUTHOR
    home.mkdir(parents=True, exist_ok=True)
    skr = Authoring(AuthoringAPI(ai_platform.token_for(AUTHOR), api_url=f"{ai_platform.service_url}/api/v1/"))
    path = skr.create_tool("AI browser tool", "Edited with the assistant", ["teacher"], ["other"],
                           path=home / "ai-tool.ipynb")
    skr.use_notebook(path)
    source = skr.current().source
    skr.release_lock()
    return {"path": path, "source": source}


# Every distinct text of the panel's answer box, in order, as the page shows it (whatever the test's own pace).
RECORD_ANSWERS = """panel => {
  window.skrSeen = [];
  const box = panel.querySelector('.skr-ai-answer-box');
  const note = () => {
    const el = box.querySelector('.skr-ai-answer');
    const text = el ? el.innerText : '';
    if (window.skrSeen[window.skrSeen.length - 1] !== text) window.skrSeen.push(text);
  };
  new MutationObserver(note).observe(box, {subtree: true, childList: true, characterData: true});
}"""

KERNEL_READY = """() => {
  const ctx = window.jupyterapp.shell.currentWidget.sessionContext;
  const kernel = ctx && ctx.isReady && ctx.session && ctx.session.kernel;
  return !!kernel && kernel.connectionStatus === 'connected' && kernel.status === 'idle';
}"""


def saved_source(page, url: str, *, saving: bool = False) -> str | None:
    r = page.request.get(f"{url}/user/{AUTHOR}/lab/api/contents/ai-tool.ipynb?content=1")
    if saving and not r.ok:
        # jupyter_server writes the notebook in place (after a backup copy), so a read while it saves can fail;
        # the read after the save must not
        return None
    assert r.ok, r.status
    for cell in r.json()["content"]["cells"]:
        if "skr-source" in (cell["metadata"].get("tags") or []):
            return cell["source"]
    return None


def test_ask_see_the_streamed_answer_and_the_diff_accept_and_the_source_cell_changes(
        ai_platform, fake, browser, tool_notebook):  # noqa: F811
    url = ai_platform.url
    fake.default_chunk_delay = 0.15  # the default edit answer in 8 chunks: a visible stream, within AI_TIMEOUT
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = login(context, url, AUTHOR, ai_platform.passwords[AUTHOR])
        page.goto(f"{url}/hub/spawn/{AUTHOR}/lab")
        page.wait_for_url(f"**/user/{AUTHOR}/lab/**", timeout=180_000)
        page.goto(f"{url}/user/{AUTHOR}/lab/lab/tree/ai-tool.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.content.model", timeout=60_000)
        page.wait_for_function(KERNEL_READY, timeout=120_000)  # a cell run before that may be dropped
        no_news = page.locator(".Toastify__toast button:text-is('No')").first
        if no_news.count():
            no_news.click()
        before = page.evaluate(MODEL_SOURCE)
        assert before.startswith("%%skr_source\n") and NEW_LINE not in before

        # A new first cell: load the authoring library, open the assistant panel.
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Escape")
        page.keyboard.press("a")
        page.keyboard.press("Enter")
        page.keyboard.insert_text("%load_ext runner_kernel.authoring\n%skr_ai")
        first = page.locator(".jp-Notebook .jp-Cell").first
        assert first.locator(".cm-content").inner_text().endswith("%skr_ai"), first.inner_text()
        page.keyboard.press("Shift+Enter")
        panel = page.locator(".skr-ai-panel").first
        try:
            panel.wait_for(timeout=180_000)
        except Exception:
            page.screenshot(path="/tmp/test_assistant-fail.png")
            raise

        # Ask; the answer streams in (the page records every text the answer box shows), then the diff.
        panel.locator(".skr-ai-prompt textarea").fill(ASK)
        panel.element_handle().evaluate(RECORD_ANSWERS)
        panel.locator(".skr-ai-ask").click()
        diff = panel.locator(".skr-ai-diff")
        diff.wait_for(timeout=120_000)
        seen = [t for t in page.evaluate("() => window.skrSeen") if t.strip() not in ("", "…")]
        assert len(seen) >= 3, seen  # 8 chunks: the text grew in parts before the diff came
        assert all(b.startswith(a) and len(b) > len(a) for a, b in itertools.pairwise(seen)), seen
        assert seen[0].startswith("I add") and NEW_LINE in seen[-1]
        shown = diff.inner_text()
        assert f"+{NEW_LINE}" in shown and "@@" in shown
        assert NEW_LINE not in page.evaluate(MODEL_SOURCE)  # shown, not applied

        # Accept: the source cell changes, in the document model and in its editor; the magic line stays.
        panel.locator(".skr-ai-accept").click()
        panel.locator(".skr-ai-accepted").wait_for(timeout=30_000)
        applied = panel.locator(".skr-ai-applied")
        applied.wait_for(timeout=30_000)
        assert applied.inner_text() == "skr-source: updated"
        after = page.evaluate(MODEL_SOURCE)
        assert after == "%%skr_source\n" + NEW_LINE + "\n" + before[len("%%skr_source\n"):].rstrip("\n")
        cell = page.locator(".jp-Notebook .jp-Cell").filter(has_text="%%skr_source").first
        cell.evaluate("node => node.scrollIntoView({block: 'start'})")  # the editor draws the lines in view
        editor = cell.locator(".cm-content").first
        expect(editor).to_contain_text(NEW_LINE, timeout=15_000)

        # Ctrl-S: the saved notebook (contents API) holds the change.
        editor.click()
        page.keyboard.press("Escape")
        page.keyboard.press("Control+s")
        for _ in range(100):
            if NEW_LINE in (saved_source(page, url, saving=True) or ""):
                break
            page.wait_for_timeout(100)
        assert saved_source(page, url).startswith("%%skr_source\n" + NEW_LINE + "\n")
        assert fake.requests and "Add a greeting comment" in fake.requests[-1]["body"]["messages"][-1]["content"]
    finally:
        fake.default_chunk_delay = 0.05
        context.close()
