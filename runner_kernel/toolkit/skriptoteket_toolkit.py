"""What tool code imports (contract-v2 §1). Readers never raise on missing or malformed data.

The runner sets the SKRIPTOTEKET_* environment variables and writes the JSON files they point at right before
the tool runs; this module only reads them, every call afresh (nothing is cached between runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tool_errors import ToolUserError

__all__ = [
    "ToolUserError",
    "get_action_parts",
    "list_input_files",
    "read_action",
    "read_input_manifest",
    "read_inputs",
    "read_memory",
    "read_settings",
    "save_as_pdf",
]


def _json_env(name: str):
    try:
        return json.loads(os.environ.get(name) or "null")
    except ValueError:
        return None


def _json_file(path: str | None):
    if not path:
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def read_inputs() -> dict:
    """Normalized input values of a first run; ``{}`` on action runs or when absent."""
    return _dict(_json_env("SKRIPTOTEKET_INPUTS"))


def read_input_manifest() -> dict:
    """``{"files": [{name, path, bytes}, ...]}`` in upload order."""
    manifest = _dict(_json_env("SKRIPTOTEKET_INPUT_MANIFEST"))
    files = manifest.get("files")
    if not isinstance(files, list):
        return {"files": _scan_input_dir()}
    return {"files": [f for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)]}


def list_input_files() -> list[dict]:
    """``[{name, path, bytes}]`` for the files in input_dir, in upload order."""
    return [dict(f) for f in read_input_manifest()["files"] if os.path.isfile(f["path"])]


def _scan_input_dir() -> list[dict]:
    input_dir = os.environ.get("SKRIPTOTEKET_INPUT_DIR")
    if not input_dir or not os.path.isdir(input_dir):
        return []
    files = []
    for entry in sorted(os.scandir(input_dir), key=lambda e: e.name):
        if entry.is_file(follow_symlinks=False):
            files.append({"name": entry.name, "path": entry.path, "bytes": entry.stat().st_size})
    return files


def read_action() -> dict | None:
    """``{action_id, input, state}`` on a follow-up action run, ``None`` on the first run."""
    action = _json_env("SKRIPTOTEKET_ACTION")
    if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
        return None
    return {"action_id": action["action_id"], "input": _dict(action.get("input")), "state": _dict(action.get("state"))}


def get_action_parts() -> tuple[str | None, dict, dict]:
    """``(action_id or None, input dict, state dict)``."""
    action = read_action()
    if action is None:
        return None, {}, {}
    return action["action_id"], action["input"], action["state"]


def read_memory() -> dict:
    return _dict(_json_file(os.environ.get("SKRIPTOTEKET_MEMORY_PATH")))


def read_settings() -> dict:
    """The user's saved settings for this tool (``{}`` if none); they travel in memory.json under "settings"."""
    return _dict(read_memory().get("settings"))


def save_as_pdf(html: str, output_dir: str, filename: str) -> str:
    """Render ``html`` to ``output_dir/filename`` with WeasyPrint and return the file's path.

    ``filename`` must be relative, end in ``.pdf`` and stay under ``output_dir``. Only ``data:`` URLs and files
    under the work dir are fetched for images and stylesheets: tool code has no network, and a fetch must not hang.
    """
    if not isinstance(filename, str) or not filename.lower().endswith(".pdf"):
        raise ValueError("save_as_pdf: filename must end in .pdf")
    if os.path.isabs(filename):
        raise ValueError("save_as_pdf: filename must be relative to output_dir")
    root = Path(output_dir).resolve()
    target = (root / filename).resolve()
    if target == root or root not in target.parents:
        raise ValueError("save_as_pdf: filename must stay under output_dir")
    target.parent.mkdir(parents=True, exist_ok=True)

    import weasyprint  # imported on first use: it is heavy and most tools never make a PDF

    allowed = Path(os.environ.get("HOME") or root).resolve()

    def fetch(url: str, *args, **kwargs):
        if url.startswith("data:"):
            return weasyprint.default_url_fetcher(url, *args, **kwargs)
        if url.startswith("file://"):
            path = Path(url[len("file://") :]).resolve()
            if path == allowed or allowed in path.parents:
                return weasyprint.default_url_fetcher(url, *args, **kwargs)
        raise ValueError(f"save_as_pdf fetches no external resources: {url[:80]}")

    weasyprint.HTML(string=str(html), base_url=str(root) + "/", url_fetcher=fetch).write_pdf(str(target))
    return str(target)
