"""Governance in Chromium, through the real hub: an author drafts and submits on the service's pages, a
reviewer requests changes and then publishes, a teacher finds the tool by search and by filter, favourites and
runs it, and a depublished tool disappears for teachers."""

from __future__ import annotations

import re

import httpx
import pytest

from .conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(900)]

SERVICE = "/services/skriptoteket"
TITLE = "Närvarolista"
FIRST_SOURCE = "def run_tool(input_dir, output_dir):\n    return {'outputs': [{'kind': 'notice', 'level': 'info', 'message': 'v1'}]}\n"
FIXED_SOURCE = "def run_tool(input_dir, output_dir):\n    return {'outputs': [{'kind': 'markdown', 'markdown': '**Attendance ready**'}]}\n"


@pytest.fixture(scope="module")
def people(platform, browser):
    platform.create_user("gov-author", "authors")
    platform.create_user("gov-reviewer", "reviewers")
    platform.create_user("gov-teacher")
    pages = {}
    for name in ("gov-author", "gov-reviewer", "gov-teacher"):
        context = browser.new_context(viewport={"width": 1280, "height": 1600})
        pages[name] = login(context, platform.url, name, platform.passwords[name])
    yield pages
    for name in ("gov-author", "gov-reviewer", "gov-teacher"):
        pages[name].context.close()


def click_and_wait_for_navigation(page, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def test_author_creates_a_draft_and_submits_it(platform, people):
    page = people["gov-author"]
    page.goto(f"{platform.url}{SERVICE}/tools")
    page.fill("#new-title", TITLE)
    page.fill("#new-summary", "En närvarolista för klassen")
    page.check(".skr-new-tool input[name='professions[]'][value='teacher']")
    page.check(".skr-new-tool input[name='categories[]'][value='administration']")
    click_and_wait_for_navigation(page, ".skr-new-tool button[type=submit]")
    assert re.search(r"/tools/\d+$", page.url)
    people["tool_url"] = page.url

    page.fill("#slug", "narvarolista")
    click_and_wait_for_navigation(page, ".skr-metadata button[type=submit]")
    page.fill("#source", FIRST_SOURCE)
    click_and_wait_for_navigation(page, ".skr-save-draft")
    assert "v1" in page.inner_text(".skr-versions")
    click_and_wait_for_navigation(page, ".skr-submit")
    assert "waiting for review" in page.inner_text("#main")


def test_reviewer_reads_the_diff_and_requests_changes(platform, people):
    page = people["gov-reviewer"]
    page.goto(f"{platform.url}{SERVICE}/review")
    click_and_wait_for_navigation(page, f".skr-queue a:has-text('{TITLE}')")
    diff = page.inner_text(".skr-diff-section[data-field=source] .skr-diff")
    assert "+def run_tool(input_dir, output_dir):" in diff and "'v1'" in diff
    page.fill("#message", "Please show a friendlier message.")
    click_and_wait_for_navigation(page, ".skr-request-changes")
    assert page.url.endswith("/review")


def test_author_resubmits_and_the_reviewer_publishes(platform, people):
    author = people["gov-author"]
    author.goto(people["tool_url"])
    assert "Please show a friendlier message." in author.inner_text(".skr-change-message")
    author.fill("#source", FIXED_SOURCE)
    click_and_wait_for_navigation(author, ".skr-save-draft")
    click_and_wait_for_navigation(author, ".skr-submit")

    reviewer = people["gov-reviewer"]
    reviewer.goto(f"{platform.url}{SERVICE}/review")
    click_and_wait_for_navigation(reviewer, f".skr-queue a:has-text('{TITLE}')")
    assert "Attendance ready" in reviewer.inner_text(".skr-diff-section[data-field=source]")
    click_and_wait_for_navigation(reviewer, ".skr-publish-version")
    click_and_wait_for_navigation(reviewer, ".skr-publish-tool")
    assert reviewer.inner_text(".skr-published").strip() == "yes"


def test_teacher_finds_favourites_and_runs_the_tool(platform, people):
    page = people["gov-teacher"]
    page.goto(f"{platform.url}{SERVICE}/")
    page.fill("#q", "närvaro")
    click_and_wait_for_navigation(page, ".skr-search button[type=submit]")
    assert page.locator(".skr-tool-card[data-slug=narvarolista]").count() == 1

    page.goto(f"{platform.url}{SERVICE}/")
    page.check(".skr-search input[name=category][value=administration]")
    click_and_wait_for_navigation(page, ".skr-search button[type=submit]")
    assert "category=administration" in page.url  # filters are links that survive a reload
    page.reload()
    card = page.locator(".skr-tool-card[data-slug=narvarolista]").first
    assert card.count() == 1
    with page.expect_navigation():
        card.locator(".skr-favorite").click()
    assert page.locator("#favorites-heading").count() == 0  # filtered view shows results only
    page.goto(f"{platform.url}{SERVICE}/")
    assert page.locator("section:has(#favorites-heading) .skr-tool-card[data-slug=narvarolista]").count() == 1

    page.click(".skr-tool-card[data-slug=narvarolista] .skr-open-tool")
    page.wait_for_selector(".skr-app .skr-title", timeout=180_000)
    page.click("button.skr-run-button")
    page.wait_for_selector(".skr-result :text('Attendance ready')", timeout=120_000)


def test_a_depublished_tool_disappears_for_teachers(platform, people):
    reviewer = people["gov-reviewer"]
    reviewer.goto(people["tool_url"])
    click_and_wait_for_navigation(reviewer, ".skr-depublish")
    assert reviewer.inner_text(".skr-published").strip() == "no"

    teacher = people["gov-teacher"]
    teacher.goto(f"{platform.url}{SERVICE}/?q=narvaro")
    assert teacher.locator(".skr-tool-card[data-slug=narvarolista]").count() == 0
    tool_id = people["tool_url"].rsplit("/", 1)[1]
    token = platform.token_for("gov-teacher")
    response = httpx.get(f"{platform.service_url}/api/v1/tools/{tool_id}", headers={"Authorization": f"token {token}"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "tool_not_found"
