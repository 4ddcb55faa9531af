"""Policy caps of contract v2 §6 (plus the upload limits), as one frozen value.

Every number is a default; a deployment overrides some of them with ``Caps.from_dict({...})`` (for example from
traitlets configuration). Unknown keys are rejected so a typo in a config file is an error, not a silent no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, Mapping

KiB = 1024


@dataclass(frozen=True)
class Caps:
    # result shape
    outputs_max: int = 50
    next_actions_max: int = 10
    action_fields_max: int = 25
    enum_options_max: int = 100
    multi_enum_options_max: int = 200
    # output sizes (UTF-8 bytes)
    notice_message_bytes: int = 8 * KiB
    markdown_bytes: int = 64 * KiB
    html_bytes: int = 96 * KiB
    table_rows_max: int = 750
    table_columns_max: int = 40
    table_cell_bytes: int = 512
    json_bytes: int = 96 * KiB
    json_depth: int = 10
    json_keys_max: int = 1000
    json_array_max: int = 2000
    vega_lite_bytes: int = 512 * KiB
    vega_lite_rows_max: int = 4000
    vega_lite_depth: int = 8
    vega_lite_layers_max: int = 16
    state_max_bytes: int = 64 * KiB
    payload_max_bytes: int = 256 * KiB
    error_summary_bytes: int = 20_000
    # artifacts: not capped by the spec; bounded so the payload budget can hold the list (docs/contract.md)
    artifacts_max: int = 500
    artifact_path_bytes: int = 1024
    # run logs, for authors only
    stdout_bytes: int = 200_000
    stderr_bytes: int = 200_000
    # uploads ("MB" in the spec is decimal, unlike the KiB caps above)
    upload_max_files: int = 20
    upload_file_bytes: int = 20_000_000
    upload_run_bytes: int = 50_000_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            # bool is an int in Python; a cap of True is surely a config mistake
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"cap {f.name} must be a positive integer, got {value!r}")
        if self.payload_max_bytes < 1024:  # the bare envelope must always fit (normalize.fit_budget)
            raise ValueError("cap payload_max_bytes must be at least 1024")

    @classmethod
    def from_dict(cls, overrides: Mapping[str, Any] | None = None) -> "Caps":
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown cap(s): {', '.join(unknown)}")
        return replace(cls(), **overrides)

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def options_max(self, kind: str) -> int:
        return self.multi_enum_options_max if kind == "multi_enum" else self.enum_options_max


DEFAULT_CAPS = Caps()
