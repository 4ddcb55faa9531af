"""Tool UI contract v2 (docs/contract.md): pure functions, no I/O, no web or database code.

- ``schema``: validate input/settings schemas for authors (issues with JSON pointers)
- ``inputs``: normalize submitted form values, check follow-up actions, hash settings schemas
- ``normalize``: turn whatever the runner returned into the payload users see
- ``caps``: the policy caps, configurable per deployment
"""

from .artifacts import artifact_id_for
from .canonical import canonical_json
from .caps import DEFAULT_CAPS, Caps
from .issues import Issue
from .inputs import normalize_inputs, settings_schema_hash, validate_action_input
from .normalize import normalize_result
from .schema import validate_input_schema, validate_settings_schema

__all__ = [
    "Caps",
    "DEFAULT_CAPS",
    "Issue",
    "artifact_id_for",
    "canonical_json",
    "normalize_inputs",
    "normalize_result",
    "settings_schema_hash",
    "validate_action_input",
    "validate_input_schema",
    "validate_settings_schema",
]
