"""Backup and restore round trip on the real platform: back up, change and delete data (rows, blobs, a user),
stop, restore, start again: everything is back, and what came after the backup is gone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from skriptoteket_ext import tables as t
from tests.browser.tools import NOOP, publish
from tests.conftest import private_tmpdir
from tests.e2e.conftest import start_platform, stop_platform

from .conftest import Api, prepare_home

pytestmark = [pytest.mark.hub, pytest.mark.timeout(900)]


def cli(platform, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "skriptoteket_ext.cli", *args], env=platform.env,
                          capture_output=True, text=True, timeout=300)


def snapshot(platform) -> dict:
    engine = sa.create_engine(platform.postgres.url("skriptoteket"))
    try:
        with engine.connect() as conn:
            return {
                "runs": sorted(str(r) for r in conn.execute(sa.select(t.runs.c.id)).scalars()),
                "tools": sorted(conn.execute(sa.select(t.tools.c.slug)).scalars()),
                "files": sorted(conn.execute(sa.select(t.session_files.c.blob_key)).scalars()),
            }
    finally:
        engine.dispose()


def test_backup_change_restore_round_trip():
    path = Path(private_tmpdir("skr-backup-"))
    home = path / "home"
    prepare_home(home)
    platform = start_platform(home)
    try:
        db_url = platform.postgres.url("skriptoteket")
        publish(db_url, "noop", title="No-op", source=NOOP, input_schema=[])
        publish(db_url, "upload", title="Upload", source=NOOP,
                input_schema=[{"name": "file", "label": "File", "kind": "file", "min": 1, "max": 1}])
        platform.create_user("teach")
        token = platform.token_for("teach")
        api = Api(platform, token)
        data = "namn,klass\nAda,7A\n".encode() * 50
        created = api.call("POST", "runs", json={"tool": "upload", "context": "production", "inputs": {},
                                                 "files": [{"name": "klass.csv", "bytes": len(data)}]}).json()
        run_id = created["run"]["id"]
        assert api.call("PUT", f"runs/{run_id}/inputs/0", content=data).status_code == 200
        envelope = {"contract_version": 2, "status": "succeeded", "outputs": [], "next_actions": [], "state": None,
                    "artifacts": []}
        assert api.call("POST", f"runs/{run_id}/result", json={"envelope": envelope}).status_code == 200
        api.run("noop")
        before = snapshot(platform)
        assert len(before["runs"]) == 2 and len(before["files"]) == 1

        backup_dir = path / "backup"
        done = cli(platform, "backup", str(backup_dir))
        assert done.returncode == 0, done.stderr
        assert {p.name for p in backup_dir.iterdir()} == {"skriptoteket.dump", "hub.dump", "blobs.tar", "manifest.json"}

        # things change after the backup: runs deleted, blobs lost, a tool added, the teacher deleted
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            conn.execute(sa.delete(t.runs))
            conn.execute(sa.update(t.sessions).values(last_run_id=None))
        engine.dispose()
        shutil.rmtree(home / "blobs" / "runs")
        publish(db_url, "after", title="After the backup", source=NOOP, input_schema=[])
        admin = platform.token_for("admin")
        assert httpx.delete(platform.url + "/hub/api/users/teach", headers={"Authorization": f"token {admin}"},
                            timeout=60).status_code == 204
        assert snapshot(platform) != before

        refused = cli(platform, "restore", str(backup_dir))  # the platform still runs: refused
        assert refused.returncode == 1 and "stop it first" in refused.stderr
    finally:
        stop_platform(platform)
    done = cli(platform, "restore", str(backup_dir))
    assert done.returncode == 0, done.stderr
    assert not platform.postgres.is_running()  # the command stops the embedded Postgres it started

    platform = start_platform(home)
    try:
        assert snapshot(platform) == before
        api = Api(platform, token)  # the teacher's token came back with the hub's database
        session = api.call("GET", "sessions/upload").json()
        assert api.call("GET", session["files"][0]["url"]).content == data
        assert api.call("GET", f"runs/{run_id}").json()["status"] == "succeeded"
        client = platform.login("teach", "teach-password-1")  # the password (NativeAuthenticator's row) is back
        assert "/hub/login" not in str(client.get("/hub/home").url)
        assert httpx.get(platform.url + "/hub/api/user", headers={"Authorization": f"token {token}"}).json()["name"] == "teach"
    finally:
        stop_platform(platform)
        platform.postgres.stop(mode="immediate")
        shutil.rmtree(path, ignore_errors=True)
