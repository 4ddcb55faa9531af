"""Validation of ``input_schema`` and ``settings_schema`` (§4), for authors: every issue, with a JSON pointer.

The same per-field check decides which fields of a tool's ``next_actions`` survive normalization, so an
action form obeys exactly the rules of an input form (minus the file kind).
"""

from __future__ import annotations

import re
from typing import Any

from .canonical import short
from .caps import DEFAULT_CAPS, Caps
from .inputs import parse_value
from .issues import Issue, pointer
from .models import (
    ALL_KIND_KEYS,
    CHOICE_KINDS,
    FIELD_KINDS,
    FORM_KINDS,
    KIND_KEYS,
    NUMBER_KINDS,
    STRING_KINDS,
    field_label,
    field_name,
    is_int,
    is_number,
)

# ".pdf", ".tar.gz", "application/pdf", "image/*"
_ACCEPT_RE = re.compile(r"(\.[A-Za-z0-9][A-Za-z0-9._+-]*|[A-Za-z0-9][\w.+-]*/(\*|[\w.+-]+))\Z")


def validate_input_schema(schema: Any, caps: Caps = DEFAULT_CAPS) -> list[Issue]:
    return check_fields(schema, allow_file=True, caps=caps)


def validate_settings_schema(schema: Any, caps: Caps = DEFAULT_CAPS) -> list[Issue]:
    """``None`` means the tool has no settings."""
    return [] if schema is None else check_fields(schema, allow_file=False, caps=caps)


def check_fields(fields: Any, *, allow_file: bool, caps: Caps = DEFAULT_CAPS, at: tuple = ()) -> list[Issue]:
    if not isinstance(fields, list):
        return [Issue(pointer(*at), "contract.schema.not_list")]
    issues: list[Issue] = []
    first_index: dict[str, int] = {}
    file_index = None
    for i, field in enumerate(fields):
        issues.extend(check_field(field, (*at, i), allow_file=allow_file, caps=caps))
        if not isinstance(field, dict):
            continue
        name = field_name(field)
        if name in first_index:
            issues.append(Issue(pointer(*at, i, "name"), "contract.field.name_duplicate", {"name": name}))
        elif name:
            first_index[name] = i
        if allow_file and field.get("kind") == "file":
            if file_index is not None:
                issues.append(Issue(pointer(*at, i, "kind"), "contract.field.file_multiple"))
            file_index = i
    return issues


def check_field(field: Any, at: tuple, *, allow_file: bool, caps: Caps = DEFAULT_CAPS) -> list[Issue]:
    """Issues of one field; an empty list means the field is usable as written."""
    if not isinstance(field, dict):
        return [Issue(pointer(*at), "contract.field.not_object")]
    issues: list[Issue] = []

    def add(where: str | int | tuple, code: str, /, **params: Any) -> None:
        keys = where if isinstance(where, tuple) else (where,)
        issues.append(Issue(pointer(*at, *keys), code, params))

    if not field_name(field):
        add("name", "contract.field.name_missing")
    label = field.get("label")
    if not (isinstance(label, str) and label.strip()):
        add("label", "contract.field.label_missing")
    kind = field.get("kind")
    if kind == "file" and not allow_file:
        add("kind", "contract.field.file_not_allowed")
        return issues
    if kind not in FIELD_KINDS:
        kinds = FIELD_KINDS if allow_file else FORM_KINDS
        add("kind", "contract.field.kind_invalid", kind=short(kind), kinds=", ".join(kinds))
        return issues

    for key in sorted(ALL_KIND_KEYS - set(KIND_KEYS[kind]) | ({"default"} if kind == "file" else set())):
        if key in field:
            add(key, "contract.field.key_not_allowed", key=key, kind=kind)
    if "required" in field and not isinstance(field["required"], bool):
        add("required", "contract.field.required_invalid")
    for key in ("help", "placeholder"):
        if field.get(key) is not None and not isinstance(field[key], str):
            add(key, "contract.field.text_invalid", key=key)

    before = len(issues)
    if kind in STRING_KINDS:
        _check_max_length(field, add)
    elif kind in NUMBER_KINDS:
        _check_bounds(field, kind, add)
    elif kind in CHOICE_KINDS:
        _check_options(field, kind, caps, add)
    else:
        _check_file(field, caps, add)
    # A default is only judged against a field whose own rules hold.
    if len(issues) == before and field.get("default") is not None and kind != "file":
        _, problem = parse_value(field, field["default"], strict=True)
        if problem is not None:
            add("default", problem[0], label=field_label(field) or "?", **problem[1])
    return issues


def _check_max_length(field: dict, add) -> None:
    limit = field.get("max_length")
    if limit is not None and not (is_int(limit) and limit >= 1):
        add("max_length", "contract.field.max_length_invalid")


def _check_bounds(field: dict, kind: str, add) -> None:
    valid = is_int if kind == "integer" else is_number
    code = "contract.field.bound_integer" if kind == "integer" else "contract.field.bound_number"
    low, high = field.get("min"), field.get("max")
    for key, value in (("min", low), ("max", high)):
        if value is not None and not valid(value):
            add(key, code, key=key)
    if valid(low) and valid(high) and low > high:
        add("max", "contract.field.min_gt_max", min=low, max=high)


def _check_options(field: dict, kind: str, caps: Caps, add) -> None:
    options = field.get("options")
    if not isinstance(options, list) or not options:
        add("options", "contract.field.options_missing")
        return
    if len(options) > caps.options_max(kind):
        add("options", "contract.field.options_too_many", max=caps.options_max(kind), count=len(options))
    seen: set[str] = set()
    for j, option in enumerate(options):
        if not isinstance(option, dict):
            add(("options", j), "contract.option.not_object")
            continue
        value = option.get("value")
        if not (isinstance(value, str) and value.strip() and value == value.strip()):
            add(("options", j, "value"), "contract.option.value_invalid")
        elif value in seen:
            add(("options", j, "value"), "contract.option.value_duplicate", value=short(value))
        else:
            seen.add(value)
        label = option.get("label")
        if not (isinstance(label, str) and label.strip()):
            add(("options", j, "label"), "contract.option.label_missing")


def _check_file(field: dict, caps: Caps, add) -> None:
    accept = field.get("accept")
    if accept is not None:
        if not isinstance(accept, list):
            add("accept", "contract.field.accept_invalid", value=short(accept))
        else:
            for j, item in enumerate(accept):
                if not (isinstance(item, str) and _ACCEPT_RE.match(item)):
                    add(("accept", j), "contract.field.accept_invalid", value=short(item))
    low, high = field.get("min"), field.get("max")
    if low is not None and not (is_int(low) and low >= 0):
        add("min", "contract.field.file_min_invalid")
        low = None
    if high is not None:
        if not (is_int(high) and high >= 1):
            add("max", "contract.field.file_max_invalid")
            high = None
        elif high > caps.upload_max_files:
            add("max", "contract.field.file_max_over_limit", limit=caps.upload_max_files)
    if low is not None:
        ceiling = high if high is not None else caps.upload_max_files
        if low > ceiling:
            add("min", "contract.field.file_min_gt_max", min=low, max=ceiling)
