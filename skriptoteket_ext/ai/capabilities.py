"""The four capabilities: read the request, build the prompt, read and check the model's answer.

Nothing is offered that would not work: a generated tool, an edit or a fix is offered only when its source
compiles, its entrypoint is defined and its schemas pass the contract's validation; an edit is offered as a
unified diff per field that was checked to apply cleanly to the author's current content.
"""

from __future__ import annotations

import ast
import hashlib
import json
from typing import Any

from ..contract import validate_input_schema, validate_settings_schema
from ..errors import ApiError
from . import prompts
from .diff import DiffError, apply_diff, make_diff

FIELDS = tuple(prompts.FIELD_TAGS)  # source, input_schema, settings_schema, usage_instructions
TEXT_MAX = 200_000  # characters of any text sent to the model
ASK_MAX = 8_000  # characters of a description or instruction
COMPLETE_PREFIX = 8_000  # characters kept before / after the cursor
COMPLETE_SUFFIX = 2_000


# ---- requests -------------------------------------------------------------------------------------------------


def _text(body: dict, name: str, *, required: bool = False, limit: int = TEXT_MAX) -> str | None:
    value = body.get(name)
    if value is None or (isinstance(value, str) and not value.strip() and required):
        if required:
            raise ApiError(422, "field_required", field=name)
        return None
    if not isinstance(value, str):
        raise ApiError(422, "invalid_field", field=name)
    if len(value) > limit:
        raise ApiError(413, "ai_input_too_large", details={"field": name, "max": limit}, field=name, max=limit)
    return value


def schema_text(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def current_from_body(body: dict) -> dict[str, str | None] | None:
    """The author's current tool (the notebook's cells, unsaved), as texts; ``None`` when not sent."""
    current = body.get("current")
    if current is None:
        return None
    if not isinstance(current, dict):
        raise ApiError(422, "invalid_field", field="current")
    unknown = sorted(set(current) - set(FIELDS) - {"entrypoint"})
    if unknown:
        raise ApiError(422, "unknown_fields", details={"unknown_fields": unknown}, fields=", ".join(unknown))
    out: dict[str, str | None] = {}
    for field in FIELDS:
        value = current.get(field)
        if field.endswith("_schema") and not isinstance(value, (str, type(None))):
            value = schema_text(value)  # sent as JSON values: compared and diffed as pretty JSON
        if value is not None and not isinstance(value, str):
            raise ApiError(422, "invalid_field", field=f"current.{field}")
        if value is not None and len(value) > TEXT_MAX:
            raise ApiError(413, "ai_input_too_large", details={"field": field, "max": TEXT_MAX}, field=field, max=TEXT_MAX)
        out[field] = value
    out["entrypoint"] = current.get("entrypoint") if isinstance(current.get("entrypoint"), str) else "run_tool"
    return out


def current_from_version(version: dict | None) -> dict[str, str | None]:
    """The stored draft head (or an empty tool) as texts, when the notebook did not send its cells."""
    version = version or {}
    settings = version.get("settings_schema")
    return {
        "source": version.get("source") or "",
        "input_schema": schema_text(version.get("input_schema") or []),
        "settings_schema": None if settings is None else schema_text(settings),
        "usage_instructions": version.get("usage_instructions"),
        "entrypoint": version.get("entrypoint") or "run_tool",
    }


def parse_request(capability: str, body: dict) -> dict:
    """The request's fields, checked (422/413) before anything else happens."""
    if capability == "generate":
        return {"description": _text(body, "description", required=True, limit=ASK_MAX)}
    if capability == "edit":
        return {"instruction": _text(body, "instruction", required=True, limit=ASK_MAX),
                "current": current_from_body(body)}
    if capability == "explain":
        run_id = body.get("run_id")
        if run_id is not None and not isinstance(run_id, str):
            raise ApiError(422, "invalid_field", field="run_id")
        error = _text(body, "error", required=run_id is None)
        return {"error": error, "logs": _text(body, "logs") or "", "run_id": run_id, "inputs": body.get("inputs"),
                "current": current_from_body(body)}
    if capability == "complete":
        if "prefix" in body or "suffix" not in body and "source" not in body:
            prefix = _text(body, "prefix", required="source" not in body) or ""
            suffix = _text(body, "suffix") or ""
        else:
            source = _text(body, "source", required=True)
            cursor = body.get("cursor", len(source))
            if not isinstance(cursor, int) or isinstance(cursor, bool) or not 0 <= cursor <= len(source):
                raise ApiError(422, "invalid_field", field="cursor")
            prefix, suffix = source[:cursor], source[cursor:]
        return {"prefix": prefix[-COMPLETE_PREFIX:], "suffix": suffix[:COMPLETE_SUFFIX]}
    raise ValueError(capability)


def messages_for(capability: str, request: dict, lang: str) -> list[dict]:
    if capability == "generate":
        return prompts.generate_messages(request["description"], lang)
    if capability == "edit":
        return prompts.edit_messages(request["instruction"], request["current"], lang)
    if capability == "explain":
        return prompts.explain_messages(request["error"] or "", request["current"], lang, logs=request["logs"],
                                        inputs=request["inputs"])
    return prompts.complete_messages(request["prefix"], request["suffix"], lang)


# ---- checking tools -------------------------------------------------------------------------------------------


def strip_magic(text: str) -> str:
    """A cell's value without a leading ``%%skr_…`` magic line (docs/authoring-format.md)."""
    if text.startswith("%%"):
        return text.split("\n", 1)[1] if "\n" in text else ""
    return text


def parse_schema_text(text: str | None, field: str) -> tuple[Any, list[dict]]:
    """A schema cell's value: JSON, or a Python literal (``True``/``None`` accepted, as in the notebook)."""
    if text is None or not strip_magic(text).strip():
        return ([] if field == "input_schema" else None), []
    body = strip_magic(text)
    try:
        return json.loads(body), []
    except ValueError:
        pass
    try:
        return ast.literal_eval(body), []
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError) as err:
        return None, [{"field": field, "path": f"/{field}", "code": "ai_schema_unreadable",
                       "message": f"not JSON: {type(err).__name__}"}]


def check_tool(parts: dict[str, str | None], lang: str) -> list[dict]:
    """Issues that keep a tool from being offered: syntax, a missing entrypoint, schemas against the contract."""
    issues: list[dict] = []
    source = strip_magic(parts.get("source") or "")
    entrypoint = parts.get("entrypoint") or "run_tool"
    try:
        tree = compile(source, "<tool>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        compile(tree, "<tool>", "exec", dont_inherit=True)
    except SyntaxError as err:
        issues.append({"field": "source", "path": "/source", "code": "ai_syntax_error", "line": err.lineno,
                       "column": err.offset, "message": f"{err.msg} (line {err.lineno})"})
    except (ValueError, MemoryError, RecursionError) as err:
        issues.append({"field": "source", "path": "/source", "code": "ai_syntax_error", "message": str(err)})
    else:
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        assigned = {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)}
        if entrypoint not in defined | assigned:
            issues.append({"field": "source", "path": "/source", "code": "ai_no_entrypoint",
                           "message": f"no function {entrypoint}(input_dir, output_dir)"})
    for field, check in (("input_schema", validate_input_schema), ("settings_schema", validate_settings_schema)):
        value, unreadable = parse_schema_text(parts.get(field), field)
        issues.extend(unreadable)
        if unreadable:
            continue
        for issue in check(value):
            item = issue.to_dict(lang)
            item["field"] = field
            item["path"] = f"/{field}{issue.path}"
            issues.append(item)
    return issues


def _invalid(issues: list[dict]) -> ApiError:
    return ApiError(422, "ai_invalid_tool", details={"issues": issues}, count=len(issues))


def _block_text(text: str, like: str | None) -> str:
    """A block's text with the current content's convention for the final newline."""
    text = text.rstrip("\n")
    return text + "\n" if (like is None or like.endswith("\n") or not like) and text else text


# ---- answers --------------------------------------------------------------------------------------------------


def generate_result(text: str, lang: str) -> dict:
    tagged, untagged, prose = prompts.parse_blocks(text)
    source = tagged.get("skr-source")
    if source is None:  # small models drop the tag: take the first Python block
        source = next((body for language, body in untagged if language in ("python", "py")), None)
    if source is None or not source.strip():
        raise ApiError(502, "ai_bad_answer", details={"capability": "generate", "reason": "no source"})
    parts: dict[str, str | None] = {
        "source": _block_text(source, None),
        "input_schema": tagged.get("skr-input-schema", "[]\n"),
        "settings_schema": tagged.get("skr-settings-schema"),
        "usage_instructions": tagged.get("skr-instructions"),
        "entrypoint": "run_tool",
    }
    issues = check_tool(parts, lang)
    if issues:
        raise _invalid(issues)
    input_schema, _ = parse_schema_text(parts["input_schema"], "input_schema")
    settings_schema, _ = parse_schema_text(parts["settings_schema"], "settings_schema")
    meta: dict = {}
    if tagged.get("skr-tool"):
        try:
            loaded = json.loads(tagged["skr-tool"])
            meta = loaded if isinstance(loaded, dict) else {}
        except ValueError:
            meta = {}
    instructions = (parts["usage_instructions"] or "").strip() or None
    tool = {
        "title": str(meta.get("title") or "").strip()[:200] or None,
        "summary": str(meta.get("summary") or "").strip()[:500] or None,
        "source": parts["source"],
        "entrypoint": "run_tool",
        "input_schema": input_schema,
        "settings_schema": settings_schema,
        "usage_instructions": instructions,
    }
    cells = {
        "source": parts["source"],
        "input_schema": schema_text(input_schema),
        "settings_schema": schema_text(settings_schema),
        "usage_instructions": (instructions + "\n") if instructions else "",
    }
    return {"tool": tool, "cells": cells, "explanation": prose}


def sha256(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def proposed_changes(current: dict[str, str | None], tagged: dict[str, str], lang: str) -> list[dict]:
    """The fields the answer changes, as verified diffs; ``ai_invalid_tool`` if the result would not work."""
    proposed: dict[str, str] = {}
    for field in FIELDS:
        block = tagged.get(prompts.FIELD_TAGS[field])
        if block is None:
            continue
        old = current.get(field)
        new = _block_text(block, old)
        if field.endswith("_schema"):
            old_value, old_bad = parse_schema_text(old, field)
            new_value, new_bad = parse_schema_text(new, field)
            if not old_bad and not new_bad and old_value == new_value:
                continue  # same schema, only formatted differently: nothing to review
        elif (old or "").rstrip() == new.rstrip():
            continue
        proposed[field] = new
    if not proposed:
        return []
    issues = check_tool({**current, **proposed}, lang)
    if issues:
        raise _invalid(issues)
    changes = []
    for field, new in proposed.items():
        old = current.get(field) or ""
        diff = make_diff(old, new, field)
        try:
            if apply_diff(old, diff) != new:
                raise DiffError("the diff does not reproduce the proposal")
        except DiffError:
            raise ApiError(502, "ai_diff_failed", details={"field": field}) from None
        changes.append({"field": field, "diff": diff, "proposed": new, "base_sha256": sha256(old)})
    return changes


def edit_result(text: str, current: dict[str, str | None], lang: str) -> dict:
    tagged, untagged, prose = prompts.parse_blocks(text)
    if not tagged and len(untagged) == 1 and untagged[0][0] in ("python", "py"):
        tagged = {"skr-source": untagged[0][1]}  # one untagged Python block: the new source
    if not tagged and not prose:
        raise ApiError(502, "ai_bad_answer", details={"capability": "edit"})
    return {"explanation": prose, "changes": proposed_changes(current, tagged, lang)}


def explain_result(text: str, current: dict[str, str | None], lang: str) -> dict:
    tagged, _untagged, prose = prompts.parse_blocks(text)
    result: dict = {"explanation": prose or text.strip(), "changes": []}
    fix = {k: v for k, v in tagged.items() if k == "skr-source"}
    if fix:
        try:
            result["changes"] = proposed_changes(current, fix, lang)
        except ApiError as err:  # the explanation still helps; the broken fix is not offered
            result["fix_rejected"] = err.details.get("issues", [])
    return result


def complete_result(text: str) -> dict:
    completion = prompts.strip_fences(text)
    if prompts.CURSOR in completion:
        completion = completion.split(prompts.CURSOR, 1)[-1]
    return {"completion": completion}
