"""A teacher's server spawns in a container and a published tool runs through Voila in it, in Chromium.

The tool is published through the service's lifecycle API (tests/e2e/publishing.py). The teacher opens
``/hub/user-redirect/?tool=<slug>`` with no server running: the hub spawns the container, Voila renders the tool
app from the image, the Run button sends the run through the runner's pool in the container, and the result is
rendered. The tool reports where it ran, so the test knows the run happened inside that container.
"""

from __future__ import annotations

import json

import pytest

from tests.browser.conftest import browser, login  # noqa: F401 - module-scoped Chromium
from tests.e2e.publishing import publish_tool

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]

APP_READY = ".skr-app .skr-title, .skr-app .skr-message"

WHERE_AM_I = r'''
import json, os, socket

def run_tool(input_dir, output_dir):
    where = {"host": socket.gethostname(), "uid": os.getuid(),
             "image": os.path.exists("/srv/skriptoteket/notebooks/tool_app.ipynb")}
    return {"outputs": [
        {"kind": "notice", "level": "info", "message": "ran in " + json.dumps(where, sort_keys=True)},
        {"kind": "table", "columns": [{"key": "k", "label": "Key"}, {"key": "v", "label": "Value"}],
         "rows": [{"k": "answer", "v": 6 * 7}]},
    ]}
'''


def test_a_published_tool_runs_through_voila_in_the_container(docker_platform, browser):  # noqa: F811
    publish_tool(docker_platform, "docker-where", "Where am I", source=WHERE_AM_I)
    teacher = "carol"
    docker_platform.create_user(teacher)
    with docker_platform.api() as api:  # no server yet: opening the tool spawns it
        assert not api.get(f"/users/{teacher}").json().get("servers")

    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    try:
        page = login(context, docker_platform.url, teacher, docker_platform.passwords[teacher])
        page.goto(f"{docker_platform.url}/hub/user-redirect/?tool=docker-where")
        try:
            page.wait_for_selector(APP_READY, timeout=180_000)
        except Exception:
            raise AssertionError(f"no tool page at {page.url}:\n{page.inner_text('body')[:2000]}\n"
                                 f"{docker_platform.log()[-3000:]}")
        assert f"/user/{teacher}/" in page.url and "tool=docker-where" in page.url
        assert page.inner_text(".skr-title") == "Where am I"

        page.click("button.skr-run-button")
        page.wait_for_selector(".skr-app.skr-done-1", state="attached", timeout=120_000)
        notice = page.inner_text(".skr-result .skr-output-notice")
        assert "ran in " in notice, page.inner_text(".skr-app")
        where = json.loads(notice.split("ran in ", 1)[1].strip())
        cells = page.locator(".skr-result table tbody td").all_inner_texts()
        assert [c.strip() for c in cells] == ["answer", "42"]
    finally:
        context.close()

    # the run happened in the teacher's container, from the image, as its unprivileged user
    info = docker_platform.inspect(teacher)
    assert info["State"]["Running"] and info["Config"]["Image"].startswith("skriptoteket-user")
    assert where["host"] == info["Config"]["Hostname"], (where, info["Config"]["Hostname"])
    assert where["image"] is True
    assert where["uid"] != 0
    docker_platform.stop_server(teacher)
