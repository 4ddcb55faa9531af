"""Retention: what the platform forgets, and when (docs/operations.md).

Each job is a function of a (synchronous SQLAlchemy) connection, a policy and a clock (``now``), so tests pass a
fake clock; each returns what it did (or, with ``dry_run``, what it would do) and the blob keys to delete. The
blobs are deleted only after the job's transaction committed (``run_job``), so a crash in between leaves an
orphan blob, never a row pointing at a missing blob. Rows are locked with ``SKIP LOCKED``, so the retention
service, the service's own sweep and the command line can all run at once.

| job | what goes | what stays |
|---|---|---|
| ``artifacts`` | the bytes of artifacts past ``expires_at`` or older than ``artifact_days`` | the row, marked ``expired_at``: the run shows "expired", the download answers 410 ``artifact_expired`` |
| ``session_files`` | session files unused for ``session_file_idle_hours`` (rows and bytes) | the session |
| ``snapshots`` | sandbox snapshots past ``expires_at`` or older than ``snapshot_hours`` | their runs (``snapshot_id`` set null) |
| ``draft_locks`` | expired draft-lock rows | drafts |
| ``run_inputs`` | input blobs of runs finished more than ``input_grace_hours`` ago that no session file uses | the run's manifest (names, sizes), marked ``inputs_swept`` |

Runs, versions and audit rows are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

import sqlalchemy as sa

from .blobs import delete_all
from .tables import artifacts, draft_locks, runs, sandbox_snapshots, session_files


@dataclass(frozen=True)
class RetentionPolicy:
    artifact_days: float = 7.0
    session_file_idle_hours: float = 24.0
    snapshot_hours: float = 24.0
    input_grace_hours: float = 1.0
    batch: int = 500


@dataclass
class JobResult:
    job: str
    count: int = 0
    bytes: int = 0
    blob_keys: list[str] = field(default_factory=list)
    dry_run: bool = False
    scanned: int | None = None  # rows looked at, when it differs from count (batching)

    def summary(self) -> dict:
        return {"job": self.job, "count": self.count, "bytes": self.bytes, "dry_run": self.dry_run}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def expire_artifacts(conn, policy: RetentionPolicy, now: datetime, dry_run: bool = False) -> JobResult:
    due = (
        sa.select(artifacts.c.run_id, artifacts.c.artifact_id, artifacts.c.blob_key, artifacts.c.bytes)
        .where(artifacts.c.expired_at.is_(None),
               artifacts.c.expires_at.is_not(None),  # null: kept until further notice
               sa.or_(artifacts.c.expires_at <= now,
                      artifacts.c.created_at <= now - timedelta(days=policy.artifact_days)))
        .order_by(artifacts.c.expires_at)
        .limit(policy.batch)
        .with_for_update(skip_locked=True)
    )
    rows = conn.execute(due).mappings().all()
    result = JobResult("artifacts", len(rows), sum(r["bytes"] for r in rows), [r["blob_key"] for r in rows], dry_run)
    if rows and not dry_run:
        conn.execute(
            sa.update(artifacts)
            .where(sa.tuple_(artifacts.c.run_id, artifacts.c.artifact_id).in_([(r["run_id"], r["artifact_id"]) for r in rows]))
            .values(expired_at=now)
        )
    return result


def sweep_session_files(conn, policy: RetentionPolicy, now: datetime, dry_run: bool = False) -> JobResult:
    rows = conn.execute(
        sa.select(session_files.c.id, session_files.c.blob_key, session_files.c.size)
        .where(session_files.c.last_used_at <= now - timedelta(hours=policy.session_file_idle_hours))
        .limit(policy.batch)
        .with_for_update(skip_locked=True)
    ).mappings().all()
    result = JobResult("session_files", len(rows), sum(r["size"] for r in rows), [r["blob_key"] for r in rows], dry_run)
    if rows and not dry_run:
        conn.execute(sa.delete(session_files).where(session_files.c.id.in_([r["id"] for r in rows])))
    return result


def sweep_snapshots(conn, policy: RetentionPolicy, now: datetime, dry_run: bool = False) -> JobResult:
    ids = conn.execute(
        sa.select(sandbox_snapshots.c.id)
        .where(sa.or_(sandbox_snapshots.c.expires_at <= now,
                      sandbox_snapshots.c.created_at <= now - timedelta(hours=policy.snapshot_hours)))
        .limit(policy.batch)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    if ids and not dry_run:
        conn.execute(sa.delete(sandbox_snapshots).where(sandbox_snapshots.c.id.in_(ids)))
    return JobResult("snapshots", len(ids), dry_run=dry_run)


def sweep_draft_locks(conn, policy: RetentionPolicy, now: datetime, dry_run: bool = False) -> JobResult:
    ids = conn.execute(
        sa.select(draft_locks.c.tool_id).where(draft_locks.c.expires_at <= now).limit(policy.batch)
        .with_for_update(skip_locked=True)
    ).scalars().all()
    if ids and not dry_run:
        # the expiry is checked again: a lock renewed since the select is kept
        conn.execute(sa.delete(draft_locks).where(draft_locks.c.tool_id.in_(ids), draft_locks.c.expires_at <= now))
    return JobResult("draft_locks", len(ids), dry_run=dry_run)


def input_key(run_id, position: int) -> str:
    return f"runs/{run_id}/inputs/{position}"


def sweep_run_inputs(conn, policy: RetentionPolicy, now: datetime, dry_run: bool = False) -> JobResult:
    """Uploaded input files of finished runs that no session adopted (the service deletes most itself; this
    catches the rest, e.g. a clean-up lost to a crash)."""
    manifest = runs.c.input_manifest
    rows = conn.execute(
        sa.select(runs.c.id, manifest)
        .where(runs.c.status != "running", runs.c.finished_at <= now - timedelta(hours=policy.input_grace_hours),
               sa.func.jsonb_array_length(sa.func.coalesce(manifest["files"], sa.text("'[]'::jsonb"))) > 0,
               sa.not_(manifest.has_key("inputs_swept")))
        .limit(policy.batch)
        .with_for_update(of=runs, skip_locked=True)
    ).mappings().all()
    candidates = {input_key(r["id"], f["position"]): int(f.get("bytes") or 0)
                  for r in rows for f in r["input_manifest"].get("files") or [] if isinstance(f, dict) and "position" in f}
    in_use = set(conn.execute(
        sa.select(session_files.c.blob_key).where(session_files.c.blob_key.in_(list(candidates)))
    ).scalars()) if candidates else set()
    keys = [k for k in candidates if k not in in_use]
    result = JobResult("run_inputs", len(keys), sum(candidates[k] for k in keys), keys, dry_run, scanned=len(rows))
    if rows and not dry_run:
        conn.execute(
            sa.update(runs).where(runs.c.id.in_([r["id"] for r in rows]))
            .values(input_manifest=manifest.op("||")(sa.literal({"inputs_swept": True}, type_=runs.c.input_manifest.type)))
        )
    return result


# run_inputs before session_files: an input a session file adopted is that job's to delete, and a run whose
# inputs were swept is not looked at again; the other order would count such a blob twice, and a dry run
# (which deletes no session file) would report less than the real run removes.
JOBS: dict[str, Callable[..., JobResult]] = {
    "artifacts": expire_artifacts,
    "run_inputs": sweep_run_inputs,
    "session_files": sweep_session_files,
    "snapshots": sweep_snapshots,
    "draft_locks": sweep_draft_locks,
}


def run_job(engine, store, name: str, policy: RetentionPolicy, now: datetime | None = None,
            dry_run: bool = False) -> JobResult:
    """One job to completion, a batch per transaction; blobs are deleted after each batch committed."""
    now = now or utcnow()
    total = JobResult(name, dry_run=dry_run)
    while True:
        with engine.begin() as conn:
            part = JOBS[name](conn, policy, now, dry_run)
            if dry_run:
                conn.rollback()
        total.count += part.count
        total.bytes += part.bytes
        total.blob_keys += part.blob_keys
        if not dry_run and part.blob_keys and store is not None:
            delete_all(store, part.blob_keys)
        if dry_run or (part.scanned if part.scanned is not None else part.count) < policy.batch:
            return total


def run_all(engine, store, policy: RetentionPolicy, now: datetime | None = None, dry_run: bool = False,
            jobs: list[str] | None = None) -> list[JobResult]:
    now = now or utcnow()
    return [run_job(engine, store, name, policy, now, dry_run) for name in (jobs or JOBS)]
