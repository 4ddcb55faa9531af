"""Names of the contract's kinds and the shapes of the normalized payload (§2–§5, §7).

The payload is plain JSON (dicts and lists), so renderers in other processes can read it without this package;
the TypedDicts below document it for readers and type checkers only.
"""

from __future__ import annotations

from typing import Any, Literal, TypedDict

CONTRACT_VERSION = 2
STATUSES = ("succeeded", "failed", "timed_out")
CONTRACT_VIOLATION = "Execution failed (runner contract violation)."

# §4 field kinds; `file` only in input_schema
FIELD_KINDS = ("string", "text", "integer", "number", "boolean", "enum", "multi_enum", "file")
FORM_KINDS = FIELD_KINDS[:-1]
STRING_KINDS = frozenset({"string", "text"})
NUMBER_KINDS = frozenset({"integer", "number"})
CHOICE_KINDS = frozenset({"enum", "multi_enum"})

# Optional keys every field may carry, and the extra ones that only make sense for some kinds.
COMMON_KEYS = ("required", "default", "help", "placeholder")
KIND_KEYS: dict[str, tuple[str, ...]] = {
    "string": ("max_length",),
    "text": ("max_length",),
    "integer": ("min", "max"),
    "number": ("min", "max"),
    "boolean": (),
    "enum": ("options",),
    "multi_enum": ("options",),
    "file": ("accept", "min", "max"),
}
# Keys known for some kind; a known key on the wrong kind is an author mistake (e.g. `min` on a string).
ALL_KIND_KEYS = frozenset(k for keys in KIND_KEYS.values() for k in keys)

OUTPUT_KINDS = ("notice", "markdown", "table", "json", "html_sandboxed", "vega_lite")
NOTICE_LEVELS = ("info", "warning", "error")
SYSTEM_NOTICE_PREFIX = "System notice: "

Scalar = str | int | float | bool | None


class Option(TypedDict):
    value: str
    label: str


class Field(TypedDict, total=False):
    name: str  # always present
    label: str  # always present
    kind: str  # always present
    required: bool
    default: Any
    help: str
    placeholder: str
    min: int | float
    max: int | float
    max_length: int
    options: list[Option]
    accept: list[str]


class Action(TypedDict):
    action_id: str
    label: str
    kind: Literal["form"]
    fields: list[Field]
    prefill: dict[str, Any]


class Column(TypedDict):
    key: str
    label: str


class TableOutput(TypedDict):
    kind: Literal["table"]
    title: str | None
    columns: list[Column]
    # one list per row, aligned with `columns` (see docs/contract.md: key order can never be lost)
    rows: list[list[Scalar]]


class Artifact(TypedDict):
    id: str
    path: str  # "output/<relative path>"
    bytes: int


class Payload(TypedDict):
    contract_version: Literal[2]
    status: str
    error_summary: str | None
    outputs: list[dict[str, Any]]
    next_actions: list[Action]
    state: dict[str, Any] | None
    artifacts: list[Artifact]


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """int or finite float, never bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value - value == 0  # false for nan and ±inf


def field_name(field: dict) -> str:
    name = field.get("name")
    return name.strip() if isinstance(name, str) else ""


def field_label(field: dict) -> str:
    label = field.get("label")
    label = label.strip() if isinstance(label, str) else ""
    return label or field_name(field)


def file_bounds(field: dict, max_files: int) -> tuple[int, int]:
    """Effective (min, max) file count of a file field: `required` alone means at least one."""
    low = field.get("min")
    high = field.get("max")
    low = low if is_int(low) else (1 if field.get("required") is True else 0)
    high = high if is_int(high) else max_files
    return low, min(high, max_files)
