"""Collect the files a run wrote under output/ (contract-v2 §7): regular files only, never followed links."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from pathlib import Path

_NOT_ID = re.compile(r"[^a-z0-9]")


def artifact_id(relpath: str, taken: set[str]) -> str:
    """Relative path lowercased, non-alphanumerics -> "_", de-duplicated with _2, _3, ... (adds to ``taken``)."""
    base = _NOT_ID.sub("_", relpath.lower())
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}_{n}"
    taken.add(candidate)
    return candidate


def regular_files(output_dir: Path) -> list[str]:
    """Relative paths of the regular files under ``output_dir``, sorted (so ids are stable).

    os.walk does not descend into symlinked dirs; lstat drops symlinks, fifos, sockets and devices.
    """
    found = []
    for dirpath, _dirnames, filenames in os.walk(output_dir, followlinks=False):
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                if stat.S_ISREG(os.lstat(full).st_mode):
                    found.append(os.path.relpath(full, output_dir))
            except OSError:
                continue
    return sorted(rel for rel in found if not rel.startswith(".."))


def collect(output_dir: Path, dest_dir: Path | None) -> tuple[list[dict], dict[str, Path]]:
    """Copy the artifacts to ``dest_dir`` (same relative paths); return the manifest and id -> copied file.

    Without ``dest_dir`` a temporary directory is made, only if there is something to copy (the caller owns it).
    """
    manifest, files, taken = [], {}, set()
    for rel in regular_files(output_dir):
        if dest_dir is None:
            dest_dir = Path(tempfile.mkdtemp(prefix="skr-artifacts-"))
        target = dest_dir / rel
        try:
            # O_NOFOLLOW + fstat: a file swapped for a symlink or fifo after the walk is still refused.
            fd = os.open(output_dir / rel, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        with os.fdopen(fd, "rb") as src:
            if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        aid = artifact_id(rel, taken)
        manifest.append({"id": aid, "path": rel, "bytes": target.stat().st_size})
        files[aid] = target
    return manifest, files


def tree_size(path: Path) -> int:
    """Bytes in regular files under ``path`` (apparent size, so sparse files count in full)."""
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path, followlinks=False):
        for name in filenames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total
