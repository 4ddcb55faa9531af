"""Value normalization for forms (§4): the service's authoritative check of what a user submitted.

The same per-kind parsing also checks schema defaults and action prefills, in *strict* mode: those come from
code, so they must already have the JSON type of the kind (no "5" for an integer, no "yes" for a boolean).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from .canonical import canonical_json, clean_text
from .caps import DEFAULT_CAPS, Caps
from .issues import Issue, pointer, quoted_list
from .models import STRING_KINDS, field_label, field_name, file_bounds, is_int, is_number

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off"})
_INT_RE = re.compile(r"[+-]?\d+\Z")
_NUM_RE = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")
_MAX_NUMERIC_CHARS = 100  # int("9" * 5000) raises in Python ≥ 3.11; no real input is this long

Problem = tuple[str, dict[str, Any]]  # (catalog code, params)


def is_blank(field: dict, value: Any, *, settings: bool = False) -> bool:
    """Missing or blank: None, an empty/whitespace string, an empty multi_enum list.

    Settings strings are kept verbatim, so there only "" is blank ("  " may be a deliberate separator).
    """
    if value is None:
        return True
    if isinstance(value, str):
        if settings and field.get("kind") in STRING_KINDS:
            return value == ""
        return not value.strip()
    if isinstance(value, (list, tuple)) and field.get("kind") == "multi_enum":
        return len(value) == 0
    return False


def parse_value(field: dict, value: Any, *, settings: bool = False, strict: bool = False) -> tuple[Any, Problem | None]:
    """Normalize one non-blank value for ``field``; returns (value, None) or (None, problem)."""
    kind = field.get("kind")
    if kind in STRING_KINDS:
        if not isinstance(value, str):
            return None, ("contract.input.text", {})
        text = clean_text(value if settings or strict else value.strip())
        limit = field.get("max_length")
        if is_int(limit) and len(text) > limit:
            return None, ("contract.input.too_long", {"max_length": limit, "length": len(text)})
        return text, None
    if kind == "integer":
        number = _parse_integer(value, strict)
        return _in_bounds(field, number, "contract.input.integer")
    if kind == "number":
        number = _parse_number(value, strict)
        return _in_bounds(field, number, "contract.input.number")
    if kind == "boolean":
        flag = _parse_boolean(value, strict)
        return (None, ("contract.input.boolean", {})) if flag is None else (flag, None)
    if kind == "enum":
        choice = _option(field, value, strict)
        return (None, ("contract.input.enum", {})) if choice is None else (choice, None)
    if kind == "multi_enum":
        if not isinstance(value, (list, tuple)):
            return None, ("contract.input.multi_enum_list", {})
        chosen: list[str] = []
        wrong = []
        for item in value:
            choice = _option(field, item, strict)
            if choice is None:
                wrong.append(item if isinstance(item, str) else type(item).__name__)
            elif choice not in chosen:  # de-duplicated, first occurrence wins
                chosen.append(choice)
        if wrong:
            return None, ("contract.input.multi_enum", {"values": quoted_list(wrong, 3)})
        return chosen, None
    return None, ("contract.input.kind", {})


def _parse_integer(value: Any, strict: bool) -> int | None:
    if is_int(value):
        return value
    if isinstance(value, str) and not strict:
        text = value.strip()
        if len(text) <= _MAX_NUMERIC_CHARS and _INT_RE.match(text):
            return int(text)
    return None


def _parse_number(value: Any, strict: bool) -> int | float | None:
    if is_number(value):
        return value
    if isinstance(value, str) and not strict:
        text = value.strip()
        if len(text) <= _MAX_NUMERIC_CHARS and _NUM_RE.match(text):
            number = int(text) if _INT_RE.match(text) else float(text)
            return number if is_number(number) else None  # "1e999" parses to inf
    return None


def _parse_boolean(value: Any, strict: bool) -> bool | None:
    if isinstance(value, bool):
        return value
    if strict:
        return None
    if isinstance(value, str):
        word = value.strip().lower()
        return True if word in TRUE_WORDS else False if word in FALSE_WORDS else None
    if is_int(value) and value in (0, 1):
        return bool(value)
    return None


def _option(field: dict, value: Any, strict: bool) -> str | None:
    if not isinstance(value, str):
        return None
    value = value if strict else value.strip()
    for option in field.get("options") or ():
        if isinstance(option, dict) and option.get("value") == value:
            return value
    return None


def _in_bounds(field: dict, number: Any, wrong_type: str) -> tuple[Any, Problem | None]:
    if number is None:
        return None, (wrong_type, {})
    low, high = field.get("min"), field.get("max")
    if is_number(low) and number < low:
        return None, ("contract.input.too_small", {"min": low})
    if is_number(high) and number > high:
        return None, ("contract.input.too_large", {"max": high})
    return number, None


def normalize_inputs(
    fields: list[dict],
    values: Any,
    file_count: int | None,
    *,
    settings: bool = False,
    caps: Caps = DEFAULT_CAPS,
) -> tuple[dict[str, Any], list[Issue]]:
    """Check submitted ``values`` (and the number of uploaded files) against validated ``fields``.

    Returns the normalized values, in field order and without blank optional fields, and the errors, each with
    a JSON pointer to the value (``/<name>``) or ``""`` for the whole submission. Any error rejects the run.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        return {}, [Issue("", "contract.input.not_object")]
    by_name = {field_name(f): f for f in fields if isinstance(f, dict) and field_name(f)}
    errors: list[Issue] = []
    unknown = sorted(str(k) for k in values if k not in by_name)
    if unknown:
        errors.append(Issue("", "contract.input.unknown", {"names": quoted_list(unknown)}))
    normalized: dict[str, Any] = {}
    file_field = None
    for name, field in by_name.items():
        value = values.get(name)
        if field.get("kind") == "file":
            file_field = field
            if not is_blank(field, value):
                errors.append(Issue(pointer(name), "contract.input.file_value", {"label": field_label(field)}))
            continue
        if is_blank(field, value, settings=settings):
            if field.get("required") is True:
                errors.append(Issue(pointer(name), "contract.input.required", {"label": field_label(field)}))
            continue
        parsed, problem = parse_value(field, value, settings=settings)
        if problem is None:
            normalized[name] = parsed
        else:
            code, params = problem
            errors.append(Issue(pointer(name), code, {"label": field_label(field), **params}))
    errors.extend(check_file_count(file_field, file_count or 0, caps))
    return normalized, errors


def check_file_count(file_field: dict | None, count: int, caps: Caps = DEFAULT_CAPS) -> list[Issue]:
    if file_field is None:
        return [Issue("", "contract.input.files_unexpected", {"count": count})] if count else []
    low, high = file_bounds(file_field, caps.upload_max_files)
    params = {"label": field_label(file_field), "count": count}
    if count < low:
        return [Issue(pointer(field_name(file_field)), "contract.input.files_too_few", {**params, "min": low})]
    if count > high:
        return [Issue(pointer(field_name(file_field)), "contract.input.files_too_many", {**params, "max": high})]
    return []


def validate_action_input(
    offered_actions: list[dict] | None, action_id: Any, values: Any, *, caps: Caps = DEFAULT_CAPS
) -> tuple[dict[str, Any], list[Issue]]:
    """Check a follow-up action against the ``next_actions`` of the session's last run (normalized payload).

    An action that was not offered is rejected outright; otherwise its input is checked exactly like
    ``input_schema`` values. Actions never take files.
    """
    for action in offered_actions or ():
        if isinstance(action, dict) and isinstance(action_id, str) and action.get("action_id") == action_id:
            fields = [f for f in action.get("fields") or () if isinstance(f, dict) and f.get("kind") != "file"]
            return normalize_inputs(fields, values, 0, caps=caps)
    return {}, [Issue("/action_id", "contract.action.not_offered")]


def settings_schema_hash(schema: list | None) -> str:
    """Stable key for saved settings (§5): sha256 of the schema's canonical JSON, so key order is irrelevant."""
    return hashlib.sha256(canonical_json(schema)).hexdigest()
