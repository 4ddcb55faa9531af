"""One normalizer per output kind (§3, with the caps of §6).

A handler returns the normalized output, or a string saying why the output is malformed (the caller drops it
with that reason), or None when it dropped the output itself for a cap and already said so.
"""

from __future__ import annotations

from typing import Any, Callable

from .canonical import JsonLimits, JsonReport, clean_json, clean_text, json_size, short, truncate_utf8
from .caps import Caps
from .models import NOTICE_LEVELS
from .notices import Notices
from .vega import check_vega_lite

Result = dict | str | None


def normalize_output(raw: Any, number: int, caps: Caps, notices: Notices) -> dict | None:
    """``number`` is the output's 1-based position in what the tool returned, for notices."""
    if not isinstance(raw, dict):
        notices.add("outputs", f"output {number} is not an object")
        return None
    kind = raw.get("kind")
    handler = HANDLERS.get(kind) if isinstance(kind, str) else None
    if handler is None:
        notices.add("outputs", f"output {number} has unknown kind '{short(kind)}'")
        return None
    result = handler(raw, number, caps, notices)
    if isinstance(result, str):
        notices.add("outputs", f"output {number} ({kind}): {result}")
        return None
    return result


def _text(raw: dict, key: str, number: int, max_bytes: int, category: str, notices: Notices) -> str | None:
    """A required non-blank text field, cut to ``max_bytes``; None if missing or blank."""
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        return None
    value, cut = truncate_utf8(value, max_bytes)
    if cut:
        notices.add(category, f"output {number} cut to {max_bytes} bytes")
    return value


def _title(raw: dict) -> str | None | bool:
    """Optional title: text (trimmed) or None; False if it is present but not text."""
    title = raw.get("title")
    if title is None:
        return None
    if not isinstance(title, str):
        return False
    return clean_text(title.strip()) or None


def notice(raw: dict, number: int, caps: Caps, notices: Notices) -> Result:
    level = raw.get("level")
    if level not in NOTICE_LEVELS:
        return f"level '{short(level)}' is not one of info, warning, error"
    message = raw.get("message")
    if not isinstance(message, str) or not message.strip():
        return "message is empty"
    message, cut = truncate_utf8(message.strip(), caps.notice_message_bytes)
    if cut:
        notices.add("notice_cap", f"output {number} cut to {caps.notice_message_bytes} bytes")
    return {"kind": "notice", "level": level, "message": message}


def markdown(raw: dict, number: int, caps: Caps, notices: Notices) -> Result:
    # Kept as text: sanitizing is the renderer's job, where the Markdown becomes HTML.
    text = _text(raw, "markdown", number, caps.markdown_bytes, "markdown_cap", notices)
    return "markdown is empty" if text is None else {"kind": "markdown", "markdown": text}


def html_sandboxed(raw: dict, number: int, caps: Caps, notices: Notices) -> Result:
    text = _text(raw, "html", number, caps.html_bytes, "html_cap", notices)
    return "html is empty" if text is None else {"kind": "html_sandboxed", "html": text}


def json_output(raw: dict, number: int, caps: Caps, notices: Notices) -> Result:
    if "value" not in raw:
        return "value is missing"
    title = _title(raw)
    if title is False:
        return "title is not text"
    report = JsonReport()
    limits = JsonLimits(max_depth=caps.json_depth, max_keys=caps.json_keys_max, max_items=caps.json_array_max)
    value = clean_json(raw["value"], limits, report)
    if report.too_deep or report.keys_cut or report.items_cut:
        notices.add("json_cap", f"output {number} shortened (depth {caps.json_depth}, {caps.json_keys_max} keys, "
                    f"{caps.json_array_max} items)")
    size = json_size(value)
    if size > caps.json_bytes:
        notices.add("json_cap", f"output {number} dropped ({size} bytes, limit {caps.json_bytes})")
        return None
    return {"kind": "json", "title": title, "value": value}


def table(raw: dict, number: int, caps: Caps, notices: Notices) -> Result:
    title = _title(raw)
    if title is False:
        return "title is not text"
    columns = _columns(raw.get("columns"), number, caps, notices)
    if not columns:
        return "no valid columns"
    rows = raw.get("rows")
    if rows is None:
        rows = []
    if not isinstance(rows, list):
        return "rows is not a list"
    objects = [row for row in rows if isinstance(row, dict)]
    if len(objects) < len(rows):
        notices.add("table", f"output {number}: {len(rows) - len(objects)} rows that are not objects dropped")
    if len(objects) > caps.table_rows_max:
        notices.add("table_cap", f"output {number}: only the first {caps.table_rows_max} of {len(objects)} rows kept")
        objects = objects[: caps.table_rows_max]
    keys = [column["key"] for column in columns]
    counts = {"nested": 0, "cut": 0}
    cells = [[_cell(row.get(key), caps.table_cell_bytes, counts) for key in keys] for row in objects]
    if counts["nested"]:
        notices.add("table", f"output {number}: {counts['nested']} nested cell values dropped")
    if counts["cut"]:
        notices.add("table_cap", f"output {number}: {counts['cut']} cells cut to {caps.table_cell_bytes} bytes")
    return {"kind": "table", "title": title, "columns": columns, "rows": cells}


def _columns(raw: Any, number: int, caps: Caps, notices: Notices) -> list[dict]:
    if not isinstance(raw, list):
        return []
    columns: list[dict] = []
    seen: set[str] = set()
    for i, column in enumerate(raw, start=1):
        key = column.get("key") if isinstance(column, dict) else None
        if not isinstance(key, str) or not key:
            notices.add("table", f"output {number}: column {i} has no key")
            continue
        if key in seen:
            notices.add("table", f"output {number}: duplicate column '{short(key)}'")
            continue
        seen.add(key)
        label = column.get("label")
        label = label.strip() if isinstance(label, str) else ""
        columns.append({"key": clean_text(key), "label": clean_text(label) or clean_text(key)})
    if len(columns) > caps.table_columns_max:
        notices.add("table_cap", f"output {number}: only the first {caps.table_columns_max} of {len(columns)} "
                    "columns kept")
        columns = columns[: caps.table_columns_max]
    return columns


def _cell(value: Any, max_bytes: int, counts: dict[str, int]) -> Any:
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        value, cut = truncate_utf8(value, max_bytes)
        counts["cut"] += cut
        return value
    # NaN and ±inf (pandas' missing values) become empty cells; so do integers no JSON reader accepts
    if isinstance(value, int):
        return value if value.bit_length() <= 1000 else None
    if isinstance(value, float):
        return value if value - value == 0 else None
    counts["nested"] += 1
    return None


def vega_lite(raw: dict, number: int, caps: Caps, notices: Notices) -> Result:
    spec, reason = check_vega_lite(raw.get("spec"), caps)
    if reason is not None:
        notices.add("vega_lite", f"output {number}: {reason}")
        return None
    return {"kind": "vega_lite", "spec": spec}


HANDLERS: dict[str, Callable[[dict, int, Caps, Notices], Result]] = {
    "notice": notice,
    "markdown": markdown,
    "table": table,
    "json": json_output,
    "html_sandboxed": html_sandboxed,
    "vega_lite": vega_lite,
}
