"""System notices: what normalization dropped or cut, said once per category (§2, §6).

They are English by decision: the spec fixes the "System notice:" prefix, and the normalized payload is stored
and replayed as-is, so its text cannot follow each viewer's language. Each notice names at most 3 examples and
"+N more", so notices stay small whatever the tool returned.
"""

from __future__ import annotations

from .models import SYSTEM_NOTICE_PREFIX

# Category → summary. The order here is the order notices appear in.
CATEGORIES = {
    "envelope": "the runner's result was malformed",
    "outputs": "outputs were dropped",
    "outputs_cap": "too many outputs; the rest were dropped",
    "notice_cap": "notice text was too long and was shortened",
    "markdown_cap": "Markdown text was too long and was shortened",
    "html_cap": "HTML was too long and was shortened",
    "table": "parts of tables were dropped",
    "table_cap": "tables were too large and were shortened",
    "json_cap": "JSON values were too large and were shortened or dropped",
    "vega_lite": "charts were dropped",
    "actions": "actions were dropped",
    "actions_cap": "too many actions; the rest were dropped",
    "fields": "action form fields were dropped",
    "fields_cap": "action forms were too large and were shortened",
    "prefill": "prefilled values were dropped",
    "state": "state values were dropped",
    "artifacts": "files were not offered for download",
    "error_summary": "the error message was too long and was shortened",
    "payload": "the result was too large to show in full",
}
EXAMPLES = 3
DETAIL_CHARS = 200  # details may quote tool text (labels, ids); a notice must stay small regardless


class Notices:
    def __init__(self) -> None:
        self._details: dict[str, list[str]] = {}

    def add(self, category: str, detail: str | None = None) -> None:
        details = self._details.setdefault(category, [])
        if detail is not None:
            details.append(detail if len(detail) <= DETAIL_CHARS else detail[: DETAIL_CHARS - 1] + "…")

    def __contains__(self, category: str) -> bool:
        return category in self._details

    def outputs(self) -> list[dict]:
        return [system_notice(cat, self._details[cat]) for cat in CATEGORIES if cat in self._details]


def system_notice(category: str, details: list[str]) -> dict:
    text = SYSTEM_NOTICE_PREFIX + CATEGORIES[category]
    if details:
        text += ": " + "; ".join(details[:EXAMPLES])
        if len(details) > EXAMPLES:
            text += f" (+{len(details) - EXAMPLES} more)"
    return {"kind": "notice", "level": "warning", "message": text + ".", "system": True}

