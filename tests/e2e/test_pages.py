"""The service's server-rendered pages through the real hub: catalog (search, filters, favorites, recent),
My runs."""

from __future__ import annotations

import re

import pytest

from .publishing import publish_tool

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def published(platform):
    return [
        publish_tool(platform, "page-group-maker", "Gruppindelning", summary="Make groups from a class list",
                     professions=("teacher",), categories=("lesson-planning",)),
        publish_tool(platform, "page-mail-extractor", "Guardian e-mail extractor", summary="Collect addresses",
                     professions=("school-administrator",), categories=("administration",)),
    ]


def slugs_on(html: str) -> list[str]:
    return re.findall(r'class="card skr-tool-card" data-slug="([a-z0-9-]+)"', html)


def test_catalog_lists_search_and_filters(platform, published):
    platform.create_user("page-teacher")
    client = platform.login("page-teacher")
    page = client.get("/services/skriptoteket/").text
    assert {"page-group-maker", "page-mail-extractor"} <= set(slugs_on(page))
    assert "Gruppindelning" in page and "Make groups from a class list" in page

    found = client.get("/services/skriptoteket/", params={"q": "grupp"}).text
    assert "page-group-maker" in slugs_on(found) and "page-mail-extractor" not in slugs_on(found)

    filtered = client.get("/services/skriptoteket/", params={"category": "administration"}).text
    assert slugs_on(filtered).count("page-mail-extractor") == 1 and "page-group-maker" not in slugs_on(filtered)
    # OR within a facet, AND across facets.
    both = client.get("/services/skriptoteket/?category=administration&category=lesson-planning").text
    assert {"page-group-maker", "page-mail-extractor"} <= set(slugs_on(both))
    none = client.get("/services/skriptoteket/?category=administration&profession=teacher").text
    assert not {"page-group-maker", "page-mail-extractor"} & set(slugs_on(none))

    # The open link starts the user's server if needed and lands on the tool.
    link = re.search(r'href="([^"]*)" class="skr-open-tool">Gruppindelning', page).group(1)
    assert link == "/hub/user-redirect/?tool=page-group-maker"


def test_catalog_in_swedish_with_swedish_taxonomy(platform, published):
    client = platform.login("admin")
    page = client.get("/services/skriptoteket/?lang=sv").text
    assert "<h1>Verktyg</h1>" in page and "Lektionsplanering" in page


def test_my_runs_page_is_empty_for_a_new_user(platform):
    platform.create_user("page-newbie")
    page = platform.login("page-newbie").get("/services/skriptoteket/runs").text
    assert "You have not run any tools yet." in page


def test_pages_send_a_content_security_policy(platform):
    response = platform.login("admin").get("/services/skriptoteket/")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_authoring_and_review_pages_render_for_their_roles(platform):
    from .publishing import Api, ensure_roles

    author, reviewer = ensure_roles(platform)
    writer = Api(platform, author)
    tool = writer.call("POST", "tools", {"title": "Pages draft", "professions": ["teacher"], "categories": ["other"]})
    Api(platform, reviewer).call("PATCH", f"tools/{tool['id']}", {"slug": "pages-draft"})
    version = writer.call("POST", f"tools/{tool['id']}/versions", {"expected_parent": None, "source": "x = 1\n"})
    writer.call("POST", f"tools/{tool['id']}/versions/{version['id']}/submit", {})

    as_author = platform.login(author)
    assert "Pages draft" in as_author.get("/services/skriptoteket/tools").text
    page = as_author.get(f"/services/skriptoteket/tools/{tool['id']}")
    assert page.status_code == 200 and "waiting for review" in page.text

    as_reviewer = platform.login(reviewer)
    queue = as_reviewer.get("/services/skriptoteket/review").text
    assert f"/review/{tool['id']}/{version['id']}" in queue
    review = as_reviewer.get(f"/services/skriptoteket/review/{tool['id']}/{version['id']}").text
    assert "+x = 1" in review and "Request changes" in review

    platform.create_user("pages-plain-teacher")
    teacher = platform.login("pages-plain-teacher")
    refused = teacher.get("/services/skriptoteket/review")
    assert refused.status_code == 403 and "Back to the tools" in refused.text
    assert teacher.get(f"/services/skriptoteket/tools/{tool['id']}").status_code == 403
    assert teacher.get("/services/skriptoteket/suggestions").status_code == 200


def test_published_tools_carry_their_content(platform, published):
    from .publishing import Api

    reviewer = Api(platform, "pub-reviewer")
    tool = reviewer.call("GET", f"tools/{published[0]['tool_id']}")
    version = reviewer.call("GET", f"tools/{tool['id']}/versions/{tool['active_version']['id']}")
    assert version["source"].startswith("def run_tool(") and version["input_schema"] == []
