"""The messages sent to the model, and the reading of its answers.

Every prompt carries the contract reference (``contract_reference.md``, condensed from the product's contract)
so that generated and edited tools follow the contract. Tool parts travel in fenced blocks tagged like the
authoring notebook's cells (docs/authoring-format.md): ```` ```python skr-source ````, ```` ```json
skr-input-schema ````… Fenced blocks are easier for small local models than code inside JSON strings, and the
answer streams to the author as readable text.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

HERE = Path(__file__).parent

# tool part -> the block tag (the authoring notebook's cell tag)
FIELD_TAGS = {
    "source": "skr-source",
    "input_schema": "skr-input-schema",
    "settings_schema": "skr-settings-schema",
    "usage_instructions": "skr-instructions",
}
TAG_FIELDS = {tag: f for f, tag in FIELD_TAGS.items()}
FIELD_LANG = {"source": "python", "input_schema": "json", "settings_schema": "json", "usage_instructions": "markdown"}
LANGUAGE_NAMES = {"en": "English", "sv": "Swedish (svenska)"}

CURSOR = "<|CURSOR|>"


@lru_cache(maxsize=1)
def contract_reference() -> str:
    return (HERE / "contract_reference.md").read_text(encoding="utf-8")


def system_prompt(capability: str, lang: str) -> str:
    language = LANGUAGE_NAMES.get(lang, "English")
    return (
        "You are the Skriptoteket authoring assistant (capability: " + capability + "). You help script authors "
        "write small Python tools that teachers run on the Skriptoteket platform. Every tool must follow the "
        "tool contract v2 summarised below: a run_tool(input_dir, output_dir) entrypoint returning a dict of "
        "outputs, forms described by JSON field lists, ToolUserError for messages to the user, no network.\n"
        f"Write explanations for the author in {language}; write code comments and identifiers in English "
        "unless the author's code uses another language. Be brief.\n\n"
        "=== CONTRACT REFERENCE ===\n" + contract_reference() + "\n=== END OF CONTRACT REFERENCE ==="
    )


def block(field: str, text: str) -> str:
    fence = "````" if "```" in text else "```"
    body = text if text.endswith("\n") else text + "\n"
    return f"{fence}{FIELD_LANG[field]} {FIELD_TAGS[field]}\n{body}{fence}\n"


FORMAT_ALL = (
    "Reply with one or two sentences about the tool, then exactly these fenced blocks, each tagged after the "
    "language name:\n"
    "```python skr-source\n<the complete module, with def run_tool(input_dir, output_dir)>\n```\n"
    "```json skr-input-schema\n<the input_schema JSON list>\n```\n"
    "```json skr-settings-schema\n<the settings_schema JSON list, or null>\n```\n"
    "````markdown skr-instructions\n<short usage instructions for teachers, Markdown>\n````\n"
    "```json skr-tool\n{\"title\": \"<short title>\", \"summary\": \"<one sentence>\"}\n```\n"
    "Use only what the contract reference describes. The JSON blocks must be valid JSON."
)


def generate_messages(description: str, lang: str) -> list[dict]:
    user = f"Write a new Skriptoteket tool.\n\nWhat the author wants:\n{description.strip()}\n\n{FORMAT_ALL}"
    return [{"role": "system", "content": system_prompt("generate", lang)}, {"role": "user", "content": user}]


def current_tool_text(current: dict[str, str | None]) -> str:
    parts = []
    for field in FIELD_TAGS:
        value = current.get(field)
        parts.append(block(field, "null" if value is None and field == "settings_schema" else (value or "")))
    return "\n".join(parts)


def edit_messages(instruction: str, current: dict[str, str | None], lang: str) -> list[dict]:
    user = (
        "The author's current tool:\n\n" + current_tool_text(current) + "\n"
        f"The author asks for this change:\n{instruction.strip()}\n\n"
        "Reply with a short explanation of what you change, then, for each part you change, one fenced block "
        "tagged like above (```python skr-source, ```json skr-input-schema, ```json skr-settings-schema, "
        "````markdown skr-instructions) holding the COMPLETE new content of that part — not a diff, not an "
        "excerpt. Leave out the parts you do not change. Keep everything else exactly as it is."
    )
    return [{"role": "system", "content": system_prompt("edit", lang)}, {"role": "user", "content": user}]


def explain_messages(error: str, current: dict[str, str | None], lang: str, *, logs: str = "",
                     inputs: object = None) -> list[dict]:
    user = "A sandbox run of the author's tool failed.\n\nThe tool:\n\n" + current_tool_text(current) + "\n"
    user += f"The error the run reported:\n```text\n{error.strip()}\n```\n"
    if logs.strip():
        user += f"\nThe run's log (stderr, may hold the traceback):\n```text\n{logs.strip()}\n```\n"
    if inputs not in (None, {}, []):
        user += f"\nThe inputs of the run:\n```json\n{json.dumps(inputs, ensure_ascii=False, default=str)[:4000]}\n```\n"
    user += (
        "\nExplain in plain words, briefly, why the run failed and how to fix it. If a change of the source "
        "fixes it, end with one ```python skr-source block holding the COMPLETE corrected source."
    )
    return [{"role": "system", "content": system_prompt("explain", lang)}, {"role": "user", "content": user}]


def complete_messages(prefix: str, suffix: str, lang: str) -> list[dict]:
    user = (
        f"Complete the Python code of a Skriptoteket tool at the cursor, marked {CURSOR}.\n"
        "Reply with ONLY the code to insert at the cursor: no explanation, no fences, no repetition of the code "
        "before or after the cursor.\n\n"
        f"{prefix}{CURSOR}{suffix}"
    )
    return [{"role": "system", "content": system_prompt("complete", lang)}, {"role": "user", "content": user}]


# ---- reading answers ------------------------------------------------------------------------------------------

_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")


def parse_blocks(text: str) -> tuple[dict[str, str], list[tuple[str, str]], str]:
    """Fenced blocks of an answer: ``(tagged, untagged, prose)``.

    ``tagged`` maps each ``skr-*`` tag to its block's text (the last one wins); ``untagged`` lists
    ``(language, text)`` of the other blocks; ``prose`` is the text outside all blocks.
    """
    tagged: dict[str, str] = {}
    untagged: list[tuple[str, str]] = []
    prose: list[str] = []
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        m = _OPEN.match(lines[i].rstrip("\r\n"))
        if not m:
            prose.append(lines[i])
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").split()
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped and set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                closed = True
                i += 1
                break
            body.append(lines[i])
            i += 1
        content = "".join(body)
        tag = next((w for w in info if w.startswith("skr-")), None)
        if tag:
            tagged[tag] = content
        elif closed or content.strip():
            untagged.append(((info[0] if info else "").lower(), content))
    return tagged, untagged, "".join(prose).strip()


def strip_fences(text: str) -> str:
    """A completion that came wrapped in a fence anyway: its content."""
    stripped = text.strip("\n")
    m = re.match(r"^(`{3,}|~{3,})[^\n]*\n(.*?)\n?\1\s*$", stripped, re.S)
    return m.group(2) + ("\n" if text.endswith("\n") else "") if m else text
