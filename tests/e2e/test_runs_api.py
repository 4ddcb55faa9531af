"""The teacher's path through the real hub, proxy and service: apps, runs, uploads, results, artifacts,
sessions, settings. The test plays the runner (the Voila kernel's part): it posts what a runner would."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
import sqlalchemy as sa

from skriptoteket_ext.tables import runs as runs_table
from skriptoteket_ext.tables import tool_versions, tools

from .test_platform import assert_envelope

pytestmark = [pytest.mark.hub, pytest.mark.timeout(300)]

SLUG = "e2e-group-maker"
INPUT_SCHEMA = [
    {"name": "title", "label": "Title", "kind": "string", "required": True},
    {"name": "groups", "label": "Groups", "kind": "integer", "min": 1, "max": 10},
    {"name": "lists", "label": "Class lists", "kind": "file", "min": 0, "max": 3},
]
SETTINGS_SCHEMA = [
    {"name": "separator", "label": "Separator", "kind": "string"},
    {"name": "shout", "label": "Shout", "kind": "boolean"},
]
ACTION = {"action_id": "regroup", "label": "Regroup", "kind": "form",
          "fields": [{"name": "size", "label": "Group size", "kind": "integer", "min": 2}], "prefill": {"size": 3}}


def envelope(**overrides):
    return {"contract_version": 2, "status": "succeeded", "error_summary": None, "outputs": [], "next_actions": [],
            "state": None, "artifacts": [], **overrides}


class Api:
    """A user's client of the service's API, with their own hub token."""

    def __init__(self, platform, name: str):
        token = platform.token_for(name)
        self.client = httpx.Client(base_url=f"{platform.service_url}/api/v1/", timeout=30,
                                   headers={"Authorization": f"token {token}"})

    def __getattr__(self, method):
        return getattr(self.client, method)


@pytest.fixture(scope="module")
def db(platform):
    engine = sa.create_engine(platform.postgres.url("skriptoteket"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def people(platform, db):
    for name in ("rteacher", "rother"):
        platform.create_user(name)
    platform.create_user("rreviewer", "reviewers")
    publish_tool(db, SLUG)
    return {name: Api(platform, name) for name in ("rteacher", "rother", "rreviewer")}


def publish_tool(db, slug: str) -> int:
    """A published tool with an active version, written straight into the service's tables (the lifecycle API
    that would normally do this is someone else's piece)."""
    with db.begin() as conn:
        conn.execute(sa.text("INSERT INTO skriptoteket.users (name) VALUES ('e2e-owner') ON CONFLICT DO NOTHING"))
        tool_id = conn.execute(
            sa.insert(tools).values(slug=slug, title="Group maker", summary="Makes groups", owner_name="e2e-owner",
                                    is_published=True, published_at=sa.func.now(), slug_locked=True,
                                    created_by="e2e-owner").returning(tools.c.id)
        ).scalar_one()
        conn.execute(sa.insert(tool_versions).values(
            tool_id=tool_id, version_no=1, state="active", was_active=True, created_by="e2e-owner",
            source="def run_tool(input_dir, output_dir):\n    return {}\n", input_schema=INPUT_SCHEMA,
            settings_schema=SETTINGS_SCHEMA,
        ))
    return tool_id


def first_run(api: Api, files=(("a.csv", b"name\nAda\n"), ("b.csv", b"name\nBo\n")), **extra) -> dict:
    body = {"tool": SLUG, "context": "production", "inputs": {"title": " 7B ", "groups": "2"},
            "files": [{"name": name, "bytes": len(data)} for name, data in files], **extra}
    response = api.post("runs", json=body)
    assert response.status_code == 201, response.text
    created = response.json()
    for upload, (_, data) in zip(created["uploads"], files):
        put = api.put(upload["url"], content=data)
        assert put.status_code == 200, put.text
    return created


def post_result(api: Api, run_id: str, env: dict, **extra) -> httpx.Response:
    return api.post(f"runs/{run_id}/result", json={"envelope": env, "stdout": "out", "stderr": "", **extra})


def run_with_actions(api: Api) -> tuple[dict, dict]:
    created = first_run(api)
    table = {"kind": "table", "columns": [{"key": "10", "label": "Ten"}, {"key": "2", "label": "Two"}],
             "rows": [{"2": "b", "10": "a"}]}
    response = post_result(api, created["run"]["id"], envelope(outputs=[table], next_actions=[ACTION], state={"n": 1}))
    assert response.status_code == 200, response.text
    return created, response.json()


def test_first_run_with_uploads_then_an_action_run(people):
    api = people["rteacher"]
    api.delete(f"sessions/{SLUG}")
    app = api.get(f"apps/{SLUG}").json()
    assert app["tool"]["slug"] == SLUG and app["version"]["input_schema"][0]["name"] == "title"
    assert app["limits"]["max_files"] == 20 and app["settings"]["values"] == {}

    created, finished = run_with_actions(api)
    assert created["execution"]["inputs"] == {"title": "7B", "groups": 2}
    assert created["execution"]["timeout_seconds"] == 120 and created["execution"]["action"] is None
    assert "def run_tool" in created["execution"]["source"] and created["execution"]["entrypoint"] == "run_tool"
    table = finished["payload"]["outputs"][0]
    assert [c["key"] for c in table["columns"]] == ["10", "2"] and table["rows"] == [["a", "b"]]
    assert finished["run"]["status"] == "succeeded"

    session = api.get(f"sessions/{SLUG}").json()
    rev = session["state_rev"]
    assert rev == finished["session"]["state_rev"]
    assert [a["action_id"] for a in session["offered_actions"]] == ["regroup"]
    assert session["offered_actions"][0]["prefill"] == {"size": 3}
    assert [(f["name"], f["bytes"]) for f in session["files"]] == [("a.csv", 9), ("b.csv", 8)]
    assert session["last_run_id"] == created["run"]["id"] and session["last_payload"] == finished["payload"]

    response = api.post("runs", json={"tool": SLUG, "action": {"action_id": "regroup", "input": {"size": "4"}},
                                      "expected_state_rev": rev})
    assert response.status_code == 201, response.text
    action = response.json()
    assert action["execution"]["action"] == {"action_id": "regroup", "input": {"size": 4}, "state": {"n": 1}}
    assert action["uploads"] == [] and [f["name"] for f in action["session_files"]] == ["a.csv", "b.csv"]
    download = api.get(action["session_files"][1]["url"])
    assert download.status_code == 200 and download.content == b"name\nBo\n"
    assert download.headers["content-disposition"].startswith("attachment;")

    done = post_result(api, action["run"]["id"], envelope(state={"n": 2}))
    assert done.status_code == 200, done.text
    assert done.json()["session"]["state_rev"] == rev + 1
    assert api.get(f"sessions/{SLUG}").json()["offered_actions"] == []


def test_stale_rev_and_unoffered_action_create_nothing(people):
    api = people["rteacher"]
    run_with_actions(api)
    rev = api.get(f"sessions/{SLUG}").json()["state_rev"]
    count = len(api.get("runs", params={"limit": 100}).json()["runs"])

    stale = api.post("runs", json={"tool": SLUG, "action": {"action_id": "regroup", "input": {}}, "expected_state_rev": rev - 1})
    body = assert_envelope(stale, 409, "session_changed")
    assert "another tab" in body["error"]["message"]
    not_offered = api.post("runs", json={"tool": SLUG, "action": {"action_id": "delete-all", "input": {}}, "expected_state_rev": rev})
    body = assert_envelope(not_offered, 422, "invalid_inputs")
    assert body["error"]["details"]["issues"][0]["path"] == "/action_id"
    assert len(api.get("runs", params={"limit": 100}).json()["runs"]) == count


def test_invalid_inputs_list_every_issue_in_the_users_language(people):
    api = people["rteacher"]
    response = api.post("runs", json={"tool": SLUG, "inputs": {"groups": "many", "colour": "red"}},
                        headers={"Accept-Language": "sv"})
    body = assert_envelope(response, 422, "invalid_inputs")
    issues = {i["path"]: i for i in body["error"]["details"]["issues"]}
    assert set(issues) == {"", "/groups", "/title"}
    assert body["error"]["message"].startswith("Några av värdena")
    assert issues["/title"]["message"] != "“Title” is required."


def test_upload_limits_are_clear(people):
    api = people["rteacher"]
    many = [{"name": f"f{i}.csv", "bytes": 1} for i in range(21)]
    body = assert_envelope(api.post("runs", json={"tool": SLUG, "inputs": {"title": "x"}, "files": many}), 413, "too_many_files")
    assert "20" in body["error"]["message"]
    body = assert_envelope(api.post("runs", json={"tool": SLUG, "inputs": {"title": "x"},
                                                  "files": [{"name": "big.csv", "bytes": 20_000_001}]}), 413, "file_too_large")
    assert "big.csv" in body["error"]["message"] and "20 MB" in body["error"]["message"]
    four = [{"name": f"f{i}.csv", "bytes": 1} for i in range(4)]  # the file field allows at most 3
    body = assert_envelope(api.post("runs", json={"tool": SLUG, "inputs": {"title": "x"}, "files": four}), 422, "invalid_inputs")
    assert body["error"]["details"]["issues"][0]["path"] == "/lists"
    created = api.post("runs", json={"tool": SLUG, "inputs": {"title": "x"}, "files": [{"name": "a.csv", "bytes": 5}]}).json()
    assert_envelope(api.put(created["uploads"][0]["url"], content=b"123"), 422, "size_mismatch")


def test_artifact_round_trip_with_safe_headers(people):
    api = people["rteacher"]
    created = first_run(api, files=())
    run_id = created["run"]["id"]
    data = bytes(range(256)) * 1000
    path = "rapport åäö.html"
    artifact_id = "rapport_____html"
    put = api.put(f"runs/{run_id}/artifacts/{artifact_id}", params={"path": path}, content=data)
    assert put.status_code == 200, put.text
    assert_envelope(api.put(f"runs/{run_id}/artifacts/wrong", params={"path": path}, content=b""), 422, "artifact_id_mismatch")
    env = envelope(artifacts=[{"path": f"output/{path}", "bytes": len(data)}, {"path": "output/never-sent.txt", "bytes": 1}])
    done = post_result(api, run_id, env)
    assert done.status_code == 200, done.text
    assert done.json()["payload"]["artifacts"] == [{"id": artifact_id, "path": f"output/{path}", "bytes": len(data)}]

    download = api.get(f"runs/{run_id}/artifacts/{artifact_id}")
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-type"] == "application/octet-stream"  # never text/html
    assert download.headers["x-content-type-options"] == "nosniff"
    assert download.headers["content-disposition"].startswith("attachment;")
    assert f"filename*=UTF-8''{quote(path, safe='')}" in download.headers["content-disposition"]

    run = api.get(f"runs/{run_id}").json()
    assert run["artifacts"][0]["id"] == artifact_id and run["artifacts"][0]["expired"] is False
    assert "stdout" not in run  # teachers never see logs
    reviewer_view = people["rreviewer"].get(f"runs/{run_id}")
    assert reviewer_view.status_code == 200 and reviewer_view.json()["stdout"] == "out"
    assert_envelope(people["rreviewer"].get(f"runs/{run_id}/artifacts/{artifact_id}"), 404, "artifact_not_found")


def test_another_teacher_sees_nothing_of_mine(people):
    me, other = people["rteacher"], people["rother"]
    run_with_actions(me)  # the session now has files
    run_id = first_run(me, files=())["run"]["id"]
    assert me.put(f"runs/{run_id}/artifacts/x_txt", params={"path": "x.txt"}, content=b"x").status_code == 200
    assert post_result(me, run_id, envelope(artifacts=[{"path": "output/x.txt", "bytes": 1}])).status_code == 200
    assert me.get(f"runs/{run_id}/artifacts/x_txt").content == b"x"
    session = me.get(f"sessions/{SLUG}").json()
    assert me.get(session["files"][0]["url"]).status_code == 200
    assert_envelope(other.get(f"runs/{run_id}"), 404, "run_not_found")
    assert_envelope(other.get(f"runs/{run_id}/artifacts/x_txt"), 404, "artifact_not_found")
    assert_envelope(other.get(session["files"][0]["url"]), 404, "file_not_found")
    assert_envelope(other.post(f"runs/{run_id}/result", json={"envelope": envelope()}), 404, "run_not_found")
    assert_envelope(other.get("runs/00000000-0000-0000-0000-000000000000"), 404, "run_not_found")
    assert run_id not in [r["id"] for r in other.get("runs").json()["runs"]]
    assert other.get(f"sessions/{SLUG}").json()["id"] != session["id"]


def test_my_runs_newest_first(people):
    api = people["rteacher"]
    first = first_run(api, files=())["run"]["id"]
    second = first_run(api, files=())["run"]["id"]
    listed = api.get("runs", params={"limit": 2, "tool": SLUG}).json()
    assert [r["id"] for r in listed["runs"]] == [second, first]
    assert listed["runs"][0]["tool"] == {"slug": SLUG, "title": "Group maker"} and listed["next_before"]
    older = api.get("runs", params={"limit": 2, "before": listed["next_before"]}).json()["runs"]
    assert first not in [r["id"] for r in older] and second not in [r["id"] for r in older]


def test_clear_memory(people):
    api = people["rteacher"]
    run_with_actions(api)
    before = api.get(f"sessions/{SLUG}").json()
    assert before["files"] and before["offered_actions"]
    cleared = api.delete(f"sessions/{SLUG}")
    assert cleared.status_code == 200, cleared.text
    after = cleared.json()
    assert after["state_rev"] == before["state_rev"] + 1
    assert after["files"] == [] and after["offered_actions"] == [] and after["last_payload"] is None
    assert_envelope(api.get(before["files"][0]["url"]), 404, "file_not_found")


def test_settings_save_and_read(people):
    api = people["rteacher"]
    body = assert_envelope(api.put(f"settings/{SLUG}", json={"values": {"shout": "perhaps", "nope": 1}}), 422, "invalid_inputs")
    assert {i["path"] for i in body["error"]["details"]["issues"]} == {"", "/shout"}
    saved = api.put(f"settings/{SLUG}", json={"values": {"separator": " ; ", "shout": "yes"}})
    assert saved.status_code == 200, saved.text
    assert saved.json()["values"] == {"separator": " ; ", "shout": True}
    assert api.get(f"settings/{SLUG}").json() == saved.json()
    assert people["rother"].get(f"settings/{SLUG}").json()["values"] == {}
    assert first_run(api, files=())["execution"]["settings"] == {"separator": " ; ", "shout": True}


def test_a_run_past_its_deadline_is_failed(people, db):
    api = people["rteacher"]
    run_id = first_run(api, files=())["run"]["id"]
    with db.begin() as conn:
        conn.execute(sa.update(runs_table).where(runs_table.c.id == run_id)
                     .values(deadline_at=sa.func.now() - sa.text("interval '1 second'")))
    run = api.get(f"runs/{run_id}").json()
    assert run["status"] == "failed" and run["error_summary"] == "Execution failed (the run never completed)."
    assert_envelope(post_result(api, run_id, envelope()), 409, "run_finished")


def test_posting_a_result_twice_is_409(people):
    api = people["rteacher"]
    run_id = first_run(api, files=())["run"]["id"]
    assert post_result(api, run_id, envelope()).status_code == 200
    assert_envelope(post_result(api, run_id, envelope()), 409, "run_finished")


def test_unknown_or_unpublished_tool_is_404(people, db):
    api = people["rteacher"]
    assert_envelope(api.get("apps/no-such-tool"), 404, "tool_not_found")
    assert_envelope(api.post("runs", json={"tool": "no-such-tool"}), 404, "tool_not_found")
    tool_id = publish_tool(db, "e2e-hidden")
    with db.begin() as conn:
        conn.execute(sa.update(tools).where(tools.c.id == tool_id).values(is_published=False))
    assert_envelope(api.get("apps/e2e-hidden"), 404, "tool_not_found")
    assert_envelope(api.get(f"apps/{SLUG}", params={"context": "elsewhere"}), 422, "invalid")
