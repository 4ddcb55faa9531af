"""Read and write authoring notebooks (docs/authoring-format.md): cells tagged ``skr-*`` hold one tool.

Pure: notebook JSON in, dataclasses out (nbformat only for writing and for converting old formats); nothing is
executed (JSON cells are read with ``json.loads`` or ``ast.literal_eval``). Used by the authoring library, ``skriptoteket check``, ``skriptoteket seed`` and the
bank's tests.

    tool = read_tool_notebook("notebooks/bank/group-maker.ipynb")
    tool.meta["slug"], tool.source, tool.input_schema, tool.settings_schema, tool.instructions
    tool.version_content()          # the body of a "save draft" (source, entrypoint, schemas, instructions)
    tool.samples                    # [{"name", "inputs", "files", "settings", "actions", "expect"}, ...]
    tool.sample_path("samples/x.csv")  # a sample file, resolved against the notebook's directory
    failures = check_expect(sample["expect"], payload)   # [] when a run met its sample's expectations
    errors = run_test_cells(tool, results, artifacts)    # run the skr-test cells; [] when all passed
    write_tool_notebook(path, tool)  # the same format back (a new notebook, or cells replaced in place)

Sample runs and test cells: a sample is one first run (``inputs``, ``files``, ``settings``) followed by its
``actions`` in order, each given the state of the run before. ``results[name]`` is the normalized payload of the
sample's *last* run, ``runs[name]`` the list of all its payloads (first run first), and ``artifacts[name]`` the
files of all its runs (``{relative path under output/: bytes}``; a later run's file replaces an earlier one).
"""

from __future__ import annotations

import ast
import json
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import nbformat

__all__ = [
    "TAGS",
    "NotebookFormatError",
    "ToolNotebook",
    "check_expect",
    "parse_tool_notebook",
    "read_tool_notebook",
    "run_test_cells",
    "tool_notebook_node",
    "write_tool_notebook",
]

TOOL, SOURCE, INPUT_SCHEMA, SETTINGS_SCHEMA = "skr-tool", "skr-source", "skr-input-schema", "skr-settings-schema"
INSTRUCTIONS, SAMPLE, TEST, PREVIEW = "skr-instructions", "skr-sample", "skr-test", "skr-preview"
TAGS = (TOOL, SOURCE, INPUT_SCHEMA, SETTINGS_SCHEMA, INSTRUCTIONS, SAMPLE, TEST, PREVIEW)
SINGLE = (TOOL, SOURCE, INPUT_SCHEMA, SETTINGS_SCHEMA)  # at most one cell each (tool and source: exactly one)

META_DEFAULTS = {"summary": "", "professions": [], "categories": [], "curated": False, "entrypoint": "run_tool"}
SAMPLE_KEYS = {"name", "inputs", "files", "settings", "actions", "expect"}


class NotebookFormatError(ValueError):
    """The notebook does not follow the format; the message names the notebook and the cell."""


@dataclass
class ToolNotebook:
    meta: dict  # slug, title, summary, professions, categories, curated, entrypoint (defaults filled in)
    source: str
    input_schema: list = field(default_factory=list)
    settings_schema: list | None = None
    instructions: str | None = None
    samples: list[dict] = field(default_factory=list)  # each with every key of SAMPLE_KEYS
    tests: list[str] = field(default_factory=list)  # the skr-test cells' code, in notebook order
    path: Path | None = None  # where it was read from (sample files are relative to its directory)

    @property
    def slug(self) -> str:
        return self.meta["slug"]

    def version_content(self) -> dict:
        """The tool version this notebook describes, as the service's save-draft body takes it."""
        return {
            "source": self.source,
            "entrypoint": self.meta.get("entrypoint") or "run_tool",
            "input_schema": self.input_schema,
            "settings_schema": self.settings_schema,
            "usage_instructions": self.instructions,
        }

    def tool_metadata(self) -> dict:
        """The tool's catalog metadata, as the service's create/PATCH body takes it."""
        return {k: self.meta[k] for k in ("title", "summary", "professions", "categories")}

    def sample_path(self, relative: str) -> Path:
        """A sample file named in ``files``, relative to the notebook's directory (never outside it)."""
        base = (self.path.parent if self.path else Path.cwd()).resolve()
        target = (base / relative).resolve()
        if base not in target.parents:
            raise NotebookFormatError(f"sample file {relative!r} is outside the notebook's directory")
        return target


# ------------------------------------------------------------------------------------------------- reading


def read_tool_notebook(path: str | Path) -> ToolNotebook:
    """Read an authoring notebook from disk. Raises NotebookFormatError (or OSError) if it cannot."""
    path = Path(path)
    try:
        node = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise NotebookFormatError(f"{path.name}: not a notebook ({err})") from err
    if not isinstance(node, dict) or not isinstance(node.get("cells", []), list):
        raise NotebookFormatError(f"{path.name}: not a notebook")
    if node.get("nbformat") != 4:  # older formats: let nbformat convert them (v4 is read as plain JSON: fast)
        import nbformat

        node = nbformat.reads(json.dumps(node), as_version=4)
    tool = parse_tool_notebook(node, name=path.name)
    tool.path = path.resolve()
    return tool


def parse_tool_notebook(node: "nbformat.NotebookNode | dict", name: str = "notebook") -> ToolNotebook:
    """The tool in an in-memory notebook (what ``read_tool_notebook`` does after reading the file)."""
    found: dict[str, list[tuple[int, Any]]] = {tag: [] for tag in TAGS}
    for number, cell in enumerate(node.get("cells", []), start=1):
        tags = [t for t in (cell.get("metadata", {}).get("tags") or []) if t in TAGS]
        if len(tags) > 1:
            raise NotebookFormatError(f"{name}, cell {number}: more than one skr- tag ({', '.join(tags)})")
        if not tags:
            continue
        tag = tags[0]
        wanted = "markdown" if tag == INSTRUCTIONS else "code"
        if cell.get("cell_type") != wanted:
            raise NotebookFormatError(f"{name}, cell {number}: a {tag} cell must be a {wanted} cell")
        found[tag].append((number, _cell_text(cell)))

    for tag in SINGLE:
        if len(found[tag]) > 1:
            raise NotebookFormatError(f"{name}: more than one {tag} cell (cells {[n for n, _ in found[tag]]})")
    for tag in (TOOL, SOURCE):
        if not found[tag]:
            raise NotebookFormatError(f"{name}: no {tag} cell")

    where = lambda tag, n: f"{name}, cell {n} ({tag})"  # noqa: E731
    number, text = found[TOOL][0]
    meta = _check_meta(_literal(text, where(TOOL, number)), where(TOOL, number))
    source = found[SOURCE][0][1]
    if not source.strip():
        raise NotebookFormatError(f"{where(SOURCE, found[SOURCE][0][0])}: the source is empty")

    input_schema: Any = []
    if found[INPUT_SCHEMA]:
        number, text = found[INPUT_SCHEMA][0]
        input_schema = _literal(text, where(INPUT_SCHEMA, number))
        if not isinstance(input_schema, list):
            raise NotebookFormatError(f"{where(INPUT_SCHEMA, number)}: the input schema must be a list")
    settings_schema: Any = None
    if found[SETTINGS_SCHEMA]:
        number, text = found[SETTINGS_SCHEMA][0]
        settings_schema = _literal(text, where(SETTINGS_SCHEMA, number))
        if settings_schema is not None and not isinstance(settings_schema, list):
            raise NotebookFormatError(f"{where(SETTINGS_SCHEMA, number)}: the settings schema must be a list or null")

    instructions = "\n\n".join(text.strip() for _, text in found[INSTRUCTIONS] if text.strip()) or None

    samples: list[dict] = []
    for number, text in found[SAMPLE]:
        value = _literal(text, where(SAMPLE, number))
        for sample in value if isinstance(value, list) else [value]:
            samples.append(_check_sample(sample, where(SAMPLE, number)))
    names = [s["name"] for s in samples]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise NotebookFormatError(f"{name}: sample names must be unique ({', '.join(duplicates)})")

    return ToolNotebook(meta=meta, source=source, input_schema=input_schema, settings_schema=settings_schema,
                        instructions=instructions, samples=samples, tests=[text for _, text in found[TEST]])


def _cell_text(cell) -> str:
    text = cell.get("source", "")
    if isinstance(text, list):
        text = "".join(text)
    if cell.get("cell_type") == "code" and text.lstrip().startswith("%"):
        first, _, rest = text.lstrip().partition("\n")
        if first.startswith("%%") or first.startswith("%skr"):
            text = rest
    return text


def _literal(text: str, where: str):
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
        raise NotebookFormatError(f"{where}: not JSON or a Python literal ({err})") from None


def _check_meta(meta: Any, where: str) -> dict:
    if not isinstance(meta, dict):
        raise NotebookFormatError(f"{where}: the tool metadata must be a dict")
    for key in ("slug", "title"):
        if not isinstance(meta.get(key), str) or not meta[key].strip():
            raise NotebookFormatError(f"{where}: {key!r} is required (a non-empty string)")
    meta = {**META_DEFAULTS, **meta}
    for key in ("professions", "categories"):
        if not isinstance(meta[key], list) or not all(isinstance(s, str) for s in meta[key]):
            raise NotebookFormatError(f"{where}: {key!r} must be a list of slugs")
    if not isinstance(meta["curated"], bool):
        raise NotebookFormatError(f"{where}: 'curated' must be true or false")
    if not isinstance(meta["summary"], str) or not isinstance(meta["entrypoint"], str):
        raise NotebookFormatError(f"{where}: 'summary' and 'entrypoint' must be strings")
    return meta


def _check_sample(sample: Any, where: str) -> dict:
    if not isinstance(sample, dict) or not isinstance(sample.get("name"), str) or not sample["name"]:
        raise NotebookFormatError(f"{where}: every sample is an object with a non-empty 'name'")
    unknown = sorted(set(sample) - SAMPLE_KEYS)
    if unknown:
        raise NotebookFormatError(f"{where}: sample {sample['name']!r} has unknown keys {unknown}")
    out = {"name": sample["name"], "inputs": sample.get("inputs") or {}, "files": sample.get("files") or [],
           "settings": sample.get("settings") or {}, "actions": sample.get("actions") or [],
           "expect": sample.get("expect") or {}}
    shapes = {"inputs": dict, "files": list, "settings": dict, "actions": list, "expect": dict}
    for key, kind in shapes.items():
        if not isinstance(out[key], kind):
            raise NotebookFormatError(f"{where}: sample {sample['name']!r}: {key!r} must be a {kind.__name__}")
    if not all(isinstance(f, str) for f in out["files"]):
        raise NotebookFormatError(f"{where}: sample {sample['name']!r}: 'files' are relative paths")
    for action in out["actions"]:
        if not isinstance(action, dict) or not isinstance(action.get("action_id"), str):
            raise NotebookFormatError(f"{where}: sample {sample['name']!r}: every action needs an 'action_id'")
        action.setdefault("input", {})
    return out


# ------------------------------------------------------------------------------------ checking sample runs


def check_expect(expect: dict, payload: dict) -> list[str]:
    """What a run's normalized payload does not meet of a sample's ``expect`` (``[]`` when it meets all).

    ``status``: the payload's status. ``outputs_kinds``: the kinds of all outputs, in order (system notices
    included, so an unexpected one is caught). ``artifacts``: the set of artifact paths relative to output/.
    """
    problems = []
    if "status" in expect and payload.get("status") != expect["status"]:
        problems.append(f"status is {payload.get('status')!r}, expected {expect['status']!r}"
                        + (f" ({payload.get('error_summary')})" if payload.get("error_summary") else ""))
    if "outputs_kinds" in expect:
        kinds = [o.get("kind") for o in payload.get("outputs", [])]
        if kinds != list(expect["outputs_kinds"]):
            problems.append(f"output kinds are {kinds}, expected {list(expect['outputs_kinds'])}")
    if "artifacts" in expect:
        paths = sorted(a["path"].removeprefix("output/") for a in payload.get("artifacts", []))
        if paths != sorted(expect["artifacts"]):
            problems.append(f"artifacts are {paths}, expected {sorted(expect['artifacts'])}")
    return problems


def run_test_cells(tool: ToolNotebook, results: dict, artifacts: dict, runs: dict | None = None) -> list[str]:
    """Execute the notebook's skr-test cells in one namespace with ``results``, ``artifacts`` and ``runs``.

    Returns one message per failing cell (its number among the test cells and the assertion or error);
    ``[]`` when every cell passed. This executes the author's test code in the calling process: use it on
    notebooks you trust (the bank, your own), as ``skriptoteket check`` does for its author.
    """
    namespace = {"results": results, "artifacts": artifacts, "runs": runs if runs is not None else {}}
    failures = []
    for number, code in enumerate(tool.tests, start=1):
        try:
            exec(compile(code, f"<{tool.slug} skr-test {number}>", "exec"), namespace)  # noqa: S102
        except Exception as err:  # noqa: BLE001 - every failure of a test cell is reported, not raised
            detail = "".join(traceback.format_exception_only(type(err), err)).strip()
            lines = [ln for ln in traceback.format_exc().splitlines() if f"skr-test {number}>" in ln]
            failures.append(f"skr-test cell {number}: {detail}" + (f" [{lines[-1].strip()}]" if lines else ""))
    return failures


# ------------------------------------------------------------------------------------------------- writing


def _json(value) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def tool_notebook_node(tool: ToolNotebook, *, intro: str | None = None, preview: str | None = None,
                       base: "nbformat.NotebookNode | None" = None) -> "nbformat.NotebookNode":
    """The notebook for ``tool``. With ``base``, its tagged cells are replaced in place (untagged prose and
    scratch cells are kept; missing ones are appended); otherwise a new notebook in the standard order:
    ``intro`` (Markdown, untagged), tool, instructions, source, input schema, settings schema, samples, tests,
    and ``preview`` (the preview cell's code) if given."""
    import nbformat

    meta = {k: tool.meta[k] for k in ("slug", "title", "summary", "professions", "categories", "curated",
                                      "entrypoint") if k in tool.meta}
    meta.update({k: v for k, v in tool.meta.items() if k not in meta})
    code, md = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell
    tagged: list[tuple[str, Any]] = [(TOOL, code(_json(meta)))]
    if tool.instructions:
        tagged.append((INSTRUCTIONS, md(tool.instructions)))
    tagged += [(SOURCE, code(tool.source)), (INPUT_SCHEMA, code(_json(tool.input_schema))),
               (SETTINGS_SCHEMA, code(_json(tool.settings_schema)))]
    if tool.samples:
        tagged.append((SAMPLE, code(_json(tool.samples))))
    tagged += [(TEST, code(t)) for t in tool.tests]
    if preview:
        tagged.append((PREVIEW, code(preview)))
    for tag, cell in tagged:
        cell.metadata["tags"] = [tag]

    if base is None:
        node = nbformat.v4.new_notebook()
        node.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        node.metadata["language_info"] = {"name": "python"}
        node.cells = ([md(intro)] if intro else []) + [cell for _, cell in tagged]
        return node

    node = nbformat.from_dict(json.loads(json.dumps(base)))
    queue: dict[str, list] = {}
    for tag, cell in tagged:
        queue.setdefault(tag, []).append(cell)
    cells = []
    for cell in node.cells:
        tags = [t for t in (cell.metadata.get("tags") or []) if t in TAGS]
        if not tags:
            cells.append(cell)
        elif queue.get(tags[0]):
            cells.append(queue[tags[0]].pop(0))
    cells += [c for tag, _ in tagged for c in queue.pop(tag, [])]
    node.cells = cells
    return node


def write_tool_notebook(path: str | Path, tool: ToolNotebook, *, intro: str | None = None,
                        preview: str | None = None) -> Path:
    """Write ``tool`` to ``path``. An existing notebook keeps its untagged cells (see ``tool_notebook_node``)."""
    import nbformat

    path = Path(path)
    base = nbformat.read(str(path), as_version=4) if path.exists() else None
    node = tool_notebook_node(tool, intro=None if base else intro, preview=preview, base=base)
    nbformat.validate(node)
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(node, str(path))
    return path
