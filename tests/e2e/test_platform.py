"""The platform foundation end to end: the real jupyterhub, configurable-http-proxy, service and Postgres,
started exactly as the README's command starts them."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from ..conftest import private_tmpdir
from .conftest import start_platform, stop_platform

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

AUTHOR_SCOPE = "custom:skriptoteket:author"


def assert_envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error", "correlation_id"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"] and "Traceback" not in response.text
    assert body["correlation_id"] == response.headers["X-Correlation-ID"]
    return body


def test_admin_login_lands_on_the_catalog(platform):
    client = platform.login("admin")
    response = client.get("/")
    assert response.status_code == 200
    assert str(response.url) == f"{platform.service_url}/"
    assert "<h1>Tools</h1>" in response.text


def test_catalog_in_swedish(platform):
    client = platform.login("admin")
    response = client.get("/services/skriptoteket/?lang=sv")
    assert "<h1>Verktyg</h1>" in response.text
    # The choice sticks for later pages.
    assert "<h1>Verktyg</h1>" in client.get("/services/skriptoteket/").text


def test_anonymous_page_request_goes_to_the_hub_login(platform):
    response = httpx.get(f"{platform.service_url}/", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith("/hub/api/oauth2/authorize")
    followed = httpx.get(f"{platform.service_url}/", follow_redirects=True)
    assert followed.url.path == "/hub/login"


def test_health_with_the_admins_token(platform):
    token = platform.token_for("admin")
    response = httpx.get(f"{platform.service_url}/api/v1/health", headers={"Authorization": f"token {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["db"] == "ok" and body["version"]
    for header in ("X-Content-Type-Options", "Content-Security-Policy", "X-Frame-Options", "Referrer-Policy"):
        assert header in response.headers


def test_a_teachers_token_lacks_the_authors_scopes(platform):
    platform.create_user("tina")
    platform.create_user("arvid", "authors")
    teacher, author = platform.token_for("tina"), platform.token_for("arvid")

    def hub_scopes(token):
        return set(httpx.get(f"{platform.url}/hub/api/user", headers={"Authorization": f"token {token}"}).json()["scopes"])

    assert AUTHOR_SCOPE not in hub_scopes(teacher)
    assert AUTHOR_SCOPE in hub_scopes(author)

    def me(token):
        response = httpx.get(f"{platform.service_url}/api/v1/me", headers={"Authorization": f"token {token}"})
        assert response.status_code == 200, response.text
        return response.json()

    assert me(teacher)["roles"] == ["teacher"]
    assert me(author)["roles"] == ["author", "teacher"]


def test_oauth_session_cookie_reaches_the_api(platform):
    platform.create_user("rita", "reviewers")
    client = platform.login("rita")
    client.get("/services/skriptoteket/")
    response = client.get("/services/skriptoteket/api/v1/me")
    assert response.json()["roles"] == ["author", "reviewer", "teacher"]


def test_error_envelopes(platform):
    token = platform.token_for("admin")
    auth = {"Authorization": f"token {token}"}
    api = f"{platform.service_url}/api/v1"
    assert_envelope(httpx.get(f"{api}/no-such-thing", headers=auth), 404, "not_found")
    assert_envelope(httpx.get(f"{api}/me"), 401, "unauthenticated")
    assert_envelope(httpx.get(f"{api}/me", headers={"Authorization": "token not-a-token"}), 401, "unauthenticated")
    assert_envelope(httpx.put(f"{api}/me", headers=auth, content=b"{not json"), 400, "invalid_json")
    assert_envelope(httpx.put(f"{api}/me", headers=auth, json={"language": "fi"}), 422, "invalid")
    assert_envelope(httpx.delete(f"{api}/me", headers=auth), 405, "method_not_allowed")
    # The caller's correlation id is kept.
    response = httpx.get(f"{api}/nope", headers={**auth, "X-Correlation-ID": "abc-123"})
    assert response.json()["correlation_id"] == "abc-123"
    # Swedish messages for Swedish browsers.
    response = httpx.get(f"{api}/me", headers={"Accept-Language": "sv-SE,sv;q=0.9"})
    assert response.json()["error"]["message"] == "Logga in för att fortsätta."


def test_profile_update_round_trips(platform):
    token = platform.token_for("admin")
    auth = {"Authorization": f"token {token}"}
    response = httpx.put(f"{platform.service_url}/api/v1/me", headers=auth, json={"display_name": " Ada ", "language": "sv"})
    assert response.status_code == 200
    assert httpx.get(f"{platform.service_url}/api/v1/me", headers=auth).json()["display_name"] == "Ada"


def wait_for_health(url: str, want_db: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    body = {}
    while time.monotonic() < deadline:
        response = httpx.get(url, timeout=10)
        body = response.json()
        if body.get("db") == want_db:
            return {"status_code": response.status_code, **body}
        time.sleep(0.5)
    raise AssertionError(f"health never reported db={want_db}: {body}")


def test_health_follows_postgres_down_and_back_without_a_restart(platform):
    health = f"{platform.service_url}/api/v1/health"
    token = platform.token_for("admin")
    platform.postgres.stop(mode="immediate")
    try:
        down = wait_for_health(health, "down")
        assert down["status_code"] == 503 and down["status"] != "ok"
        # Requests that need the database fail cleanly with the envelope: an outage, not "log in again"
        # (whether or not the service still had the token cached).
        response = httpx.get(f"{platform.service_url}/api/v1/me", headers={"Authorization": f"token {token}"}, timeout=30)
        assert_envelope(response, 503, "db_unavailable")
    finally:
        platform.postgres.start()
    up = wait_for_health(health, "ok")
    assert up["status_code"] == 200 and up["status"] == "ok"
    response = httpx.get(f"{platform.service_url}/api/v1/me", headers={"Authorization": f"token {token}"}, timeout=30)
    assert response.status_code == 200


def test_ctrl_c_and_a_second_start_keep_the_users():
    home = Path(private_tmpdir("skr-restart-")) / "home"
    first = start_platform(home)
    try:
        assert "Log in as 'admin' with the password from SKRIPTOTEKET_ADMIN_PASSWORD" in first.log()
        assert "DEMO MODE" in first.log()
        first.create_user("kim", password="kim-password-1")
    finally:
        assert stop_platform(first) == 0
    assert not first.postgres.is_running()

    second = start_platform(home)
    try:
        second.passwords["kim"] = "kim-password-1"
        response = second.login("kim").get("/services/skriptoteket/")
        assert response.status_code == 200 and "<h1>Tools</h1>" in response.text
    finally:
        stop_platform(second)


def test_a_download_link_sends_a_browser_without_a_session_through_the_login(platform):
    url = f"{platform.service_url}/api/v1/runs/00000000-0000-0000-0000-000000000000/artifacts/report_txt"
    browser = httpx.get(url, headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False)
    assert browser.status_code == 302 and browser.headers["location"].startswith("/hub/api/oauth2/authorize")
    assert_envelope(httpx.get(url), 401, "unauthenticated")
