"""The blob store: uploaded input files, session files and run artifacts, addressed by a key.

Keys are relative, slash-separated paths such as ``runs/<uuid>/artifacts/<id>``. The interface is five methods
(``put``, ``open``, ``size``, ``delete``, ``delete_prefix``), small enough that an S3-compatible store can
replace ``DirectoryBlobStore`` without touching the code that uses it. The database holds the metadata (name,
size, owner) and the key; the store holds only bytes.

``DirectoryBlobStore`` writes each blob to a temporary file in the same directory tree, fsyncs it and renames it
into place, so a reader sees either the whole blob or nothing, and a full disk leaves no half-written blob
behind (``StorageFull``, reported to the user as 507 "The file store is full…").
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterable, Protocol

from .errors import ApiError

CHUNK = 1024 * 1024
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


class StorageFull(ApiError):
    """The disk (or quota) under the blob store is full; nothing was stored."""

    def __init__(self) -> None:
        super().__init__(507, "storage_full")


class BlobNotFound(KeyError):
    pass


def check_key(key: str, *, prefix: bool = False) -> str:
    """A key is 1–8 plain segments (letters, digits, ``._-``; no ``..``, no leading ``/`` or dot).

    A *prefix* may end with ``/``. Anything else is a programming error, so it raises ``ValueError``.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("blob key must be a non-empty string")
    body = key[:-1] if prefix and key.endswith("/") else key
    parts = body.split("/")
    if len(parts) > 8 or not all(_SEGMENT_RE.match(p) and ".." not in p for p in parts):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    def put(self, key: str, data: bytes | BinaryIO | Iterable[bytes]) -> int: ...
    def open(self, key: str) -> BinaryIO: ...
    def size(self, key: str) -> int: ...
    def delete(self, key: str) -> bool: ...
    def delete_prefix(self, prefix: str) -> int: ...


def _chunks(data: bytes | BinaryIO | Iterable[bytes]) -> Iterable[bytes]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            yield view[start : start + CHUNK]
    elif hasattr(data, "read"):
        while chunk := data.read(CHUNK):
            yield chunk
    else:
        yield from data


class DirectoryBlobStore:
    """Blobs as files under ``root`` (``$SKRIPTOTEKET_HOME/blobs`` by default)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str, *, prefix: bool = False) -> Path:
        path = (self.root / check_key(key, prefix=prefix)).resolve()
        if path == self.root or self.root not in path.parents:
            raise ValueError(f"invalid blob key {key!r}")
        return path

    def put(self, key: str, data: bytes | BinaryIO | Iterable[bytes]) -> int:
        """Store ``data`` under ``key`` (replacing any earlier blob) atomically; returns the bytes written."""
        final = self.path(key)
        tmp = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".tmp-")
            written = 0
            with os.fdopen(fd, "wb") as f:
                for chunk in _chunks(data):
                    f.write(chunk)
                    written += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            tmp = None
            return written
        except OSError as exc:
            if exc.errno in _FULL_ERRNOS:
                raise StorageFull() from exc
            raise
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def size(self, key: str) -> int:
        try:
            return self.path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def delete(self, key: str) -> bool:
        try:
            self.path(key).unlink()
            return True
        except FileNotFoundError:
            return False

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with ``prefix`` (a folder such as ``runs/<id>/``)."""
        path = self.path(prefix, prefix=True)
        if prefix.endswith("/"):
            if not path.is_dir():
                return 0
            count = sum(1 for p in path.rglob("*") if p.is_file())
            shutil.rmtree(path, ignore_errors=True)
            return count
        count = 0
        for candidate in path.parent.glob(path.name + "*") if path.parent.is_dir() else ():
            if candidate.is_dir():
                count += sum(1 for p in candidate.rglob("*") if p.is_file())
                shutil.rmtree(candidate, ignore_errors=True)
            else:
                candidate.unlink(missing_ok=True)
                count += 1
        return count


def delete_all(store: BlobStore, keys: Iterable[str]) -> None:
    """Best-effort clean-up after a commit: keys ending in ``/`` are prefixes. Never raises."""
    for key in keys:
        try:
            store.delete_prefix(key) if key.endswith("/") else store.delete(key)
        except Exception:  # noqa: BLE001 - a leftover blob is harmless; a failed request is not
            pass
