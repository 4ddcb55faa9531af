"""Unified diffs of one text field, and a strict applier that proves a diff applies cleanly.

``make_diff`` writes a standard unified diff (``--- a/<name>``, ``+++ b/<name>``, ``@@ -l,n +l,n @@``, with
``\\ No newline at end of file`` where a text lacks its final newline, so *any* text round-trips).
``apply_diff`` applies one without fuzz: every context and removed line must be exactly where the hunk says.
The service offers an edit only after ``apply_diff(current, diff) == proposed``.
"""

from __future__ import annotations

import difflib
import re

NO_NEWLINE = "\\ No newline at end of file\n"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class DiffError(ValueError):
    pass


def _emit(prefix: str, line: str, out: list[str]) -> None:
    if line.endswith("\n"):
        out.append(prefix + line)
    else:
        out.append(prefix + line + "\n")
        out.append(NO_NEWLINE)


def _range(start: int, length: int) -> str:
    # unified diff convention: an empty range names the line before it
    if length == 0:
        return f"{start},0"
    return f"{start + 1}" if length == 1 else f"{start + 1},{length}"


def make_diff(old: str, new: str, name: str, context: int = 3) -> str:
    """The unified diff turning ``old`` into ``new`` ('' when they are equal)."""
    if old == new:
        return ""
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    out = [f"--- a/{name}\n", f"+++ b/{name}\n"]
    for group in difflib.SequenceMatcher(None, a, b, autojunk=False).get_grouped_opcodes(context):
        i1, i2, j1, j2 = group[0][1], group[-1][2], group[0][3], group[-1][4]
        out.append(f"@@ -{_range(i1, i2 - i1)} +{_range(j1, j2 - j1)} @@\n")
        for tag, x1, x2, y1, y2 in group:
            if tag == "equal":
                for line in a[x1:x2]:
                    _emit(" ", line, out)
                continue
            for line in a[x1:x2]:
                _emit("-", line, out)
            for line in b[y1:y2]:
                _emit("+", line, out)
    return "".join(out)


def apply_diff(old: str, diff: str) -> str:
    """Apply a unified diff to ``old`` exactly (no fuzz, no offset). ``DiffError`` if it does not apply."""
    if not diff:
        return old
    source = old.splitlines(keepends=True)
    lines = diff.splitlines(keepends=True)
    i = 0
    while i < len(lines) and not lines[i].startswith("@@"):
        i += 1
    result: list[str] = []
    pos = 0  # next line of `source` not yet copied
    while i < len(lines):
        m = _HUNK.match(lines[i])
        if not m:
            raise DiffError(f"expected a hunk header at diff line {i + 1}")
        old_start, old_len = int(m.group(1)), int(m.group(2) if m.group(2) is not None else 1)
        start = old_start - 1 if old_len else old_start
        if start < pos or start > len(source):
            raise DiffError("hunks out of order or beyond the text")
        result.extend(source[pos:start])
        pos = start
        i += 1
        seen_old = 0
        while i < len(lines) and not lines[i].startswith("@@"):
            line = lines[i]
            tag, body = line[:1], line[1:]
            no_newline = i + 1 < len(lines) and lines[i + 1] == NO_NEWLINE
            if no_newline:
                body = body[:-1] if body.endswith("\n") else body
            if tag in (" ", "-"):
                if pos >= len(source) or source[pos] != body:
                    raise DiffError(f"the text does not match the diff at line {pos + 1}")
                pos += 1
                seen_old += 1
                if tag == " ":
                    result.append(body)
            elif tag == "+":
                result.append(body)
            else:
                raise DiffError(f"unexpected diff line {i + 1}")
            i += 2 if no_newline else 1
        if seen_old != old_len:
            raise DiffError("a hunk's length does not match its header")
    result.extend(source[pos:])
    return "".join(result)
