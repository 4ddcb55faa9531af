"""The author's path, in Chromium, through the real hub: JupyterLab (the named server ``lab``) with the starter
template as a new tool's notebook; run it (the live preview renders the tool as teachers see it, in the sandbox);
change the source in the editor, run the preview again: the new output, then an intentional traceback for the
author; fix it, save, submit. Then a reviewer sees it in the review queue. Screenshots go to $SKRIPTOTEKET_SCREENSHOTS/authoring-*.

The tool and its notebook are made with the authoring library as the author (what ``%skr_new`` does), so the test
starts where an author starts: a notebook in their JupyterLab.
"""

from __future__ import annotations

import os
import time

import pytest

from runner_kernel.authoring.library import Authoring
from runner_kernel.authoring.service import AuthoringAPI

from .conftest import SCREENSHOTS as IMG
from .conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(900)]

AUTHOR, REVIEWER = "lab-amy", "lab-rita"
# One line (the editor's auto-indent cannot bend it): wraps run_tool; LIMIT is not defined yet -> NameError.
EDIT = ('run_tool = (lambda f: lambda i, o: (lambda r: {**r, "outputs": [{"kind": "notice", "level": "warning", '
        '"message": "Edited in the browser"}] + r["outputs"][:int(LIMIT)]})(f(i, o)))(run_tool)')
FIX = "LIMIT = 99"


def shot(page, name: str) -> None:
    if os.environ.get("SKRIPTOTEKET_NO_SCREENSHOTS"):
        return
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / f"authoring-{name}.png"), full_page=False)


def run_all(page) -> None:
    page.click('.lm-MenuBar-itemLabel:text-is("Run")')
    page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')


def source_editor(page):
    return page.locator(".jp-Notebook .jp-Cell").filter(has_text="%%skr_source").locator(".cm-content").first


def append_line(page, text: str) -> None:
    # JupyterLab 4 renders only the cells near the view (windowed notebook): scroll until the source cell exists.
    page.evaluate("document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer').scrollTop = 0")
    for _ in range(40):
        if source_editor(page).count():
            break
        page.evaluate("document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer').scrollTop += 300")
        page.wait_for_timeout(150)
    editor = source_editor(page)
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("End")
    page.keyboard.press("Enter")
    page.keyboard.press("Shift+Home")  # drop any auto-indent
    page.keyboard.insert_text(text)


@pytest.fixture(scope="module")
def authoring_setup(platform):
    platform.create_user(AUTHOR, "authors")
    platform.create_user(REVIEWER, "reviewers")
    home = platform.home / "users" / AUTHOR
    home.mkdir(parents=True, exist_ok=True)
    skr = Authoring(AuthoringAPI(platform.token_for(AUTHOR), api_url=f"{platform.service_url}/api/v1/"))
    path = skr.create_tool("Browser group maker", "Made in JupyterLab by the browser test", ["teacher"], ["other"],
                           path=home / "group-maker.ipynb")
    skr.use_notebook(path)
    tool_id = skr.current().meta["id"]
    skr.release_lock()  # the browser's kernel takes it
    reviewer = AuthoringAPI(platform.token_for(REVIEWER), api_url=f"{platform.service_url}/api/v1/")
    reviewer.update_tool(tool_id, {"slug": "browser-group-maker"})  # a real address, so it can be submitted
    return {"path": path, "tool_id": tool_id, "reviewer": reviewer}


def test_author_previews_fixes_saves_submits_then_reviewer_sees_it(platform, browser, authoring_setup):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = login(context, platform.url, AUTHOR, platform.passwords[AUTHOR])
    t0 = time.monotonic()
    page.goto(f"{platform.url}/hub/spawn/{AUTHOR}/lab")
    page.wait_for_url(f"**/user/{AUTHOR}/lab/**", timeout=180_000)
    page.goto(f"{platform.url}/user/{AUTHOR}/lab/lab/tree/group-maker.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], .jp-Toolbar-kernelStatus",
                           timeout=120_000)
    print(f"JupyterLab with the notebook in {time.monotonic() - t0:.1f} s")
    no_news = page.locator(".Toastify__toast button:text-is('No')").first
    if no_news.count():
        no_news.click()
    shot(page, "1-notebook")

    # Run everything: the cells register the tool's parts, the last one is the live preview.
    t1 = time.monotonic()
    run_all(page)
    preview = page.locator(".skr-preview").last
    preview.locator(".skr-app.skr-preview-ready").wait_for(state="attached", timeout=240_000)
    print(f"first preview (cold pool) in {time.monotonic() - t1:.1f} s")
    assert preview.locator(".skr-result table").count() >= 1
    assert "reshuffle: seed=7" in preview.locator(".skr-preview-logs").inner_text()
    preview.scroll_into_view_if_needed()
    shot(page, "2-preview")

    # Change the source in the editor (not saved): the preview runs it; LIMIT is missing -> a traceback.
    append_line(page, EDIT)
    t2 = time.monotonic()
    run_all(page)
    logs = page.locator(".skr-preview-logs").last
    logs.locator(".skr-author-traceback").wait_for(timeout=240_000)
    print(f"preview after an edit in {time.monotonic() - t2:.1f} s")
    assert "NameError" in logs.inner_text() and "LIMIT" in logs.inner_text()
    assert "Tool execution failed (NameError)" in page.locator(".skr-preview").last.inner_text()
    logs.scroll_into_view_if_needed()
    shot(page, "3-traceback")

    # Fix it: the new output appears, no traceback.
    append_line(page, FIX)
    run_all(page)
    fixed = page.locator(".skr-preview").last
    try:
        fixed.locator(".skr-app.skr-preview-ready").wait_for(state="attached", timeout=240_000)
        page.wait_for_function("() => [...document.querySelectorAll('.skr-preview')].pop()?.innerText"
                               ".includes('Edited in the browser')", timeout=60_000)
    except Exception:
        page.screenshot(path="/tmp/authoring-fail.png", full_page=False)
        print("PREVIEW TEXT:", page.locator(".skr-preview").last.inner_text()[:3000])
        print("SOURCE:", source_editor(page).inner_text()[-600:] if source_editor(page).count() else "(not rendered)")
        raise
    assert fixed.locator(".skr-author-traceback").count() == 0
    fixed.scroll_into_view_if_needed()
    shot(page, "4-fixed")

    # Save (Ctrl-S for the file; skr.save() for the draft), then submit, from a new cell at the end.
    page.keyboard.press("Control+s")
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.keyboard.press("Escape")
    page.keyboard.press("b")
    page.keyboard.press("Enter")
    page.keyboard.insert_text("v = skr.save(); skr.submit(); skr.versions()")
    page.keyboard.press("Shift+Enter")
    page.locator(".jp-OutputArea-output:has-text('is now waiting for review')").wait_for(timeout=120_000)
    page.locator("table.skr-versions").last.scroll_into_view_if_needed()
    shot(page, "5-submitted")

    saved = authoring_setup["reviewer"].versions(authoring_setup["tool_id"])
    assert saved[0]["state"] == "in_review"
    head = authoring_setup["reviewer"].version(authoring_setup["tool_id"], saved[0]["id"])
    assert EDIT in head["source"] and FIX in head["source"]

    # The reviewer: the review queue lists it.
    review = browser.new_context(viewport={"width": 1280, "height": 900})
    rpage = login(review, platform.url, REVIEWER, platform.passwords[REVIEWER])
    rpage.goto(f"{platform.url}/services/skriptoteket/review")
    rpage.wait_for_selector("text=Browser group maker", timeout=60_000)
    shot(rpage, "6-review-queue")
    review.close()
    context.close()
