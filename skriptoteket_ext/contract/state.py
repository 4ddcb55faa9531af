"""Session state (§5): a small JSON object, canonicalized, cut to ``state_max_bytes`` by whole keys."""

from __future__ import annotations

from typing import Any

from .canonical import JsonLimits, JsonReport, canonical_json, clean_json, clean_text, json_size, short
from .caps import Caps
from .issues import quoted_list
from .notices import Notices


def normalize_state(raw: Any, caps: Caps, notices: Notices) -> dict | None:
    """None stays None (no state). Keys are taken in sorted order; the longest prefix that fits is kept, so
    what survives never depends on key order and a tool can rely on "earlier keys win"."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        notices.add("state", f"state must be an object, not {type(raw).__name__}; it was dropped")
        return None
    limits = JsonLimits(max_depth=caps.json_depth, max_keys=caps.json_keys_max, max_items=caps.json_array_max)
    state: dict[str, Any] = {}
    size = 2  # "{}"
    dropped: list[str] = []
    for key in sorted(k for k in raw if isinstance(k, str)):
        if dropped:  # a prefix: once one key does not fit, no later key is kept
            dropped.append(key)
            continue
        report = JsonReport()
        value = clean_json(raw[key], limits, report, depth=1)
        clean_key = clean_text(key)
        entry = len(canonical_json(clean_key)) + 1 + json_size(value) + (1 if state else 0)
        if size + entry > caps.state_max_bytes:
            dropped.append(key)
            continue
        if report.changed:
            notices.add("state", f"'{short(key)}' shortened (depth, size or non-JSON values)")
        state[clean_key] = value
        size += entry
    if dropped:
        notices.add("state", f"{len(dropped)} keys dropped to fit {caps.state_max_bytes} bytes: "
                    + quoted_list(dropped, 3))
    return state
