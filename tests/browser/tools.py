"""Published test tools for the browser tests and the benchmark.

``publish_all(platform)`` goes through the service's lifecycle API as an author and a reviewer would (create,
save a version, submit, publish: ``tests/e2e/publishing.py``). ``publish(db_url, ...)`` writes straight into
the database; it is kept only for callers that have no running platform API at hand (ops tests, classroom
benchmark).
"""

from __future__ import annotations

import httpx
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from skriptoteket_ext import tables as t
from tests.e2e.publishing import publish_tool

FIELDS = [
    {"name": "title", "label": "Title", "kind": "string", "required": True, "placeholder": "Class 7B"},
    {"name": "notes", "label": "Notes", "kind": "text"},
    {"name": "groups", "label": "Number of groups", "kind": "integer", "min": 1, "max": 10, "default": 2},
    {"name": "weight", "label": "Weight", "kind": "number"},
    {"name": "shuffle", "label": "Shuffle", "kind": "boolean"},
    {"name": "mode", "label": "Mode", "kind": "enum",
     "options": [{"value": "fast", "label": "Fast"}, {"value": "fair", "label": "Fair"}]},
    {"name": "tags", "label": "Tags", "kind": "multi_enum",
     "options": [{"value": "a", "label": "Alpha"}, {"value": "b", "label": "Beta"}, {"value": "c", "label": "Gamma"}]},
    {"name": "files", "label": "Class lists", "kind": "file", "accept": [".csv", ".txt"], "min": 0, "max": 3},
]

# Every field kind; two files; a table whose keys "10" and "2" must keep their declared order; an artifact;
# a follow-up action with a prefilled field that advances the state.
GROUP_MAKER = r'''
import json, os
from skriptoteket_toolkit import read_inputs, list_input_files, read_action

def run_tool(input_dir, output_dir):
    action = read_action()
    files = list_input_files()
    if action is None:
        inputs = read_inputs()
        step = 1
        rows = [{"10": f["name"], "2": f["bytes"], "name": "first"} for f in files]
        with open(os.path.join(output_dir, "report.bin"), "wb") as out:
            out.write(bytes(range(256)) * 8)
        echo = json.dumps(inputs, sort_keys=True)
    else:
        step = int(action["state"].get("step", 0)) + 1
        rows = [{"10": action["input"].get("comment", ""), "2": step, "name": "next"}]
        echo = json.dumps(action["input"], sort_keys=True)
    return {
        "outputs": [
            {"kind": "notice", "level": "info", "message": f"Step {step}; files: {len(files)}"},
            {"kind": "markdown", "markdown": "**Echo:** `" + echo + "`"},
            {"kind": "table", "title": "Result", "columns": [{"key": "10", "label": "Ten"},
             {"key": "2", "label": "Two"}, {"key": "name", "label": "Name"}], "rows": rows},
        ],
        "next_actions": [{"action_id": "next", "label": "Next step", "kind": "form",
                          "fields": [{"name": "comment", "label": "Comment", "kind": "string"}],
                          "prefill": {"comment": f"after step {step}"}}],
        "state": {"step": step},
    }
'''

HOSTILE = r'''
def run_tool(input_dir, output_dir):
    return {"outputs": [
        {"kind": "html_sandboxed", "html": "<p id='inside'>sandboxed</p><script>parent.window.__pwned = 1; window.top.__pwned = 2;</script><img src=x onerror='parent.window.__pwned=3'>"},
        {"kind": "markdown", "markdown": "Hello <script>window.__pwned = 4</script> <img src=x onerror=\"window.__pwned=5\"> [x](javascript:window.__pwned=6)"},
        {"kind": "notice", "level": "info", "message": "<img src=x onerror=window.__pwned=7>"},
    ]}
'''

NOOP = "def run_tool(input_dir, output_dir):\n    return {'outputs': [{'kind': 'notice', 'level': 'info', 'message': 'done'}]}\n"

BIG_UPLOAD = r'''
import hashlib
from skriptoteket_toolkit import list_input_files

def run_tool(input_dir, output_dir):
    rows = []
    for f in list_input_files():
        with open(f["path"], "rb") as fh:
            rows.append({"name": f["name"], "bytes": f["bytes"], "sha256": hashlib.sha256(fh.read()).hexdigest()})
    return {"outputs": [{"kind": "table", "columns": [{"key": "name", "label": "Name"}, {"key": "bytes", "label": "Bytes"},
            {"key": "sha256", "label": "SHA-256"}], "rows": rows}]}
'''

TOOLS = {
    "tp-group-maker": dict(title="Group maker", summary="Splits class lists into groups.", source=GROUP_MAKER,
                        input_schema=FIELDS, usage_instructions="1. Upload **class lists**.\n2. Press *Run*.",
                        settings_schema=[{"name": "signature", "label": "Signature", "kind": "string"}]),
    "tp-hostile-output": dict(title="Hostile output", summary="Tries to run script.", source=HOSTILE, input_schema=[]),
    "tp-noop": dict(title="No-op", summary="Does nothing, quickly.", source=NOOP, input_schema=[]),
    "tp-big-upload": dict(title="Big upload", summary="Hashes an upload.", source=BIG_UPLOAD,
                       input_schema=[{"name": "file", "label": "File", "kind": "file", "min": 1, "max": 1}]),
}


def publish(db_url: str, slug: str, *, owner: str = "admin", title: str, summary: str = "", source: str,
            input_schema: list | None = None, settings_schema: list | None = None,
            usage_instructions: str | None = None) -> int:
    """A published tool with one active version (idempotent by slug: an existing tool is left as it is)."""
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(insert(t.users).values(name=owner).on_conflict_do_nothing())
            existing = conn.execute(sa.select(t.tools.c.id).where(t.tools.c.slug == slug)).scalar()
            if existing:
                return existing
            tool_id = conn.execute(
                sa.insert(t.tools).values(slug=slug, title=title, summary=summary, owner_name=owner, created_by=owner,
                                          is_published=True, published_at=sa.func.now(), published_by=owner,
                                          slug_locked=True).returning(t.tools.c.id)
            ).scalar_one()
            conn.execute(sa.insert(t.tool_versions).values(
                tool_id=tool_id, version_no=1, state="active", was_active=True, created_by=owner, source=source,
                input_schema=input_schema or [], settings_schema=settings_schema if settings_schema is not None else sa.null(),
                usage_instructions=usage_instructions))
            return tool_id
    finally:
        engine.dispose()


def is_published(platform, slug: str, token: str) -> bool:
    response = httpx.get(f"{platform.service_url}/api/v1/apps/{slug}", params={"context": "production"},
                         headers={"Authorization": f"token {token}"}, timeout=30)
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def publish_all(platform) -> None:
    """Every tool in ``TOOLS``, published through the lifecycle API (idempotent by slug: a tool that is already
    published, e.g. by another module on the shared platform, is left as it is)."""
    token = platform.token_for("admin")
    for slug, spec in TOOLS.items():
        if not is_published(platform, slug, token):
            publish_tool(platform, slug, **spec)
            assert is_published(platform, slug, token), slug
