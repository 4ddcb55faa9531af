"""Runs, sessions, settings, uploads and artifacts against a real Postgres and a real blob directory."""

from __future__ import annotations

import errno
import os
import uuid

import pytest
from sqlalchemy import func, insert, select, update

from skriptoteket_ext import migrate, profiles, runs, sessions
from skriptoteket_ext.blobs import BlobNotFound, DirectoryBlobStore, StorageFull, delete_all
from skriptoteket_ext.db import create_engine
from skriptoteket_ext.errors import ApiError
from skriptoteket_ext.tables import artifacts, runs as runs_table, session_files, tool_versions, tools

INPUT_SCHEMA = [
    {"name": "title", "label": "Title", "kind": "string", "required": True},
    {"name": "groups", "label": "Groups", "kind": "integer", "min": 1, "max": 10},
    {"name": "lists", "label": "Class lists", "kind": "file", "min": 1, "max": 3},
]
SETTINGS_SCHEMA = [
    {"name": "separator", "label": "Separator", "kind": "string"},
    {"name": "shout", "label": "Shout", "kind": "boolean"},
]
ACTION = {
    "action_id": "regroup", "label": "Regroup", "kind": "form",
    "fields": [{"name": "size", "label": "Group size", "kind": "integer", "min": 2}],
    "prefill": {"size": 3},
}


def envelope(**overrides):
    base = {"contract_version": 2, "status": "succeeded", "error_summary": None, "outputs": [],
            "next_actions": [], "state": None, "artifacts": []}
    return {**base, **overrides}


@pytest.fixture
async def engine(fresh_db_url):
    migrate.upgrade(fresh_db_url)
    engine = create_engine(fresh_db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(tmp_path):
    return DirectoryBlobStore(tmp_path / "blobs")


async def publish_tool(engine, slug="group-maker", *, input_schema=INPUT_SCHEMA, settings_schema=SETTINGS_SCHEMA):
    async with engine.begin() as conn:
        await profiles.touch(conn, "owner")
        tool_id = (
            await conn.execute(
                insert(tools)
                .values(slug=slug, title="Group maker", summary="Makes groups", owner_name="owner", is_published=True,
                        published_at=func.now(), slug_locked=True, created_by="owner")
                .returning(tools.c.id)
            )
        ).scalar_one()
        await conn.execute(
            insert(tool_versions).values(
                tool_id=tool_id, version_no=1, state="active", was_active=True, created_by="owner",
                source="def run_tool(input_dir, output_dir):\n    return ''\n",
                input_schema=input_schema, settings_schema=settings_schema,
            )
        )
    return tool_id


async def create(engine, user, body):
    cleanup: list[str] = []
    async with engine.begin() as conn:
        await profiles.touch(conn, user)
        return await runs.create_run(conn, user, body, cleanup)


async def upload(engine, store, user, run_id, position, data):
    async with engine.begin() as conn:
        return await runs.store_input(conn, store, user, uuid.UUID(run_id), position, data)


async def finish(engine, store, user, run_id, body):
    cleanup: list[str] = []
    async with engine.begin() as conn:
        done = await runs.finish_run(conn, user, uuid.UUID(run_id), body, cleanup)
    delete_all(store, cleanup)
    return done


async def count_runs(engine):
    async with engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(runs_table))).scalar_one()


FIRST = {"tool": "group-maker", "context": "production", "inputs": {"title": "  7B  ", "groups": "3"},
         "files": [{"name": "../../a.csv", "bytes": 5}, {"name": "a.csv", "bytes": 3}]}


async def first_run_with_actions(engine, store, user="tina"):
    created = await create(engine, user, FIRST)
    run_id = created["run"]["id"]
    await upload(engine, store, user, run_id, 0, b"x,y\n1")
    await upload(engine, store, user, run_id, 1, b"abc")
    result = envelope(
        outputs=[{"kind": "table", "columns": [{"key": "10", "label": "Ten"}, {"key": "2", "label": "Two"}],
                  "rows": [{"2": "b", "10": "a", "extra": 1}]}],
        next_actions=[ACTION], state={"groups": [[1, 2]], "b": 1},
    )
    done = await finish(engine, store, user, run_id, {"envelope": result, "stdout": "hello", "stderr": ""})
    return created, done


# ------------------------------------------------------------------------------------------------ tests


async def test_first_run_then_action_run(engine, store):
    await publish_tool(engine)
    created, done = await first_run_with_actions(engine, store)
    assert created["run"]["status"] == "running" and created["execution"]["timeout_seconds"] == 120
    assert created["execution"]["inputs"] == {"title": "7B", "groups": 3}
    assert created["execution"]["action"] is None
    assert [u["name"] for u in created["uploads"]] == ["a.csv", "a (2).csv"]
    assert created["uploads"][1]["url"] == f"runs/{created['run']['id']}/inputs/1"

    payload = done.body["payload"]
    assert not done.conflict and done.body["run"]["status"] == "succeeded"
    table = payload["outputs"][0]
    assert [c["key"] for c in table["columns"]] == ["10", "2"] and table["rows"] == [["a", "b"]]
    assert done.body["session"]["state_rev"] == 1

    async with engine.connect() as conn:
        app = await runs.app_model(conn, "tina", "group-maker", "production")
    session = app["session"]
    assert session["state_rev"] == 1 and session["offered_actions"][0]["action_id"] == "regroup"
    assert [(f["name"], f["bytes"]) for f in session["files"]] == [("a.csv", 5), ("a (2).csv", 3)]
    assert session["last_payload"] == payload and session["last_run_id"] == created["run"]["id"]
    assert app["limits"] == {"max_files": 20, "max_file_bytes": 20_000_000, "max_run_bytes": 50_000_000}

    action = await create(engine, "tina", {"tool": "group-maker", "action": {"action_id": "regroup", "input": {"size": "4"}},
                                           "expected_state_rev": 1})
    assert action["execution"]["action"] == {"action_id": "regroup", "input": {"size": 4}, "state": {"b": 1, "groups": [[1, 2]]}}
    assert [f["name"] for f in action["session_files"]] == ["a.csv", "a (2).csv"] and action["uploads"] == []
    with store.open(f"runs/{created['run']['id']}/inputs/0") as f:  # the session file's bytes
        assert f.read() == b"x,y\n1"
    done2 = await finish(engine, store, "tina", action["run"]["id"], {"envelope": envelope(state={"round": 2})})
    assert done2.body["session"]["state_rev"] == 2
    async with engine.connect() as conn:
        row = await sessions.find(conn, app["tool"]["id"], "tina", "production")
    assert row["state"] == {"round": 2} and row["offered_actions"] == []
    # the session files survive action runs
    async with engine.connect() as conn:
        assert len(await sessions.files_of(conn, row["id"])) == 2


async def test_stale_rev_is_409_and_creates_nothing(engine, store):
    await publish_tool(engine)
    await first_run_with_actions(engine, store)
    before = await count_runs(engine)
    with pytest.raises(ApiError) as err:
        await create(engine, "tina", {"tool": "group-maker", "action": {"action_id": "regroup", "input": {}},
                                      "expected_state_rev": 0})
    assert (err.value.status, err.value.code) == (409, "session_changed")
    assert await count_runs(engine) == before


async def test_action_not_offered_and_invalid_inputs(engine, store):
    await publish_tool(engine)
    await first_run_with_actions(engine, store)
    with pytest.raises(sessions.InvalidInputs) as err:
        await create(engine, "tina", {"tool": "group-maker", "action": {"action_id": "nope", "input": {}}, "expected_state_rev": 1})
    assert err.value.issues[0].path == "/action_id"
    with pytest.raises(sessions.InvalidInputs) as err:
        await create(engine, "tina", {"tool": "group-maker", "inputs": {"groups": "many", "color": "red"}, "files": []})
    paths = sorted(i.path for i in err.value.issues)
    assert paths == ["", "/groups", "/lists", "/title"]
    with pytest.raises(ApiError) as err:
        await create(engine, "tina", {"tool": "group-maker", "action": {"action_id": "regroup"}})
    assert err.value.status == 422 and err.value.details["field"] == "expected_state_rev"


async def test_upload_limits(engine, store):
    await publish_tool(engine)
    many = [{"name": f"f{i}.csv", "bytes": 1} for i in range(21)]
    for files, code in (
        (many, "too_many_files"),
        ([{"name": "big.csv", "bytes": 20_000_001}], "file_too_large"),
        ([{"name": f"f{i}", "bytes": 19_000_000} for i in range(3)], "run_too_large"),
    ):
        with pytest.raises(ApiError) as err:
            await create(engine, "tina", {**FIRST, "files": files})
        assert (err.value.status, err.value.code) == (413, code)
    created = await create(engine, "tina", FIRST)
    with pytest.raises(ApiError) as err:
        await upload(engine, store, "tina", created["run"]["id"], 0, b"1234")
    assert (err.value.status, err.value.code) == (422, "size_mismatch")
    with pytest.raises(ApiError) as err:
        await upload(engine, store, "tina", created["run"]["id"], 5, b"")
    assert err.value.code == "upload_not_found"
    with pytest.raises(ApiError) as err:
        await upload(engine, store, "olle", created["run"]["id"], 0, b"12345")
    assert err.value.code == "run_not_found"


async def test_artifacts_kept_only_when_uploaded_and_finish_twice(engine, store):
    await publish_tool(engine, input_schema=[])
    created = await create(engine, "tina", {"tool": "group-maker"})
    run_id = uuid.UUID(created["run"]["id"])
    async with engine.begin() as conn:
        with pytest.raises(ApiError) as err:
            await runs.store_artifact(conn, store, "tina", run_id, "wrong", "report.pdf", b"%PDF")
        assert err.value.code == "artifact_id_mismatch"
    for art_id, path, data in (("report_pdf", "report.pdf", b"%PDF-1.4 body"), ("a_txt_2", "a.txt", b"lower"),
                               ("a_txt", "A.txt", b"upper"), ("junk_bin", "junk.bin", b"x")):
        async with engine.begin() as conn:
            stored = await runs.store_artifact(conn, store, "tina", run_id, art_id, path, data)
        assert stored["bytes"] == len(data)
    async with engine.begin() as conn:
        with pytest.raises(ApiError) as err:
            await runs.store_artifact(conn, store, "tina", run_id, "x", "../etc/passwd", b"")
        assert err.value.code == "invalid_artifact_path"
    result = envelope(artifacts=[{"path": "output/report.pdf", "bytes": 999}, {"path": "output/a.txt", "bytes": 5},
                                 {"path": "output/A.txt", "bytes": 5}, {"path": "output/missing.csv", "bytes": 3}])
    done = await finish(engine, store, "tina", created["run"]["id"], {"envelope": result, "stdout": "o" * 300_000})
    ids = {a["id"]: a["bytes"] for a in done.body["payload"]["artifacts"]}
    assert ids == {"report_pdf": 13, "a_txt_2": 5, "a_txt": 5}
    with pytest.raises(BlobNotFound):
        store.open(f"runs/{run_id}/artifacts/junk_bin")
    async with engine.begin() as conn:
        row = await runs.artifact_for_download(conn, "tina", run_id, "report_pdf")
        assert row["content_type"] == "application/pdf"
        with pytest.raises(ApiError) as err:
            await runs.artifact_for_download(conn, "olle", run_id, "report_pdf")
        assert err.value.status == 404
        model = await runs.get_run(conn, "tina", run_id)
        assert "stdout" not in model and model["payload"]["artifacts"][0]["id"] == "a_txt"
        model = await runs.get_run(conn, "rita", run_id, is_reviewer=True, is_author=True)
        assert len(model["stdout"].encode()) <= 200_000
        with pytest.raises(ApiError) as err:
            await runs.get_run(conn, "olle", run_id)
        assert err.value.code == "run_not_found"
    with pytest.raises(ApiError) as err:
        await finish(engine, store, "tina", created["run"]["id"], {"envelope": envelope()})
    assert (err.value.status, err.value.code) == (409, "run_finished")


async def test_concurrent_action_runs_second_conflicts_and_is_stored_failed(engine, store):
    await publish_tool(engine)
    await first_run_with_actions(engine, store)
    body = {"tool": "group-maker", "action": {"action_id": "regroup", "input": {}}, "expected_state_rev": 1}
    a, b = await create(engine, "tina", body), await create(engine, "tina", body)
    assert not (await finish(engine, store, "tina", a["run"]["id"], {"envelope": envelope(next_actions=[ACTION])})).conflict
    done = await finish(engine, store, "tina", b["run"]["id"], {"envelope": envelope(outputs=[{"kind": "markdown", "markdown": "kept"}])})
    assert done.conflict and done.body["run"]["status"] == "failed"
    assert done.body["payload"]["outputs"][0]["markdown"] == "kept"
    assert done.body["session"]["state_rev"] == 2


async def test_first_run_without_actions_leaves_state_and_reuse_clear(engine, store):
    tool_id = await publish_tool(engine)
    await first_run_with_actions(engine, store)
    created = await create(engine, "tina", {"tool": "group-maker", "inputs": {"title": "x"}, "session_files": "reuse"})
    assert [f["name"] for f in created["session_files"]] == ["a.csv", "a (2).csv"]
    done = await finish(engine, store, "tina", created["run"]["id"], {"envelope": envelope()})
    # offered actions withdrawn (rev moves so other tabs reload); state kept; files kept
    assert done.body["session"]["state_rev"] == 2
    async with engine.connect() as conn:
        row = await sessions.find(conn, tool_id, "tina", "production")
        assert row["state"] == {"b": 1, "groups": [[1, 2]]} and row["offered_actions"] == []
    with pytest.raises(sessions.InvalidInputs):  # "none" gives 0 files, the schema needs ≥ 1
        await create(engine, "tina", {"tool": "group-maker", "inputs": {"title": "x"}, "session_files": "none"})
    cleanup: list[str] = []
    async with engine.begin() as conn:
        with pytest.raises(sessions.InvalidInputs):
            await runs.create_run(conn, "tina", {"tool": "group-maker", "inputs": {"title": "x"}, "session_files": "clear"}, cleanup)
    async with engine.connect() as conn:
        assert len(await sessions.files_of(conn, row["id"])) == 2  # a rejected run changes nothing


async def test_sweep_marks_overdue_runs_failed(engine, store):
    await publish_tool(engine, input_schema=[])
    created = await create(engine, "tina", {"tool": "group-maker"})
    run_id = uuid.UUID(created["run"]["id"])
    async with engine.begin() as conn:
        await conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(deadline_at=func.now() - func.make_interval(0, 0, 0, 0, 0, 0, 1)))
    with pytest.raises(ApiError) as err:  # a late result is refused
        await finish(engine, store, "tina", created["run"]["id"], {"envelope": envelope()})
    assert err.value.code == "run_finished"
    async with engine.begin() as conn:
        model = await runs.get_run(conn, "tina", run_id)
    assert model["status"] == "failed" and model["error_summary"] == runs.NEVER_COMPLETED
    assert model["payload"]["error_summary"] == runs.NEVER_COMPLETED and model["finished_at"]
    async with engine.begin() as conn:
        assert (await runs.sweep(conn, [])) == {"runs": 0, "artifacts": 0, "session_files": 0}


async def test_periodic_sweep_expires_artifacts_and_idle_files(engine, store):
    await publish_tool(engine, input_schema=[])
    created = await create(engine, "tina", {"tool": "group-maker"})
    run_id = uuid.UUID(created["run"]["id"])
    async with engine.begin() as conn:
        await runs.store_artifact(conn, store, "tina", run_id, "a_txt", "a.txt", b"a")
    await finish(engine, store, "tina", created["run"]["id"], {"envelope": envelope(artifacts=[{"path": "output/a.txt", "bytes": 1}])})
    async with engine.begin() as conn:
        await conn.execute(update(artifacts).values(expires_at=func.now() - func.make_interval(0, 0, 0, 1)))
    cleanup: list[str] = []
    async with engine.begin() as conn:
        counts = await runs.sweep(conn, cleanup)
    delete_all(store, cleanup)
    assert counts["artifacts"] == 1
    async with engine.begin() as conn:
        with pytest.raises(ApiError) as err:
            await runs.artifact_for_download(conn, "tina", run_id, "a_txt")
        assert (err.value.status, err.value.code) == (410, "artifact_expired")
        assert (await runs.get_run(conn, "tina", run_id))["artifacts"][0]["expired"] is True


async def test_clear_memory_and_session_file_owner_only(engine, store):
    tool_id = await publish_tool(engine)
    await first_run_with_actions(engine, store)
    async with engine.begin() as conn:
        session = await sessions.find(conn, tool_id, "tina", "production")
        row = await sessions.file_for_download(conn, "tina", session["id"], 0)
        assert row["name"] == "a.csv"
        with pytest.raises(ApiError) as err:
            await sessions.file_for_download(conn, "olle", session["id"], 0)
        assert err.value.status == 404
    cleanup: list[str] = []
    async with engine.begin() as conn:
        cleared = await sessions.clear(conn, tool_id, "tina", "production", cleanup)
    delete_all(store, cleanup)
    assert cleared["state_rev"] == 2 and cleared["files"] == [] and cleared["offered_actions"] == []
    assert cleared["last_payload"] is None
    with pytest.raises(BlobNotFound):
        store.size(row["blob_key"])
    async with engine.begin() as conn:
        assert (await sessions.find(conn, tool_id, "tina", "production"))["state"] == {}


async def test_settings_validated_untrimmed_and_keyed_by_schema(engine, store):
    tool_id = await publish_tool(engine)
    async with engine.begin() as conn:
        await profiles.touch(conn, "tina")
        with pytest.raises(sessions.InvalidInputs):
            await sessions.save_settings(conn, tool_id, "tina", "production", SETTINGS_SCHEMA, {"shout": "maybe"})
        saved = await sessions.save_settings(conn, tool_id, "tina", "production", SETTINGS_SCHEMA, {"separator": " ; ", "shout": "yes"})
        assert saved["values"] == {"separator": " ; ", "shout": True}
        assert (await sessions.read_settings(conn, tool_id, "tina", "production", SETTINGS_SCHEMA))["values"] == saved["values"]
        assert (await sessions.read_settings(conn, tool_id, "tina", "production", SETTINGS_SCHEMA[:1]))["values"] == {}
        assert (await sessions.read_settings(conn, tool_id, "olle", "production", SETTINGS_SCHEMA))["values"] == {}
    created = await create(engine, "tina", FIRST)
    assert created["execution"]["settings"] == {"separator": " ; ", "shout": True}


async def test_unpublished_tool_and_sandbox_are_404(engine, store):
    tool_id = await publish_tool(engine)
    async with engine.begin() as conn:
        with pytest.raises(ApiError) as err:
            await runs.resolve_app(conn, "group-maker", "sandbox")
        assert err.value.code == "tool_not_found"
        await conn.execute(update(tools).where(tools.c.id == tool_id).values(is_published=False))
        with pytest.raises(ApiError) as err:
            await runs.resolve_app(conn, "group-maker", "production")
        assert err.value.code == "tool_not_found"


async def test_list_runs_newest_first_with_paging(engine, store):
    await publish_tool(engine, input_schema=[])
    ids = [(await create(engine, "tina", {"tool": "group-maker"}))["run"]["id"] for _ in range(3)]
    await create(engine, "olle", {"tool": "group-maker"})
    async with engine.begin() as conn:
        page = await runs.list_runs(conn, "tina", limit=2)
        assert [r["id"] for r in page["runs"]] == ids[::-1][:2] and page["next_before"] == ids[1]
        rest = await runs.list_runs(conn, "tina", limit=2, before=page["next_before"])
        assert [r["id"] for r in rest["runs"]] == [ids[0]] and rest["next_before"] is None
        assert page["runs"][0]["tool"] == {"slug": "group-maker", "title": "Group maker"}
        assert (await runs.list_runs(conn, "tina", tool="other"))["runs"] == []


# ------------------------------------------------------------------------------------------ blob store


def test_blob_store_round_trip_and_keys(store):
    assert store.put("runs/abc/inputs/0", b"hello") == 5
    assert store.put("runs/abc/inputs/1", iter([b"a", b"b"])) == 2
    with store.open("runs/abc/inputs/0") as f:
        assert f.read() == b"hello"
    assert store.size("runs/abc/inputs/1") == 2
    for bad in ("../x", "/etc/passwd", "runs/../x", "", "runs//x", ".hidden", "a/b\\c"):
        with pytest.raises(ValueError):
            store.put(bad, b"")
    assert store.delete_prefix("runs/abc/") == 2
    assert not store.delete("runs/abc/inputs/0")


def test_full_disk_leaves_no_half_written_blob(store, monkeypatch):
    store.put("runs/r/artifacts/a", b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageFull) as err:
        store.put("runs/r/artifacts/a", b"new" * 1000)
    assert (err.value.status, err.value.code) == (507, "storage_full")
    monkeypatch.undo()
    with store.open("runs/r/artifacts/a") as f:
        assert f.read() == b"old"
    assert [p.name for p in (store.root / "runs/r/artifacts").iterdir()] == ["a"]


async def test_the_periodic_sweeper_fails_overdue_runs(engine, store):
    import asyncio
    import logging
    from types import SimpleNamespace

    from skriptoteket_ext.handlers.runs import start_sweeper

    await publish_tool(engine, input_schema=[])
    created = await create(engine, "tina", {"tool": "group-maker"})
    run_id = uuid.UUID(created["run"]["id"])
    async with engine.begin() as conn:
        await conn.execute(update(runs_table).where(runs_table.c.id == run_id).values(deadline_at=func.now()))
    app = SimpleNamespace(settings={"engine": engine, "blobs": store, "run_policy": runs.DEFAULT_POLICY})
    assert start_sweeper(app, 0, logging.getLogger("test")) is None  # 0 turns it off
    sweeper = start_sweeper(app, 0.1, logging.getLogger("test"))
    try:
        for _ in range(50):
            await asyncio.sleep(0.1)
            async with engine.connect() as conn:
                status = (await conn.execute(select(runs_table.c.status).where(runs_table.c.id == run_id))).scalar_one()
            if status != "running":
                break
    finally:
        sweeper.stop()
    assert status == "failed"
