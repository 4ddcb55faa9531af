"""The authoring library against the real platform: create, save with the expected parent (a moved head is a
clear refusal that keeps the author's text), locks, validate, submit, versions, diff; the sandbox API
(snapshots, runs, teachers refused, sandbox state apart from production); the live preview through the runner."""

from __future__ import annotations

import json

import httpx
import nbformat
import pytest

from runner_kernel.authoring.library import HeadMoved
from runner_kernel.authoring.preview import open_preview
from runner_kernel.authoring.service import AuthoringError

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]


def set_cell(path, tag: str, text: str) -> None:
    """Edit a tagged cell in the notebook file, as saving in JupyterLab would."""
    node = nbformat.read(str(path), as_version=4)
    cell = next(c for c in node.cells if tag in (c.metadata.get("tags") or []))
    first = cell.source.split("\n", 1)[0]
    cell.source = (first + "\n" if first.startswith("%%") else "") + text
    nbformat.write(node, str(path))


def cell_text(path, tag: str) -> str:
    node = nbformat.read(str(path), as_version=4)
    return next(c.source for c in node.cells if tag in (c.metadata.get("tags") or []))


def api(platform, token: str, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(method, f"{platform.service_url}/api/v1/{path}", headers={"Authorization": f"token {token}"},
                         timeout=60, **kw)


SOURCE_V2 = "def run_tool(input_dir, output_dir):\n    return 'edited elsewhere'\n"
SOURCE_MINE = "def run_tool(input_dir, output_dir):\n    return {'outputs': [{'kind': 'markdown', 'markdown': 'mine'}]}\n"


def test_create_save_head_moved_lock_validate_submit_diff(author_factory, tmp_path, people, platform):
    skr = author_factory("au-amy")
    path = skr.create_tool("Library tool", "made by the test", ["teacher"], ["other"], path=tmp_path / "lib.ipynb")
    assert (tmp_path / "samples" / "starter-class-list.csv").is_file()  # the starter's sample came along
    skr.use_notebook(path)
    tool = skr.current()
    tid = tool.meta["id"]
    assert tool.slug == f"draft-{tid}" and tool.meta["base_version"] is None

    v1 = skr.save()
    assert v1["version_no"] == 1 and v1["state"] == "draft"
    assert skr.lock_state["mine"] and skr.lock_state["holder"] == "au-amy"

    # Another notebook of the same author pulls the head, edits and saves: the head moves.
    other = author_factory("au-amy")
    other_path = other.open(tid, path=tmp_path / "other.ipynb")
    other.use_notebook(other_path)
    set_cell(other_path, "skr-source", SOURCE_V2)
    v2 = other.save()
    assert v2["version_no"] == 2

    # The first notebook saves its own edit: refused, clearly, and its cells stay exactly as they were.
    set_cell(path, "skr-source", SOURCE_MINE)
    before = path.read_text()
    with pytest.raises(HeadMoved) as refused:
        skr.save()
    message = str(refused.value)
    assert "Not saved" in message and "Your cells are unchanged" in message and "force=True" in message
    assert "saved by au-amy" in message
    assert path.read_text() == before and SOURCE_MINE in cell_text(path, "skr-source")
    v3 = skr.save(force=True)
    assert v3["version_no"] == 3 and v3["source"] == SOURCE_MINE

    # A cell run (the %%skr_source magic) counts without saving the file.
    skr.register("skr-source", SOURCE_MINE.replace("mine", "run, not saved"))
    assert "run, not saved" in skr.current().source and skr.origin["skr-source"].startswith("cell run at")

    # Another author (not a maintainer) cannot take the lock; a teacher cannot even see the tool.
    otto = author_factory("au-otto")
    with pytest.raises(AuthoringError) as no:
        otto.api.acquire_lock(tid)
    assert no.value.status in (403, 404)
    with pytest.raises(AuthoringError) as hidden:
        author_factory("au-tina").api.tool(tid)
    assert hidden.value.status in (403, 404)

    # validate: issues with JSON pointers, nothing sent anywhere
    set_cell(path, "skr-input-schema", json.dumps([{"name": "mode", "label": "Mode", "kind": "enum"}]))
    skr.registered.clear()
    issues = skr.validate(show=False)
    assert any(i["path"].startswith("/input_schema/0") for i in issues), issues
    with pytest.raises(AuthoringError) as bad:
        skr.save()
    assert bad.value.code == "invalid_schema"
    assert any(i["path"].startswith("/input_schema/0") for i in bad.value.details["issues"])
    set_cell(path, "skr-input-schema", "[]")
    set_cell(path, "skr-sample", "[]")
    assert skr.validate(show=False) == []

    # submit needs the notebook saved; then the version waits for review
    with pytest.raises(AuthoringError) as unsaved:
        skr.submit()
    assert unsaved.value.code == "unsaved_changes"
    v4 = skr.save()
    skr.api.update_tool(tid, {"professions": ["teacher"], "categories": ["other"]})
    reviewer = author_factory("au-rita")
    reviewer.api.update_tool(tid, {"slug": "library-tool-test"})
    submitted = skr.submit()
    assert submitted["id"] == v4["id"] and submitted["state"] == "in_review"
    queue = api(platform, people["au-rita"], "GET", "review/queue").json()["pending"]
    assert any(p["version"]["id"] == v4["id"] for p in queue)

    versions = skr.versions(show=False)
    assert [v["state"] for v in versions][:2] == ["in_review", "archived"]
    diffs = skr.diff(version=v4["id"], show=False)
    assert "+def run_tool" in diffs["source"] and "(no active version)" in diffs["source"]
    skr.release_lock()
    assert skr.api.lock(tid) is None


def test_sandbox_api_snapshots_runs_and_isolation(author_factory, platform, people, tmp_path):
    from tests.e2e.publishing import publish_tool

    published = publish_tool(platform, "sandbox-iso", "Sandbox isolation", author="au-amy", reviewer="au-rita")
    tid = published["tool_id"]
    amy, tina, otto = people["au-amy"], people["au-tina"], people["au-otto"]
    source = ("def run_tool(input_dir, output_dir):\n    print('hello from the sandbox')\n"
              "    return {'outputs': [{'kind': 'markdown', 'markdown': 'sandboxed'}], 'state': {'n': 1},\n"
              "            'next_actions': [{'action_id': 'again', 'label': 'Again', 'kind': 'form', 'fields': []}]}\n")
    schema = [{"name": "who", "label": "Who", "kind": "string"}]
    snap = api(platform, amy, "POST", "sandbox/snapshots",
               json={"tool": "sandbox-iso", "source": source, "input_schema": schema})
    assert snap.status_code == 201, snap.text
    sid = snap.json()["id"]
    assert "context=sandbox" in snap.json()["preview_path"]

    bad = api(platform, amy, "POST", "sandbox/snapshots",
              json={"tool": tid, "source": source, "input_schema": [{"name": "x", "kind": "enum", "label": "X"}]})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_schema"
    assert any(i["path"].startswith("/input_schema/0") for i in bad.json()["error"]["details"]["issues"])

    # teachers (and authors who do not maintain the tool) get 404 for everything sandbox
    assert api(platform, tina, "GET", "apps/sandbox-iso", params={"context": "sandbox", "snapshot": sid}).status_code == 404
    assert api(platform, tina, "POST", "runs", json={"tool": "sandbox-iso", "context": "sandbox", "snapshot_id": sid}).status_code == 404
    assert api(platform, otto, "GET", "apps/sandbox-iso", params={"context": "sandbox", "snapshot": sid}).status_code == 404
    assert api(platform, tina, "POST", "sandbox/snapshots", json={"tool": tid, "source": source}).status_code == 403
    assert api(platform, otto, "POST", "sandbox/snapshots", json={"tool": tid, "source": source}).status_code == 404
    # a snapshot is its creator's only
    assert api(platform, people["au-rita"], "GET", "apps/sandbox-iso",
               params={"context": "sandbox", "snapshot": sid}).status_code == 404

    app = api(platform, amy, "GET", "apps/sandbox-iso", params={"context": "sandbox", "snapshot": sid}).json()
    assert app["context"] == "sandbox" and app["version"]["input_schema"] == schema
    assert app["sandbox"]["snapshot_id"] == sid

    created = api(platform, amy, "POST", "runs", json={"tool": "sandbox-iso", "context": "sandbox", "snapshot_id": sid,
                                                       "inputs": {"who": "amy"}})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["execution"]["source"] == source and body["execution"]["timeout_seconds"] == 60
    run_id = body["run"]["id"]
    envelope = {"contract_version": 2, "status": "succeeded", "error_summary": None,
                "outputs": [{"kind": "markdown", "markdown": "sandboxed"}], "state": {"n": 1},
                "next_actions": [{"action_id": "again", "label": "Again", "kind": "form", "fields": []}], "artifacts": []}
    finished = api(platform, amy, "POST", f"runs/{run_id}/result",
                   json={"envelope": envelope, "stdout": "hello from the sandbox\n", "stderr": "",
                         "traceback": "Traceback: nothing really"})
    assert finished.status_code == 200, finished.text
    assert finished.json()["logs"]["stdout"] == "hello from the sandbox\n"
    assert "Traceback" in finished.json()["logs"]["stderr"]

    # sandbox state and sessions are apart from production
    sandbox_session = api(platform, amy, "GET", "sessions/sandbox-iso", params={"context": "sandbox", "snapshot": sid}).json()
    production_session = api(platform, amy, "GET", "sessions/sandbox-iso", params={"context": "production"}).json()
    assert sandbox_session["state_rev"] == 1 and sandbox_session["offered_actions"]
    assert production_session["id"] is None and production_session["offered_actions"] == []
    assert api(platform, amy, "GET", f"runs/{run_id}").json()["stdout"] == "hello from the sandbox\n"

    # reviewers' "try this version": a version id instead of a snapshot; the draft head by default
    version = api(platform, people["au-rita"], "GET", "apps/sandbox-iso",
                  params={"context": "sandbox", "version": published["version_id"]})
    assert version.status_code == 200 and version.json()["sandbox"]["version_id"] == published["version_id"]
    assert api(platform, amy, "GET", "apps/sandbox-iso", params={"context": "sandbox"}).status_code == 200
    # an expired or unknown snapshot
    missing = api(platform, amy, "GET", "apps/sandbox-iso",
                  params={"context": "sandbox", "snapshot": "00000000-0000-0000-0000-000000000000"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "snapshot_not_found"


async def test_preview_runs_unsaved_content_with_the_sample(author_factory, tmp_path):
    skr = author_factory("au-amy")
    path = skr.create_tool("Preview tool", "", ["teacher"], ["other"], path=tmp_path / "preview.ipynb")
    skr.use_notebook(path)

    app = await open_preview(skr, sample=0)
    assert app.preview_timings["total_ms"] > 0
    payload = app.sample_results["class-7b"]
    assert payload["status"] == "succeeded", payload
    kinds = [o["kind"] for o in payload["outputs"]]
    assert kinds == ["notice", "markdown", "table", "json", "html_sandboxed", "vega_lite"], kinds
    assert sorted(a["path"] for a in payload["artifacts"]) == ["output/groups.csv", "output/groups.pdf"]
    assert payload["state"]["round"] == 2  # the sample's follow-up action ran with the stored state
    assert "reshuffle: seed=7" in app.logs.value  # stdout, for the author
    assert "voila" not in app.logs.value and "context=sandbox" in app.bar.children[0].value

    # an unsaved change with a bug: the teacher's message, and the traceback for the author
    skr.register("skr-source", "def run_tool(input_dir, output_dir):\n    return 1 / 0\n")
    broken = await open_preview(skr, sample=0)
    step = broken.history.steps[-1]["payload"]  # (steps[0]: the earlier result the session still shows)
    assert step["status"] == "failed" and "ZeroDivisionError" in step["error_summary"]
    assert "skr-author-traceback" in broken.logs.value and "ZeroDivisionError" in broken.logs.value
    print("preview timings", app.preview_timings, app.timings, "broken", broken.preview_timings)
