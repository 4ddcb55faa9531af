"""Retention jobs against a real Postgres and real blob files, with a fake clock (``now`` passed in)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from skriptoteket_ext import migrate, retention
from skriptoteket_ext import tables as t
from skriptoteket_ext.blobs import BlobNotFound, DirectoryBlobStore

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(fresh_db_url, tmp_path):
    migrate.upgrade(fresh_db_url)
    engine = sa.create_engine(fresh_db_url)
    store = DirectoryBlobStore(tmp_path / "blobs")
    with engine.begin() as conn:
        conn.execute(sa.insert(t.users), [{"name": "anna"}, {"name": "bo"}])
        tool = conn.execute(sa.insert(t.tools).values(slug="groups", title="Groups", owner_name="anna", created_by="anna")
                            .returning(t.tools.c.id)).scalar_one()
        version = conn.execute(sa.insert(t.tool_versions).values(tool_id=tool, version_no=1, state="draft",
                               created_by="anna", source="x").returning(t.tool_versions.c.id)).scalar_one()
        session = conn.execute(sa.insert(t.sessions).values(tool_id=tool, user_name="anna", context="production")
                               .returning(t.sessions.c.id)).scalar_one()

        def run(finished_at, files=()):
            rid = uuid.uuid4()
            conn.execute(sa.insert(t.runs).values(
                id=rid, tool_id=tool, version_id=version, user_name="anna", context="production", status="succeeded",
                requested_at=finished_at - timedelta(seconds=2), finished_at=finished_at,
                deadline_at=finished_at + timedelta(minutes=3),
                input_manifest={"files": [{"position": i, "name": f"f{i}.csv", "bytes": 3, "received": True}
                                          for i in range(len(files))]}))
            for i, data in enumerate(files):
                store.put(f"runs/{rid}/inputs/{i}", data)
            return rid

        old_run = run(T0, files=[b"old", b"abc"])       # input 0 adopted by the session, input 1 left over
        new_run = run(T0 + timedelta(days=8), files=[b"new"])  # finished just now (within the grace)
        for rid, created, expires in ((old_run, T0, T0 + timedelta(days=7)),
                                      (new_run, T0 + timedelta(days=8), T0 + timedelta(days=15))):
            key = f"runs/{rid}/artifacts/report_txt"
            store.put(key, b"report")
            conn.execute(sa.insert(t.artifacts).values(run_id=rid, artifact_id="report_txt", path="report.txt", bytes=6,
                                                       blob_key=key, created_at=created, expires_at=expires))
        conn.execute(sa.insert(t.session_files), [
            {"session_id": session, "position": 0, "name": "f0.csv", "size": 3, "blob_key": f"runs/{old_run}/inputs/0",
             "uploaded_at": T0, "last_used_at": T0 + timedelta(days=7, hours=12)},  # used 12 h before "now"
        ])
        idle = conn.execute(sa.insert(t.sessions).values(tool_id=tool, user_name="bo", context="production")
                            .returning(t.sessions.c.id)).scalar_one()
        idle_run = run(T0, files=[b"idle"])
        conn.execute(sa.insert(t.session_files).values(
            session_id=idle, position=0, name="f0.csv", size=4, blob_key=f"runs/{idle_run}/inputs/0",
            uploaded_at=T0, last_used_at=T0 + timedelta(days=6)))  # idle for two days
        conn.execute(sa.insert(t.sandbox_snapshots), [
            {"tool_id": tool, "user_name": "anna", "created_at": T0, "expires_at": T0 + timedelta(hours=24)},
            {"tool_id": tool, "user_name": "anna", "created_at": T0 + timedelta(days=8) - timedelta(hours=1),
             "expires_at": T0 + timedelta(days=9)},
        ])
        conn.execute(sa.insert(t.draft_locks).values(tool_id=tool, holder_name="anna", acquired_at=T0,
                                                     expires_at=T0 + timedelta(minutes=10)))
    yield {"engine": engine, "store": store, "old_run": old_run, "new_run": new_run, "idle_run": idle_run,
           "now": T0 + timedelta(days=8)}
    engine.dispose()


def counts(engine):
    with engine.connect() as conn:
        return {
            "expired_artifacts": conn.execute(sa.select(sa.func.count()).select_from(t.artifacts)
                                              .where(t.artifacts.c.expired_at.is_not(None))).scalar(),
            "artifacts": conn.execute(sa.select(sa.func.count()).select_from(t.artifacts)).scalar(),
            "session_files": conn.execute(sa.select(sa.func.count()).select_from(t.session_files)).scalar(),
            "snapshots": conn.execute(sa.select(sa.func.count()).select_from(t.sandbox_snapshots)).scalar(),
            "locks": conn.execute(sa.select(sa.func.count()).select_from(t.draft_locks)).scalar(),
        }


def test_dry_run_changes_nothing(world):
    before = counts(world["engine"])
    results = retention.run_all(world["engine"], world["store"], retention.RetentionPolicy(), now=world["now"],
                                dry_run=True)
    assert {r.job: r.count for r in results} == {"artifacts": 1, "session_files": 1, "snapshots": 1,
                                                  "draft_locks": 1, "run_inputs": 1}
    assert counts(world["engine"]) == before
    assert world["store"].size(f"runs/{world['old_run']}/artifacts/report_txt") == 6
    assert world["store"].size(f"runs/{world['old_run']}/inputs/1") == 3


def test_jobs_with_a_fake_clock(world):
    engine, store, old, new = world["engine"], world["store"], world["old_run"], world["new_run"]
    results = retention.run_all(engine, store, retention.RetentionPolicy(), now=world["now"])
    done = {r.job: r.count for r in results}
    # bo's input goes with his idle session file (session_files), not a second time as a run input
    assert done == {"artifacts": 1, "session_files": 1, "snapshots": 1, "draft_locks": 1, "run_inputs": 1}
    after = counts(engine)
    # the expired artifact's row stays, marked; its bytes are gone; the new one is untouched
    assert after["artifacts"] == 2 and after["expired_artifacts"] == 1
    with pytest.raises(KeyError):
        store.size(f"runs/{old}/artifacts/report_txt")
    assert store.size(f"runs/{new}/artifacts/report_txt") == 6
    # the idle session file (bo's) went, anna's recently used one stays, with the input blob it points at
    assert after["session_files"] == 1
    with pytest.raises(KeyError):
        store.size(f"runs/{world['idle_run']}/inputs/0")
    assert store.size(f"runs/{old}/inputs/0") == 3
    # the leftover input of the old run went; the just-finished run keeps its input (grace)
    with pytest.raises(KeyError):
        store.size(f"runs/{old}/inputs/1")
    assert store.size(f"runs/{new}/inputs/0") == 3
    assert after["snapshots"] == 1 and after["locks"] == 0
    # a second pass finds nothing more
    again = retention.run_all(engine, store, retention.RetentionPolicy(), now=world["now"])
    assert all(r.count == 0 for r in again)


def test_artifact_expiry_seen_through_the_run_and_download(world, pg_server):
    """The run detail says "expired" and the download answers 410 (the service's own read path)."""
    import asyncio

    from skriptoteket_ext import runs
    from skriptoteket_ext.db import create_engine
    from skriptoteket_ext.errors import ApiError

    retention.run_all(world["engine"], world["store"], retention.RetentionPolicy(), now=world["now"],
                      jobs=["artifacts"])

    async def read():
        engine = create_engine(str(world["engine"].url.render_as_string(hide_password=False)))
        try:
            async with engine.begin() as conn:
                model = await runs.get_run(conn, "anna", world["old_run"])
                with pytest.raises(ApiError) as err:
                    await runs.artifact_for_download(conn, "anna", world["old_run"], "report_txt")
            return model, err.value
        finally:
            await engine.dispose()

    model, err = asyncio.run(read())
    assert model["artifacts"][0]["expired"] is True
    assert (err.status, err.code) == (410, "artifact_expired")


def test_a_longer_policy_keeps_more(world):
    policy = retention.RetentionPolicy(session_file_idle_hours=72, input_grace_hours=24 * 30)
    done = {r.job: r.count for r in retention.run_all(world["engine"], world["store"], policy, now=world["now"])}
    assert done["session_files"] == 0 and done["run_inputs"] == 0


def test_the_cli_dry_run_reports_and_changes_nothing_then_the_real_run_removes(world, tmp_path):
    """``skriptoteket retention`` as an operator runs it, on the real clock (the world is months old by now)."""
    env = {**os.environ, "SKRIPTOTEKET_HOME": str(tmp_path),  # the blob store is <home>/blobs
           "SKRIPTOTEKET_DB_URL": world["engine"].url.render_as_string(hide_password=False),
           "SKRIPTOTEKET_HUB_DB_URL": world["engine"].url.render_as_string(hide_password=False)}
    artifact = f"runs/{world['old_run']}/artifacts/report_txt"

    def cli(*args):
        done = subprocess.run([sys.executable, "-m", "skriptoteket_ext.cli", "retention", "--json", *args],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return {r["job"]: r["count"] for r in json.loads(done.stdout)}

    before = counts(world["engine"])
    planned = cli("--dry-run")
    assert planned["artifacts"] == 2 and planned["snapshots"] == 2 and planned["draft_locks"] == 1, planned
    assert counts(world["engine"]) == before and world["store"].size(artifact) == 6
    assert cli() == planned  # the real run removes what the dry run said
    after = counts(world["engine"])
    assert after["expired_artifacts"] == 2 and after["snapshots"] == 0 and after["locks"] == 0, after
    with pytest.raises(BlobNotFound):
        world["store"].size(artifact)
