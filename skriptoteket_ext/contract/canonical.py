"""Canonical JSON and the small text helpers every rule uses.

Canonical JSON sorts *every* object's keys: that is what makes the payload byte-identical whatever key order the
tool or runner produced. Nothing is lost by it, because everything whose order matters is a list in the
normalized payload (outputs, columns, table rows, options, fields, actions, artifacts); objects are only ever
looked up by key. Output is compact and UTF-8 (not ASCII-escaped), so byte caps measure what is stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

_encoder = json.JSONEncoder(sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))

ELLIPSIS = "…"  # marks truncated text; counted inside the byte cap


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8. ``obj`` must already be clean JSON (see ``clean_json``)."""
    return _encoder.encode(obj).encode("utf-8")


def json_size(obj: Any) -> int:
    return len(canonical_json(obj))


def clean_text(text: str) -> str:
    """Replace lone surrogates (possible after json.loads of "\\ud800"), which UTF-8 cannot encode."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
    """Cut ``text`` to at most ``max_bytes`` UTF-8 bytes on a character boundary, ending in an ellipsis."""
    text = clean_text(text)
    if len(text) * 4 <= max_bytes:  # cheap: no character is longer than 4 bytes
        return text, False
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text, False
    room = max(0, max_bytes - len(ELLIPSIS.encode("utf-8")))
    cut = data[:room].decode("utf-8", "ignore")
    return (cut + ELLIPSIS if max_bytes >= 3 else cut), True


def short(value: Any, limit: int = 40) -> str:
    """A tool-provided value, bounded, for quoting inside a system notice."""
    text = clean_text(value) if isinstance(value, str) else type(value).__name__
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


@dataclass
class JsonLimits:
    max_depth: int
    max_keys: int | None = None
    max_items: int | None = None


@dataclass
class JsonReport:
    """What ``clean_json`` had to change, so the caller can say so in one notice."""

    too_deep: int = 0
    keys_cut: int = 0
    items_cut: int = 0
    invalid: int = 0  # NaN/inf, non-JSON types, non-string keys, absurd integers

    @property
    def changed(self) -> bool:
        return bool(self.too_deep or self.keys_cut or self.items_cut or self.invalid)


def clean_json(value: Any, limits: JsonLimits, report: JsonReport, depth: int = 0) -> Any:
    """Copy of ``value`` that is valid JSON within ``limits``; whatever cannot be kept becomes ``null``.

    Containers nested deeper than ``max_depth`` become null; objects keep their first ``max_keys`` keys in sorted
    order (so the choice does not depend on key order); arrays keep their first ``max_items`` items.
    """
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, int):
        if value.bit_length() > 1000:  # beyond what any JSON reader accepts as a number
            report.invalid += 1
            return None
        return value
    if isinstance(value, float):
        if value - value == 0:
            return value
        report.invalid += 1
        return None
    if isinstance(value, (list, tuple, dict)):
        if depth >= limits.max_depth:
            report.too_deep += 1
            return None
        if isinstance(value, dict):
            keys = [k for k in value if isinstance(k, str)]
            report.invalid += len(value) - len(keys)
            keys.sort()
            if limits.max_keys is not None and len(keys) > limits.max_keys:
                report.keys_cut += len(keys) - limits.max_keys
                keys = keys[: limits.max_keys]
            return {clean_text(k): clean_json(value[k], limits, report, depth + 1) for k in keys}
        items = value
        if limits.max_items is not None and len(items) > limits.max_items:
            report.items_cut += len(items) - limits.max_items
            items = items[: limits.max_items]
        return [clean_json(v, limits, report, depth + 1) for v in items]
    report.invalid += 1
    return None
