"""``next_actions`` (§4): follow-up forms a tool offers; their fields obey the input-schema rules minus files."""

from __future__ import annotations

from typing import Any

from .canonical import clean_text, short
from .caps import Caps
from .inputs import parse_value
from .models import COMMON_KEYS, KIND_KEYS, field_name
from .notices import Notices
from .schema import check_field

ACTION_ID_MAX = 64


def normalize_actions(raw: Any, caps: Caps, notices: Notices) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        notices.add("envelope", "next_actions is not a list")
        return []
    actions: list[dict] = []
    seen: set[str] = set()
    for number, item in enumerate(raw, start=1):
        if len(actions) == caps.next_actions_max:
            notices.add("actions_cap", f"only the first {caps.next_actions_max} are offered")
            break
        action = _action(item, number, seen, caps, notices)
        if action is not None:
            seen.add(action["action_id"])
            actions.append(action)
    return actions


def _action(raw: Any, number: int, seen: set[str], caps: Caps, notices: Notices) -> dict | None:
    if not isinstance(raw, dict):
        notices.add("actions", f"action {number} is not an object")
        return None
    action_id = raw.get("action_id")
    if not isinstance(action_id, str) or not action_id.strip() or len(action_id) > ACTION_ID_MAX:
        notices.add("actions", f"action {number} needs an action_id of 1–{ACTION_ID_MAX} characters")
        return None
    action_id = clean_text(action_id)
    if action_id in seen:
        notices.add("actions", f"action '{action_id}' is offered twice")
        return None
    label = raw.get("label")
    if not isinstance(label, str) or not label.strip():
        notices.add("actions", f"action '{action_id}' has no label")
        return None
    if raw.get("kind", "form") != "form":
        notices.add("actions", f"action '{action_id}' has unknown kind '{short(raw.get('kind'))}'")
        return None
    fields = raw.get("fields")
    if fields is None:
        fields = []
    if not isinstance(fields, list):
        notices.add("actions", f"action '{action_id}': fields is not a list")
        return None
    fields = _fields(fields, action_id, caps, notices)
    prefill = _prefill(raw.get("prefill"), fields, action_id, notices)
    return {"action_id": action_id, "label": clean_text(label.strip()), "kind": "form", "fields": fields,
            "prefill": prefill}


def _fields(raw: list, action_id: str, caps: Caps, notices: Notices) -> list[dict]:
    fields: list[dict] = []
    names: set[str] = set()
    for number, field in enumerate(raw, start=1):
        field = _cap_options(field, action_id, caps, notices)
        issues = check_field(field, (), allow_file=False, caps=caps)
        if issues:
            notices.add("fields", f"action '{action_id}', field {number}: {issues[0].message}")
            continue
        name = field_name(field)
        if name in names:
            notices.add("fields", f"action '{action_id}', field {number}: the name '{short(name)}' is already used")
            continue
        names.add(name)
        fields.append(clean_field(field))
    if len(fields) > caps.action_fields_max:
        notices.add("fields_cap", f"action '{action_id}': only the first {caps.action_fields_max} fields kept")
        fields = fields[: caps.action_fields_max]
    return fields


def _cap_options(field: Any, action_id: str, caps: Caps, notices: Notices) -> Any:
    """Too many options is a cap (cut, with a notice), not a malformed field."""
    if not isinstance(field, dict) or not isinstance(field.get("options"), list):
        return field
    limit = caps.options_max(field.get("kind", ""))
    if len(field["options"]) <= limit:
        return field
    notices.add("fields_cap", f"action '{action_id}', field '{short(field_name(field))}': only the first "
                f"{limit} options kept")
    return {**field, "options": field["options"][:limit]}


def clean_field(field: dict) -> dict:
    """A checked field reduced to the keys its kind uses, names and labels trimmed."""
    kind = field["kind"]
    clean: dict[str, Any] = {"name": clean_text(field_name(field)), "label": clean_text(field["label"].strip()),
                             "kind": kind}
    for key in COMMON_KEYS + KIND_KEYS[kind]:
        value = field.get(key)
        if value is None:
            continue
        if key == "options":
            value = [{"value": clean_text(o["value"]), "label": clean_text(o["label"].strip())} for o in value]
        elif key == "default":
            value = parse_value(field, value, strict=True)[0]
        elif isinstance(value, str):
            value = clean_text(value)
        clean[key] = value
    return clean


def _prefill(raw: Any, fields: list[dict], action_id: str, notices: Notices) -> dict:
    """Initial values only; entries for unknown fields or of the wrong type are dropped (one notice in all)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        notices.add("prefill", f"{action_id} (prefill is not an object)")
        return {}
    by_name = {f["name"]: f for f in fields}
    prefill: dict[str, Any] = {}
    for name in sorted(raw, key=str):
        field = by_name.get(name) if isinstance(name, str) else None
        if field is None:
            notices.add("prefill", f"{action_id}.{short(str(name))} (unknown field)")
            continue
        if raw[name] is None:
            continue
        value, problem = parse_value(field, raw[name], strict=True)
        if problem is not None:
            notices.add("prefill", f"{action_id}.{short(name)} (wrong type or value)")
            continue
        prefill[clean_text(name)] = value
    return prefill
