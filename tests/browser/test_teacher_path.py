"""The teacher's whole path, in Chromium, through the real hub, proxy, service, user server and runner.

One platform for the module; the tests run in order and build on each other (a teacher's visit): open a tool
from the catalog, fill every field kind, upload two files, run, follow up, reload, download, replay, and the
refusals. Screenshots of the path go to $SKRIPTOTEKET_SCREENSHOTS (docs/teacher-path.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from skriptoteket_ext import tables as t

from .conftest import SCREENSHOTS as IMG
from .conftest import login
from .tools import publish_all

pytestmark = [pytest.mark.browser, pytest.mark.hub, pytest.mark.timeout(900)]

APP_READY = ".skr-app .skr-title, .skr-app .skr-message"
ARTIFACT_BYTES = bytes(range(256)) * 8  # what group-maker writes to output/report.bin


def shot(page, name: str) -> None:
    if os.environ.get("SKRIPTOTEKET_NO_SCREENSHOTS"):
        return
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / f"{name}.png"), full_page=True)


def run_rows(platform, user: str) -> list[dict]:
    engine = sa.create_engine(platform.postgres.url("skriptoteket"))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.runs.c.id, t.runs.c.status, t.runs.c.action_id).where(t.runs.c.user_name == user)
                .order_by(t.runs.c.requested_at)
            ).mappings().all()
            return [dict(r) for r in rows]
    finally:
        engine.dispose()


def open_tool(page, url: str, slug: str, **params) -> float:
    query = "&".join([f"tool={slug}", *(f"{k}={v}" for k, v in params.items())])
    t0 = time.monotonic()
    page.goto(f"{url}/hub/user-redirect/?{query}")
    page.wait_for_selector(APP_READY, timeout=120_000)
    return time.monotonic() - t0


def run_and_wait(page, count_before: int, timeout: float = 120_000) -> None:
    """Click Run, wait until the app has finished one more action (the root's ``skr-done-<n>`` class)."""
    page.click("button.skr-run-button")
    wait_done(page, count_before + 1, timeout)


def wait_done(page, count: int, timeout: float = 120_000) -> None:
    page.wait_for_selector(f".skr-app.skr-done-{count}", state="attached", timeout=timeout)


def table_headers(page) -> list[str]:
    return [h.strip() for h in page.locator(".skr-result table th").all_inner_texts()]


@pytest.fixture(scope="module")
def teacher(platform, browser, tmp_path_factory):
    platform.create_user("teach")
    platform.create_user("other")
    publish_all(platform)
    context = browser.new_context(viewport={"width": 1280, "height": 2200}, accept_downloads=True)
    page = login(context, platform.url, "teach", platform.passwords["teach"])
    files = tmp_path_factory.mktemp("uploads")
    (files / "class-7b.csv").write_text("name\nAda\nBo\nCy\n")
    (files / "class-7c.txt").write_text("Dee\nEd\n" * 100)
    yield {"context": context, "page": page, "files": files}
    context.close()


def test_open_a_tool_from_the_catalog(platform, teacher):
    page = teacher["page"]
    # the catalog (also gives the browser the service's OAuth cookie, which artifact downloads need)
    try:
        response = page.goto(platform.url + "/services/skriptoteket/")
        print("catalog:", response.status)
    except Exception as exc:  # the catalog page is being built concurrently; the tool path does not depend on it
        print("catalog failed:", exc, platform.log()[-3000:])
    shot(page, "01-catalog")
    link = page.locator('a[href*="tool=tp-group-maker"]')
    t0 = time.monotonic()
    if link.count():
        link.first.click()
        page.wait_for_selector(APP_READY, timeout=120_000)
    else:  # the catalog page lists no tools yet: the link it should use
        page.goto(f"{platform.url}/hub/user-redirect/?tool=tp-group-maker")
        # a stopped server is started through the hub's progress page, then the tool opens
        page.wait_for_selector(APP_READY, timeout=120_000)
    spawn_and_open = time.monotonic() - t0
    assert "/user/teach/" in page.url and "tool=tp-group-maker" in page.url
    assert page.inner_text(".skr-title") == "Group maker"
    assert "Splits class lists" in page.inner_text(".skr-summary")
    # instructions are collapsible; no code, no traceback anywhere
    assert page.locator("details.skr-instructions").count() == 1
    body = page.inner_text("body")
    assert "Traceback" not in body and "import runner_kernel" not in body
    assert page.locator(".jp-InputArea, .jp-CodeCell .jp-Editor").count() == 0
    assert page.locator(".skr-back").first.get_attribute("href").endswith("/services/skriptoteket/")
    print(f"spawn + open: {spawn_and_open:.1f} s")
    shot(page, "02-tool-form")


def test_first_run_every_field_two_files(platform, teacher):
    page, files = teacher["page"], teacher["files"]
    before = len(run_rows(platform, "teach"))
    page.fill(".skr-field-name-title input", "  Class 7B  ")
    page.fill(".skr-field-name-notes textarea", "line one\nline two")
    page.fill(".skr-field-name-groups input", "3")
    page.fill(".skr-field-name-weight input", "1.5")
    page.check(".skr-field-name-shuffle input[type=checkbox]")
    page.select_option(".skr-field-name-mode select", label="Fair")
    boxes = page.locator(".skr-field-name-tags input[type=checkbox]")
    boxes.nth(0).check()
    boxes.nth(2).check()
    with page.expect_file_chooser() as chooser:
        page.click(".skr-field-name-files button")
    chooser.value.set_files([str(files / "class-7b.csv"), str(files / "class-7c.txt")])
    page.wait_for_selector(".skr-file-list .skr-file >> nth=1")
    page.wait_for_timeout(300)  # widget values sync to the kernel
    shot(page, "03-form-filled")
    run_and_wait(page, 0)

    assert table_headers(page) == ["Ten", "Two", "Name"], page.inner_text(".skr-app")  # declared order, not "10" < "2" < "name" sorted
    cells = page.locator(".skr-result table tbody tr").all_inner_texts()
    assert len(cells) == 2 and "class-7b.csv" in cells[0] and "class-7c.txt" in cells[1]
    echo = page.inner_text(".skr-result .skr-output-markdown")
    values = json.loads(echo.split("Echo:", 1)[1].strip().strip("`"))
    assert values == {"title": "Class 7B", "notes": "line one\nline two", "groups": 3, "weight": 1.5,
                      "shuffle": True, "mode": "fair", "tags": ["a", "c"]}
    assert "Step 1; files: 2" in page.inner_text(".skr-result .skr-output-notice")
    rows = run_rows(platform, "teach")
    assert len(rows) == before + 1 and rows[-1]["status"] == "succeeded"
    teacher["first_run"] = str(rows[-1]["id"])
    shot(page, "04-result")


def test_download_an_artifact_intact(platform, teacher):
    page = teacher["page"]
    link = page.locator(".skr-result a.skr-artifact-link")
    assert link.count() == 1
    href = link.get_attribute("href")
    assert href.startswith("/services/skriptoteket/api/v1/runs/") and "/artifacts/report_bin" in href
    with page.expect_download() as download:
        link.click()
    path = download.value.path()
    assert Path(path).read_bytes() == ARTIFACT_BYTES
    assert download.value.suggested_filename == "report.bin"


def test_next_action_prefilled_and_state_advances(platform, teacher):
    page = teacher["page"]
    comment = page.locator(".skr-action-next .skr-field-name-comment input")
    assert comment.input_value() == "after step 1"  # prefill
    page.click(".skr-action-next button.skr-action-button")
    wait_done(page, 2)
    assert "Step 2; files: 2" in page.inner_text(".skr-result .skr-output-notice")  # session files reused
    assert page.locator(".skr-result table tbody tr").all_inner_texts()[0].split("\t")[:2] == ["after step 1", "2"]
    assert page.locator(".skr-action-next .skr-field-name-comment input").input_value() == "after step 2"
    assert run_rows(platform, "teach")[-1]["action_id"] == "next"
    shot(page, "05-next-step")


def test_reload_continues_the_session(platform, teacher):
    page = teacher["page"]
    page.reload()
    page.wait_for_selector(".skr-result .skr-output-notice", timeout=60_000)
    assert "Step 2" in page.inner_text(".skr-result .skr-output-notice")
    assert page.locator(".skr-action-next .skr-field-name-comment input").input_value() == "after step 2"
    # the session's files are offered for a new first run
    assert page.locator(".skr-session-files").count() == 1
    page.click(".skr-action-next button.skr-action-button")
    wait_done(page, 1)  # the first action of this page load
    assert "Step 3" in page.inner_text(".skr-result .skr-output-notice")
    shot(page, "06-after-reload")


def test_my_runs_and_replay(platform, teacher):
    page = teacher["page"]
    listing = page.request.get(platform.url + "/services/skriptoteket/api/v1/runs?tool=tp-group-maker")
    assert listing.ok, listing.text()
    runs = listing.json()["runs"]
    assert [r["id"] for r in runs][-1] == teacher["first_run"] and len(runs) >= 3
    page.goto(f"{platform.url}/user/teach/?run={teacher['first_run']}")
    page.wait_for_selector(".skr-replay, .skr-message", timeout=60_000)
    assert "Group maker" in page.inner_text(".skr-title")
    assert table_headers(page) == ["Ten", "Two", "Name"]
    assert "class-7b.csv" in page.inner_text(".skr-replay table")
    # read-only: the offered action is there but disabled
    assert page.locator(".skr-replay .skr-action-button").is_disabled()
    assert page.locator(".skr-replay a.skr-artifact-link").count() == 1
    shot(page, "07-replay")


def test_hostile_html_and_markdown_run_no_script(platform, teacher):
    page = teacher["page"]
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_tool(page, platform.url, "tp-hostile-output")
    run_and_wait(page, 0)
    page.wait_for_selector(".skr-result iframe")
    page.wait_for_timeout(1000)  # give any script (or onerror of a broken image) a chance to run
    assert page.evaluate("window.__pwned") is None
    frame = page.locator(".skr-result iframe")
    assert frame.get_attribute("sandbox") == ""
    # nothing executable reached the page's own DOM: no script element, no event handler, no javascript: link
    assert page.locator(".skr-app script").count() == 0
    assert page.locator(".skr-app [onerror], .skr-app [onload], .skr-app [onclick]").count() == 0
    assert page.locator(".skr-app a[href^='javascript' i]").count() == 0
    assert "Hello" in page.inner_text(".skr-result .skr-output-markdown")
    assert not dialogs
    shot(page, "08-hostile-output")


def test_clear_memory_empties_the_session(platform, teacher):
    """After a result, "Clear memory" removes it from the page and from the session; a reload shows none, and
    the tool runs again."""
    page = teacher["page"]
    open_tool(page, platform.url, "tp-hostile-output")
    page.wait_for_selector(".skr-result iframe", timeout=60_000)  # the session's last result, from the run above
    page.click("button.skr-clear-memory")
    page.wait_for_selector(".skr-message :text('Memory cleared')", timeout=60_000)
    assert page.locator(".skr-result").count() == 0
    page.reload()
    page.wait_for_selector(APP_READY, timeout=120_000)
    page.wait_for_timeout(500)
    assert page.locator(".skr-result").count() == 0  # nothing left in the session to show
    run_and_wait(page, 0)
    page.wait_for_selector(".skr-result iframe")


def test_stale_action_from_a_second_tab(platform, teacher):
    context = teacher["context"]
    first, second = teacher["page"], context.new_page()
    open_tool(first, platform.url, "tp-group-maker")
    open_tool(second, platform.url, "tp-group-maker")
    for page in (first, second):
        page.wait_for_selector(".skr-action-next button.skr-action-button")
    second.click(".skr-action-next button.skr-action-button")  # the second tab moves the session on
    wait_done(second, 1)
    before = run_rows(platform, "teach")
    first.click(".skr-action-next button.skr-action-button")
    first.wait_for_selector(".skr-session-changed", timeout=60_000)
    assert "This session changed in another tab or window. Reload the page to continue." in first.inner_text(
        ".skr-session-changed")
    first.wait_for_timeout(500)
    assert run_rows(platform, "teach") == before  # nothing executed, no run row
    assert first.locator("button.skr-run-button").is_disabled()
    shot(first, "09-session-changed")
    second.close()


def test_another_teacher_is_refused(platform, teacher, browser):
    run_id = teacher["first_run"]
    token = platform.token_for("other")
    api = f"{platform.url}/services/skriptoteket/api/v1"
    with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as client:
        for path in (f"runs/{run_id}", f"runs/{run_id}/artifacts/report_bin"):
            response = client.get(f"{api}/{path}")
            assert response.status_code in (403, 404), (path, response.status_code)
            error = response.json()["error"]
            assert error["code"] in ("run_not_found", "artifact_not_found") and error["message"]
            assert response.json()["correlation_id"]
    # in the browser: the replay URL on their own server says "not yours"; the owner's server refuses them
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = login(context, platform.url, "other", platform.passwords["other"])
    page.goto(f"{platform.url}/hub/user-redirect/?run={run_id}")
    page.wait_for_selector(".skr-message", timeout=120_000)
    assert "not yours" in page.inner_text(".skr-message")
    response = page.goto(f"{platform.url}/user/teach/?tool=tp-group-maker")
    assert response.status in (403, 404) or "/user/other/" in page.url or "/hub/" in page.url
    context.close()


def test_unknown_tool_is_a_friendly_message(platform, teacher):
    page = teacher["page"]
    open_tool(page, platform.url, "no-such-tool")
    message = page.inner_text(".skr-message")
    assert "does not exist or is not published" in message
    assert "Traceback" not in page.inner_text("body")
    assert page.locator(".skr-message-not-found").count() == 1
    assert page.locator(".skr-back").first.get_attribute("href").endswith("/services/skriptoteket/")
    shot(page, "10-unknown-tool")
    open_tool(page, platform.url, "no-such-tool", lang="sv")  # Swedish
    assert "Verktyget finns inte eller är inte publicerat." in page.inner_text(".skr-message")
    assert "Alla verktyg" in page.inner_text(".skr-back")


def test_leaving_a_tool_page_stops_its_kernel(platform, teacher):
    """The tool page's own front end (frontend/src/index.js) shuts its kernel down when the page goes away, as
    Voila's does; otherwise every reload would leave a kernel until culling. It loads no JupyterLab bundle."""
    page = teacher["page"]
    scripts, errors = [], []
    page.on("request", lambda r: scripts.append(r.url) if r.resource_type == "script" else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    open_tool(page, platform.url, "tp-noop")
    page.wait_for_selector("button.skr-run-button:enabled")
    page.click("button.skr-run-button")
    page.wait_for_selector(".skr-app.skr-done-1", state="attached")
    assert not errors, errors  # nothing on the page's console while it opens and runs
    kernel_id = page.evaluate("JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
    kernel_url = f"{platform.url}/user/teach/api/kernels/{kernel_id}"
    assert page.request.get(kernel_url).status == 200
    assert not [u for u in scripts if "voila.js" in u or "remoteEntry" in u], scripts
    # its bundle has a content version: the browser keeps it for good instead of asking on every page load
    bundle = page.evaluate("document.querySelector('script[src*=\"static/tool-page.js?v=\"]').src")
    assert page.request.get(bundle).headers.get("cache-control") == "public, max-age=31536000, immutable"
    page.goto(platform.url + "/hub/home")  # leave the tool page
    deadline = time.monotonic() + 30
    while page.request.get(kernel_url).status != 404:
        assert time.monotonic() < deadline, "the left page's kernel is still running after 30 s"
        time.sleep(0.5)


def test_a_page_whose_kernel_cannot_be_reached_says_so(platform, teacher):
    """Never an endless spinner: when the page's kernel is gone (culled, crashed, unreachable), the page says it
    could not open the tool, in the page's language. Simulated by pointing the page at a kernel that does not
    exist."""
    page = teacher["page"]

    def bogus_kernel(route):
        response = route.fetch()
        body = re.sub(r'"kernelId": "[0-9a-f-]{36}"', '"kernelId": "00000000-0000-4000-8000-000000000000"',
                      response.text())
        route.fulfill(response=response, body=body)

    page.route("**/user/teach/?tool=tp-noop&lang=sv", bogus_kernel)
    try:
        page.goto(f"{platform.url}/user/teach/?tool=tp-noop&lang=sv")
        page.wait_for_selector("#skr-open-failed", state="visible", timeout=60_000)
        assert "Verktyget kunde inte öppnas" in page.inner_text("#skr-open-failed")
        assert page.locator("#loading").count() == 0
    finally:
        page.unroute("**/user/teach/?tool=tp-noop&lang=sv")


def test_the_profile_language_without_lang(platform, teacher):
    """No ?lang=: the viewer's profile language, which GET apps carries (a failed open asks GET me)."""
    page = teacher["page"]
    api = httpx.Client(base_url=f"{platform.service_url}/api/v1/", timeout=30,
                       headers={"Authorization": f"token {platform.token_for('teach')}"})
    before = api.get("me").json()["language"]
    assert api.put("me", json={"language": "sv"}).status_code == 200
    try:
        open_tool(page, platform.url, "tp-noop")
        assert page.inner_text(".skr-title") == "No-op"
        assert "Alla verktyg" in page.inner_text(".skr-back")
        open_tool(page, platform.url, "no-such-tool")
        assert "Verktyget finns inte eller är inte publicerat." in page.inner_text(".skr-message")
    finally:
        api.put("me", json={"language": before})
        api.close()


def test_a_20_mb_upload_through_the_proxy(platform, teacher):
    page, files = teacher["page"], teacher["files"]
    big = files / "big.bin"
    data = os.urandom(20_000_000)
    big.write_bytes(data)
    open_tool(page, platform.url, "tp-big-upload")
    with page.expect_file_chooser() as chooser:
        page.click(".skr-field-name-file button")
    chooser.value.set_files(str(big))
    page.wait_for_selector(".skr-file-list .skr-file", timeout=120_000)
    page.wait_for_timeout(1000)
    t0 = time.monotonic()
    run_and_wait(page, 0, timeout=300_000)
    row = page.locator(".skr-result table tbody tr").first.inner_text().split("\t")
    assert row[0] == "big.bin" and row[1].replace(",", "").replace("\u202f", "").replace(" ", "") == "20000000"
    assert row[2] == hashlib.sha256(data).hexdigest()
    print(f"20 MB upload + run: {time.monotonic() - t0:.1f} s")
