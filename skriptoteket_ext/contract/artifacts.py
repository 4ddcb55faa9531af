"""Artifacts (§7): files a run wrote under ``output/``, each with a stable download id.

Entries arrive as ``{"path": "output/<relative path>", "bytes": n}`` (any ``id`` the runner sent is ignored and
recomputed, so the id rule lives here only). Ids come from the path *relative to* ``output/``.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from .canonical import clean_text, short
from .caps import Caps
from .models import is_int
from .notices import Notices

OUTPUT_PREFIX = "output/"
_NOT_ALNUM = re.compile(r"[^a-z0-9]")


def artifact_id_for(paths: Iterable[str]) -> dict[str, str]:
    """Map each relative path (under output/) to its id: lowercased, non-alphanumerics → "_", clashes get
    "_2", "_3"… in sorted path order, so the runner and the service agree whatever order they listed files in.
    """
    ids: dict[str, str] = {}
    used: set[str] = set()
    next_suffix: dict[str, int] = {}  # keeps many clashes on one id linear
    for path in sorted(set(paths)):
        base = _NOT_ALNUM.sub("_", path.lower())
        candidate = base
        if candidate in used:
            n = next_suffix.get(base, 2)
            while f"{base}_{n}" in used:
                n += 1
            next_suffix[base] = n + 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        ids[path] = candidate
    return ids


def relative_output_path(path: Any) -> str | None:
    """The part after "output/" if ``path`` is a plain relative path inside it, else None."""
    if not isinstance(path, str) or not path.startswith(OUTPUT_PREFIX):
        return None
    rel = path[len(OUTPUT_PREFIX):]
    if not rel or "\\" in rel or "\x00" in rel or clean_text(rel) != rel:
        return None
    if any(part in ("", ".", "..") for part in rel.split("/")):
        return None
    return rel


def normalize_artifacts(raw: Any, caps: Caps, notices: Notices) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        notices.add("envelope", "artifacts is not a list")
        return []
    sizes: dict[str, int] = {}
    for number, entry in enumerate(raw, start=1):
        path = entry.get("path") if isinstance(entry, dict) else None
        rel = relative_output_path(path)
        if rel is None:
            notices.add("artifacts", f"'{short(path)}' is not a file path inside output/")
            continue
        size = entry.get("bytes")
        if not is_int(size) or size < 0:
            notices.add("artifacts", f"'{short(path)}' has no valid size")
            continue
        sizes.setdefault(rel, size)  # a path listed twice is one file
    # Ids first, over every valid path, so the caps below cannot shift anyone's suffix.
    ids = artifact_id_for(sizes)
    artifacts = []
    for rel in sorted(sizes):
        if len(rel.encode("utf-8")) + len(OUTPUT_PREFIX) > caps.artifact_path_bytes:
            notices.add("artifacts", f"'{short(rel)}' has a path longer than {caps.artifact_path_bytes} bytes")
            continue
        artifacts.append({"id": ids[rel], "path": OUTPUT_PREFIX + rel, "bytes": sizes[rel]})
    if len(artifacts) > caps.artifacts_max:
        notices.add("artifacts", f"only the first {caps.artifacts_max} of {len(artifacts)} files are offered")
        artifacts = artifacts[: caps.artifacts_max]
    return artifacts
