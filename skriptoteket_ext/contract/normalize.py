"""The result normalizer: whatever the runner returned → the payload users see and history replays (§2–§7).

A pure function of (raw envelope, caps). It never raises, never fails a run for one bad element, and its
output serializes (``canonical_json``) to the same bytes for the same input in any key order, within
``payload_max_bytes``.
"""

from __future__ import annotations

from typing import Any

from .actions import normalize_actions
from .artifacts import normalize_artifacts
from .canonical import json_size, short, truncate_utf8
from .caps import DEFAULT_CAPS, Caps
from .models import CONTRACT_VERSION, CONTRACT_VIOLATION, STATUSES, is_int
from .notices import Notices, system_notice
from .outputs import normalize_output
from .state import normalize_state


def normalize_result(raw: Any, caps: Caps = DEFAULT_CAPS) -> dict:
    notices = Notices()
    if not isinstance(raw, dict):
        notices.add("envelope", f"the result is {type(raw).__name__}, not an object")
        return _violation([], notices, caps)
    version = raw.get("contract_version")
    if not (is_int(version) and version == CONTRACT_VERSION):
        notices.add("envelope", f"contract_version is {_describe(version)}, not {CONTRACT_VERSION}")
        return _violation(raw.get("artifacts"), notices, caps)
    status = raw.get("status")
    if status not in STATUSES:
        notices.add("envelope", f"status {_describe(status)} is not one of {', '.join(STATUSES)}")
        return _violation(raw.get("artifacts"), notices, caps)

    error_summary = _error_summary(raw.get("error_summary"), caps, notices)
    outputs = _outputs(raw.get("outputs"), caps, notices)
    actions = normalize_actions(raw.get("next_actions"), caps, notices)
    state = normalize_state(raw.get("state"), caps, notices)
    artifacts = normalize_artifacts(raw.get("artifacts"), caps, notices)
    payload = _payload(status, error_summary, [], [], state, artifacts)
    return fit_budget(payload, outputs, actions, notices.outputs(), caps)


def _violation(raw_artifacts: Any, notices: Notices, caps: Caps) -> dict:
    """A broken envelope fails the run; artifacts are still offered (best effort, §7)."""
    artifacts = normalize_artifacts(raw_artifacts, caps, notices)
    payload = _payload("failed", CONTRACT_VIOLATION, [], [], None, artifacts)
    return fit_budget(payload, [], [], notices.outputs(), caps)


def _payload(status, error_summary, outputs, actions, state, artifacts) -> dict:
    return {"contract_version": CONTRACT_VERSION, "status": status, "error_summary": error_summary,
            "outputs": outputs, "next_actions": actions, "state": state, "artifacts": artifacts}


def _describe(value: Any) -> str:
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return f"'{short(value)}'" if isinstance(value, str) else type(value).__name__


def _error_summary(value: Any, caps: Caps, notices: Notices) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        notices.add("envelope", f"error_summary is {type(value).__name__}, not text")
        return None
    value, cut = truncate_utf8(value, caps.error_summary_bytes)
    if cut:
        notices.add("error_summary", f"cut to {caps.error_summary_bytes} bytes")
    return value


def _outputs(raw: Any, caps: Caps, notices: Notices) -> list[dict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        notices.add("envelope", "outputs is not a list")
        return []
    outputs: list[dict] = []
    for number, item in enumerate(raw, start=1):
        if len(outputs) == caps.outputs_max:
            notices.add("outputs_cap", f"only the first {caps.outputs_max} are shown")
            break
        output = normalize_output(item, number, caps, notices)
        if output is not None:
            outputs.append(output)
    return outputs


# --- the whole-payload budget (§6) ---

def _list_bytes(sizes: list[int]) -> int:
    return 2 + sum(sizes) + max(0, len(sizes) - 1)  # "[" a "," b "]"


# The largest the budget notice itself can be (counts up to 9 digits), reserved before it is written.
_BUDGET_NOTICE_RESERVE = json_size(system_notice("payload", [f"{10**9} outputs removed"] * 3)) + 1


def fit_budget(payload: dict, outputs: list[dict], actions: list[dict], system: list[dict], caps: Caps) -> dict:
    """Put outputs (the tool's, then the system notices) and actions into ``payload`` within the byte budget.

    Over budget, remove the tool's outputs from the end, then actions, then system notices, and say so in one
    last notice. Beyond the spec: if the rest (error, state, artifacts) alone is still too large — possible
    only when a deployment raised those caps above the budget — artifacts, state and the error go too.
    """
    budget = caps.payload_max_bytes
    full = {**payload, "outputs": outputs + system, "next_actions": actions}
    if json_size(full) <= budget:
        return full
    # Sizes are additive in canonical JSON, so each removal is arithmetic, not a re-serialization.
    rest = json_size(payload) - 4  # without the two "[]"
    out_sizes = [json_size(o) for o in outputs]
    act_sizes = [json_size(a) for a in actions]
    sys_sizes = [json_size(n) for n in system]

    def total(reserve: int) -> int:
        return rest + _list_bytes(out_sizes + sys_sizes) + _list_bytes(act_sizes) + reserve

    removed = {"outputs": 0, "actions": 0, "system notices": 0}
    for sizes, what in ((out_sizes, "outputs"), (act_sizes, "actions"), (sys_sizes, "system notices")):
        while sizes and total(_BUDGET_NOTICE_RESERVE) > budget:
            sizes.pop()
            removed[what] += 1
    details = [f"{n} {what} removed" for what, n in removed.items() if n]
    kept_system = system[: len(sys_sizes)] + [system_notice("payload", details)]
    result = {**payload, "outputs": outputs[: len(out_sizes)] + kept_system, "next_actions": actions[: len(act_sizes)]}
    if json_size(result) <= budget:
        return result
    return _shed_record(result, budget)


def _shed_record(result: dict, budget: int) -> dict:
    result["outputs"], result["next_actions"] = [], []
    artifacts = result["artifacts"]
    if artifacts:
        overflow = json_size(result) - budget
        while artifacts and overflow > 0:
            overflow -= json_size(artifacts.pop()) + (1 if artifacts else 0)
    if json_size(result) > budget:
        result["state"] = None
    while json_size(result) > budget and result["error_summary"]:
        text = result["error_summary"]
        result["error_summary"] = truncate_utf8(text, len(text.encode("utf-8")) // 2)[0] or None
    return result
