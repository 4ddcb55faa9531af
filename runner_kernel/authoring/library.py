"""The authoring library: one ``Authoring`` object (``skr`` in a notebook) per kernel. docs/authoring.md.

Where a tool's content comes from: the authoring notebook's tagged cells (docs/authoring-format.md). A kernel
cannot read unsaved cells in JupyterLab, so the content is the notebook *file* (saved with Ctrl-S, or by
JupyterLab's autosave), overlaid by every tagged cell the author has *run* since the file was last written: the
tagged code cells begin with a cell magic (``%%skr_source``, ``%%skr_input_schema``, ...) that registers the
cell's text in this kernel when it runs. So "run the cell" (Shift-Enter) or "save the notebook" both make an
edit count; ``skr.status()`` says which cell came from where.

The expected-parent guard: ``skr.open()`` and every ``skr.save()`` remember the version the notebook's content
is based on (in the kernel, and as ``base_version`` in the skr-tool cell of a pulled notebook). A save names
it; if someone else saved meanwhile, the service refuses (409 ``head_moved``) and this library says so, leaves
every cell as it is and explains the choices (look at the diff; ``skr.save(force=True)`` to save on top).
"""

from __future__ import annotations

import difflib
import html
import json
import os
import shutil
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat

from skriptoteket_ext.contract import validate_input_schema, validate_settings_schema

from .notebook_format import (
    INPUT_SCHEMA,
    SAMPLE,
    SETTINGS_SCHEMA,
    SOURCE,
    TAGS,
    TEST,
    TOOL,
    NotebookFormatError,
    ToolNotebook,
    parse_tool_notebook,
    tool_notebook_node,
)
from .service import AuthoringAPI, AuthoringError

STARTER = Path(__file__).resolve().parents[2] / "notebooks" / "starter.ipynb"
LOCK_RENEW_SECONDS = 240  # the service's lock lasts 10 minutes; renewed while the author is active
ACTIVE_WINDOW_SECONDS = 600  # "editing" = a registered cell, a save, a preview or a validate in the last 10 min
PREVIEW_CELL = "%skr_preview"


class HeadMoved(AuthoringError):
    """Someone saved the draft after this notebook's base version; nothing was saved, no cell was changed."""


def _when(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).astimezone().strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError):
        return str(value or "")


def _pretty(value: Any) -> list[str]:
    return [] if value is None else (json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True) + "\n").splitlines(True)


def _lines(value: str | None) -> list[str]:
    return [] if not value else (value if value.endswith("\n") else value + "\n").splitlines(True)


def content_diff(old: dict | None, new: dict, old_name: str, new_name: str) -> dict[str, str]:
    """Unified diffs per content field (the same rendering as the service's review diff)."""
    out = {}
    for field in ("source", "entrypoint", "input_schema", "settings_schema", "usage_instructions"):
        render = _pretty if field.endswith("_schema") else _lines
        a = render((old or {}).get(field)) if old else []
        b = render(new.get(field))
        out[field] = "".join(difflib.unified_diff(a, b, f"{old_name}/{field}", f"{new_name}/{field}"))
    return out


def schema_issues(tool: ToolNotebook, lang: str = "en") -> list[dict]:
    """Schema and source problems of a notebook's tool: ``[{path, message, code}]`` with JSON pointers
    (``/input_schema/0/options``) exactly as the service reports them on save."""
    issues = []
    for field, schema, check in (("input_schema", tool.input_schema, validate_input_schema),
                                 ("settings_schema", tool.settings_schema, validate_settings_schema)):
        for issue in check(schema):
            item = issue.to_dict(lang)
            issues.append({"path": f"/{field}{issue.path}", "message": item.get("message", ""), "code": item.get("code")})
    try:
        compile(tool.source, "tool.py", "exec", dont_inherit=True)
    except SyntaxError as exc:
        issues.append({"path": "/source", "code": "syntax_error",
                       "message": f"line {exc.lineno}, column {exc.offset}: {exc.msg}"})
    except ValueError as exc:
        issues.append({"path": "/source", "code": "syntax_error", "message": str(exc)})
    entry = tool.meta.get("entrypoint") or "run_tool"
    if f"def {entry}(" not in tool.source:
        issues.append({"path": "/entrypoint", "code": "entrypoint_missing",
                       "message": f"the source defines no function {entry}(input_dir, output_dir)"})
    return issues


class Authoring:
    """The notebook's authoring session. In JupyterLab: ``%load_ext runner_kernel.authoring`` gives ``skr``."""

    def __init__(self, api: AuthoringAPI | None = None, *, notebook: str | os.PathLike | None = None,
                 lang: str = "en"):
        self._api = api
        self.lang = lang
        self.notebook = Path(notebook) if notebook else None
        self.registered: dict[str, tuple[str, float]] = {}  # tag -> (cell text, when it ran)
        self.parent: dict[int, int | None] = {}  # tool id -> the version this kernel's content is based on
        self.origin: dict[str, str] = {}  # tag -> "file" | "cell run at HH:MM:SS" (from the last read)
        self.last_activity = 0.0
        self.lock_state: dict = {}
        self._lock_view = None
        self._renewer: threading.Thread | None = None
        self._stop = threading.Event()
        self._lock_tool: int | None = None
        self.previews: list = []

    @property
    def api(self) -> AuthoringAPI:
        if self._api is None:
            self._api = AuthoringAPI(lang=self.lang)
        return self._api

    # ------------------------------------------------------------------------------------- the notebook

    def notebook_path(self) -> Path | None:
        if self.notebook:
            return self.notebook
        session = os.environ.get("JPY_SESSION_NAME")
        return Path(session) if session and session.endswith(".ipynb") else None

    def use_notebook(self, path: str | os.PathLike) -> None:
        """Read the tool from this notebook file (default: the notebook this kernel belongs to)."""
        self.notebook = Path(path)

    def register(self, tag: str, text: str) -> None:
        """A tagged cell ran (its cell magic): its text counts from now on, until the file is newer."""
        if tag not in TAGS:
            raise ValueError(f"unknown authoring tag {tag!r}")
        self.registered[tag] = (text, time.time())
        self.touch()

    def touch(self) -> None:
        self.last_activity = time.time()

    def current(self) -> ToolNotebook:
        """The tool as the author sees it now: the saved notebook, overlaid by cells run since it was saved."""
        path = self.notebook_path()
        node = None
        mtime = 0.0
        if path is not None and path.exists():
            node = nbformat.read(str(path), as_version=4)
            mtime = path.stat().st_mtime
        if node is None:
            if not self.registered:
                raise NotebookFormatError(
                    "No authoring notebook: save this notebook (Ctrl-S) or run its tagged cells first"
                    + (f" (looked for {path})" if path else "") + ".")
            node = nbformat.v4.new_notebook()
        self.origin = {}
        seen = set()
        for cell in node.cells:
            tags = [t for t in (cell.metadata.get("tags") or []) if t in TAGS]
            if not tags or tags[0] in seen:
                continue
            tag = tags[0]
            seen.add(tag)
            self.origin[tag] = "saved notebook"
            if tag in self.registered and self.registered[tag][1] > mtime:
                text, when = self.registered[tag]
                cell.source = text
                self.origin[tag] = "cell run at " + datetime.fromtimestamp(when).strftime("%H:%M:%S")
        for tag, (text, when) in self.registered.items():  # run, but not in the saved file yet
            if tag not in seen and when > mtime:
                cell = nbformat.v4.new_code_cell(text)
                cell.metadata["tags"] = [tag]
                node.cells.append(cell)
                self.origin[tag] = "cell run at " + datetime.fromtimestamp(when).strftime("%H:%M:%S")
        tool = parse_tool_notebook(node, name=path.name if path else "notebook")
        tool.path = path.resolve() if path else Path.cwd() / "notebook.ipynb"
        return tool

    def status(self) -> dict:
        """Where each part of the tool comes from, the tool, its base version and the lock."""
        tool = self.current()
        tid = tool.meta.get("id")
        info = {"notebook": str(self.notebook_path()), "tool_id": tid, "slug": tool.slug,
                "base_version": self._base(tool), "parts": dict(self.origin), "lock": self.lock_state}
        print(json.dumps(info, indent=2, ensure_ascii=False, default=str))
        return info

    # ------------------------------------------------------------------------------------- tools

    def create_tool(self, title: str, summary: str = "", professions=(), categories=(), *,
                    path: str | os.PathLike | None = None) -> Path:
        """A new tool (you become its owner and maintainer) and a new authoring notebook for it, from the starter
        template. Returns the notebook's path."""
        tool = self.api.create_tool(title, summary, professions, categories)
        template = parse_tool_notebook(nbformat.read(str(STARTER), as_version=4), name=STARTER.name)
        template.meta.update({"id": tool["id"], "slug": tool["slug"], "title": tool["title"],
                              "summary": tool["summary"] or template.meta.get("summary", ""),
                              "professions": tool["professions"], "categories": tool["categories"],
                              "base_version": None})
        template.meta.pop("curated", None)
        target = self._new_path(path, tool["slug"])
        node = tool_notebook_node(template, base=nbformat.read(str(STARTER), as_version=4), preview=PREVIEW_CELL)
        _add_cell_magics(node)
        nbformat.write(node, str(target))
        for sample in template.samples:  # the starter's sample files go next to the new notebook
            for rel in sample["files"]:
                source, copy = STARTER.parent / rel, target.parent / rel
                if source.is_file() and not copy.exists():
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, copy)
        self.parent[tool["id"]] = None
        self._announce(target, f"Created the tool “{tool['title']}” ({tool['slug']}).")
        return target

    def open(self, ref: str | int, *, version: int | None = None, path: str | os.PathLike | None = None) -> Path:
        """Pull a tool into a NEW authoring notebook: the draft head (the newest version), or ``version``.
        Nothing existing is overwritten (``<slug>-2.ipynb`` if ``<slug>.ipynb`` exists). Takes the draft lock."""
        tool = self.api.find_tool(ref)
        tid = tool["id"]
        if version is None:
            brief = tool.get("head") or tool.get("active_version")
            version = brief["id"] if brief else None
        content = self.api.version(tid, version) if version else {
            "source": "def run_tool(input_dir, output_dir):\n    return {'outputs': []}\n", "entrypoint": "run_tool",
            "input_schema": [], "settings_schema": None, "usage_instructions": None}
        meta = {"id": tid, "slug": tool["slug"], "title": tool["title"], "summary": tool.get("summary") or "",
                "professions": tool.get("professions", []), "categories": tool.get("categories", []),
                "entrypoint": content.get("entrypoint") or "run_tool", "base_version": version}
        nb = ToolNotebook(meta=meta, source=content["source"] or "", input_schema=content.get("input_schema") or [],
                          settings_schema=content.get("settings_schema"),
                          instructions=content.get("usage_instructions"), samples=[], tests=[])
        target = self._new_path(path, tool["slug"])
        node = tool_notebook_node(nb, intro=(
            f"# {tool['title']}\n\nPulled from Skriptoteket: version {content.get('version_no', '–')} "
            f"({content.get('state', 'new')}). Edit the tagged cells, run them (Shift-Enter) or save (Ctrl-S), "
            "then `%skr_preview`, `skr.save()`, `skr.submit()`. See docs/authoring.md."), preview=PREVIEW_CELL)
        _add_cell_magics(node)
        node.cells.insert(1, nbformat.v4.new_code_cell("%load_ext runner_kernel.authoring"))
        nbformat.write(node, str(target))
        self.parent[tid] = version
        self._announce(target, f"Opened “{tool['title']}” at version {content.get('version_no', '–')}.")
        try:
            self.acquire_lock(tid)
        except AuthoringError as exc:
            print(f"Read-only: {exc}")
        return target

    def _new_path(self, path, slug: str) -> Path:
        if path:
            target = Path(path)
            if target.exists():
                raise AuthoringError(0, "exists", f"{target} exists already; choose another path (nothing was overwritten).")
            return target
        base = (self.notebook_path() or Path.cwd() / "x").parent
        target, n = base / f"{slug}.ipynb", 2
        while target.exists():
            target, n = base / f"{slug}-{n}.ipynb", n + 1
        return target

    @staticmethod
    def _announce(path: Path, text: str) -> None:
        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/")
        root = Path(os.environ.get("SKRIPTOTEKET_LAB_ROOT", os.getcwd())).resolve()
        try:
            rel = path.resolve().relative_to(root).as_posix()
        except ValueError:
            rel = path.name
        _display_html(f'<div class="skr-authoring-note">{html.escape(text)} Notebook: '
                      f'<a href="{html.escape(prefix)}lab/tree/{html.escape(rel)}" target="_blank">{html.escape(rel)}</a></div>',
                      f"{text} Notebook: {path}")

    def _tool_id(self, tool: ToolNotebook) -> int:
        tid = tool.meta.get("id")
        if isinstance(tid, int):
            return tid
        return self.api.find_tool(tool.slug)["id"]

    def _base(self, tool: ToolNotebook) -> int | None:
        tid = tool.meta.get("id")
        if isinstance(tid, int) and tid in self.parent:
            return self.parent[tid]
        return tool.meta.get("base_version")

    # ------------------------------------------------------------------------------------- checking

    def validate(self, *, show: bool = True) -> list[dict]:
        """Schema and source issues of the notebook's tool, with JSON-pointer paths (``[]``: all good)."""
        self.touch()
        tool = self.current()
        issues = schema_issues(tool, self.lang)
        if show:
            if issues:
                rows = "".join(f"<li><code>{html.escape(i['path'])}</code>: {html.escape(i['message'])}</li>" for i in issues)
                _display_html(f'<div class="skr-validate skr-validate-issues"><b>{len(issues)} issue(s)</b><ul>{rows}</ul></div>',
                              "\n".join(f"{i['path']}: {i['message']}" for i in issues))
            else:
                _display_html('<div class="skr-validate skr-validate-ok">✓ The schemas and the source are valid.</div>',
                              "The schemas and the source are valid.")
        return issues

    # ------------------------------------------------------------------------------------- saving

    def save(self, *, force: bool = False) -> dict:
        """Save the notebook's content as a new draft version, naming the version it is based on. If someone
        saved meanwhile the service refuses and nothing changes here (``HeadMoved``); ``force=True`` saves on
        top of the current head after you have looked at what changed."""
        self.touch()
        tool = self.current()
        tid = self._tool_id(tool)
        parent = self._base(tool)
        if force:
            head = self.api.tool(tid).get("head")
            parent = head["id"] if head else None
        if not (self.lock_state.get("mine") and self.lock_state.get("tool_id") == tid):
            self.acquire_lock(tid)  # editing takes the draft lock (someone else's: refused, read-only)
        self._sync_metadata(tid, tool)
        try:
            version = self.api.save_draft(tid, tool.version_content(), parent)
        except AuthoringError as exc:
            if exc.code == "head_moved":
                raise self._head_moved(tid, parent, exc) from None
            raise
        self.parent[tid] = version["id"]
        self._lock_started(tid)
        print(f"Saved version {version['version_no']} (draft, id {version['id']}) of {tool.slug}.")
        return version

    def _head_moved(self, tid: int, parent: int | None, exc: AuthoringError) -> HeadMoved:
        head_id = exc.details.get("head")
        who = ""
        if head_id:
            try:
                head = self.api.version(tid, head_id)
                who = f" (version {head['version_no']}, saved by {head['created_by']} at {_when(head['created_at'])})"
            except AuthoringError:
                pass
        return HeadMoved(409, "head_moved", (
            f"Not saved: the draft changed since this notebook's base version {parent}{who}. "
            "Your cells are unchanged. Look at what changed with skr.diff(version=" + str(head_id) + ", against="
            + str(parent) + "), or open it with skr.open(" + str(tid) + ") in a new notebook; to save your text "
            "on top of it anyway, run skr.save(force=True)."), {"head": head_id, "expected_parent": parent})

    def _sync_metadata(self, tid: int, tool: ToolNotebook) -> None:
        """Title, summary and taxonomy from the skr-tool cell (the slug is the reviewers' to set)."""
        current = self.api.tool(tid)
        changes = {k: tool.meta[k] for k in ("title", "summary", "professions", "categories")
                   if k in tool.meta and tool.meta[k] != current.get(k)}
        if changes:
            try:
                self.api.update_tool(tid, changes)
            except AuthoringError as exc:
                print(f"Note: the tool's metadata was not changed ({exc}).")

    def submit(self) -> dict:
        """Submit the saved draft (the head) for review. The notebook must have no unsaved changes."""
        self.touch()
        tool = self.current()
        tid = self._tool_id(tool)
        head = self.api.tool(tid).get("head")
        if head is None:
            raise AuthoringError(0, "nothing_saved", "Nothing to submit: save a draft first (skr.save()).")
        saved = self.api.version(tid, head["id"])
        if any(saved.get(k) != v for k, v in tool.version_content().items()):
            raise AuthoringError(0, "unsaved_changes",
                                 "The notebook differs from the saved draft: save it first (skr.save()), then submit.")
        version = self.api.submit(tid, head["id"])
        print(f"Version {version['version_no']} of {tool.slug} is now waiting for review.")
        return version

    def versions(self, *, show: bool = True) -> list[dict]:
        tool = self.current()
        rows = self.api.versions(self._tool_id(tool))
        if show:
            body = "".join(
                f"<tr><td>{v['version_no']}</td><td>{v['id']}</td><td>{html.escape(v['state'])}</td>"
                f"<td>{html.escape(str(v['created_by']))}</td><td>{_when(v['created_at'])}</td>"
                f"<td>{html.escape(v.get('change_message') or '')}</td></tr>" for v in rows)
            _display_html('<table class="skr-versions"><tr><th>no</th><th>id</th><th>state</th><th>by</th>'
                          f'<th>when</th><th>reviewer\'s message</th></tr>{body}</table>',
                          "\n".join(f"v{v['version_no']} {v['state']} id={v['id']}" for v in rows))
        return rows

    def diff(self, *, version: int | None = None, against: int | None = None, show: bool = True) -> dict[str, str]:
        """What changes against the active version (``against``: another version): by default the notebook's
        current content, or a saved ``version``."""
        tool = self.current()
        tid = self._tool_id(tool)
        info = self.api.tool(tid)
        if against is None and info.get("active_version"):
            against = info["active_version"]["id"]
        old = self.api.version(tid, against) if against else None
        old_name = f"v{old['version_no']} ({old['state']})" if old else "(no active version)"
        if version:
            new = self.api.version(tid, version)
            new_name = f"v{new['version_no']} ({new['state']})"
        else:
            new, new_name = tool.version_content(), "notebook"
        diffs = content_diff(old, new, old_name, new_name)
        if show:
            text = "".join(d for d in diffs.values() if d) or f"No differences between {new_name} and {old_name}."
            _display_html(f'<pre class="skr-diff">{html.escape(text)}</pre>', text)
        return diffs

    # ------------------------------------------------------------------------------------- the draft lock

    def acquire_lock(self, tool_id: int | None = None) -> dict:
        tid = tool_id if tool_id is not None else self._tool_id(self.current())
        self.touch()
        try:
            lock = self.api.acquire_lock(tid)
        except AuthoringError as exc:
            self.lock_state = {"tool_id": tid, "mine": False, "message": str(exc)}
            try:
                self.lock_state["holder"] = (self.api.lock(tid) or {}).get("holder")
            except AuthoringError:
                pass
            self._draw_lock()
            raise
        self._lock_started(tid, lock)
        return lock

    def _lock_started(self, tid: int, lock: dict | None = None) -> None:
        if lock is None:
            try:
                lock = self.api.lock(tid)
            except AuthoringError:
                lock = None
        me = self.api_user()
        if lock and lock.get("holder") == me:
            self.lock_state = {"tool_id": tid, "mine": True, "holder": me, "expires_at": lock.get("expires_at")}
            self._lock_tool = tid
            self._start_renewer()
        elif lock:
            self.lock_state = {"tool_id": tid, "mine": False, "holder": lock.get("holder"),
                               "expires_at": lock.get("expires_at")}
        self._draw_lock()

    def api_user(self) -> str | None:
        if not hasattr(self, "_me"):
            try:
                self._me = self.api.me()["name"]
            except AuthoringError:
                return None
        return self._me

    def release_lock(self) -> None:
        self._stop.set()
        if self._lock_tool is not None:
            try:
                self.api.release_lock(self._lock_tool)
            except AuthoringError as exc:
                print(f"The lock was not released: {exc}")
            self.lock_state = {"tool_id": self._lock_tool, "mine": False, "holder": None, "released": True}
            self._lock_tool = None
            self._draw_lock()

    def _start_renewer(self) -> None:
        if self._renewer is not None and self._renewer.is_alive():
            return
        self._stop = threading.Event()

        def renew() -> None:
            while not self._stop.wait(LOCK_RENEW_SECONDS):
                tid = self._lock_tool
                if tid is None:
                    return
                if time.time() - self.last_activity > ACTIVE_WINDOW_SECONDS:
                    self.lock_state = {**self.lock_state, "idle": True}
                    self._draw_lock()
                    continue  # not editing: let it lapse (the next save or run takes it again)
                try:
                    lock = self.api.acquire_lock(tid)
                    self.lock_state = {"tool_id": tid, "mine": True, "holder": lock.get("holder"),
                                       "expires_at": lock.get("expires_at")}
                except AuthoringError as exc:
                    self.lock_state = {"tool_id": tid, "mine": False, "message": str(exc)}
                self._draw_lock()

        self._renewer = threading.Thread(target=renew, name="skr-lock-renewal", daemon=True)
        self._renewer.start()

    def lock_widget(self):
        """A small widget that shows the draft lock (yours and until when, or who else is editing)."""
        import ipywidgets as widgets

        if self._lock_view is None:
            self._lock_view = widgets.HTML()
            self._lock_view.add_class("skr-lock-state")
        self._draw_lock()
        return self._lock_view

    def _draw_lock(self) -> None:
        if self._lock_view is None:
            return
        s = self.lock_state
        if not s:
            text = "🔓 No draft lock yet (saving or opening takes it)."
        elif s.get("mine"):
            text = f"🔒 You are editing this draft (lock until {_when(s.get('expires_at'))[-5:]}, renewed while you work)"
            if s.get("idle"):
                text += " — idle, it will lapse"
        elif s.get("released"):
            text = "🔓 Lock released."
        else:
            text = f"👀 Read-only: {s.get('holder') or 'someone'} is editing this draft." + (
                f" ({s['message']})" if s.get("message") else "")
        self._lock_view.value = f'<span class="skr-lock {"skr-lock-mine" if s.get("mine") else "skr-lock-other"}">{html.escape(text)}</span>'

    # ------------------------------------------------------------------------------------- preview

    def snapshot(self, tool: ToolNotebook | None = None) -> dict:
        """Store the notebook's current content as a sandbox snapshot (24 h) and return it."""
        tool = tool or self.current()
        tid = self._tool_id(tool)
        return self.api.snapshot(tid, tool.version_content(), base_version_id=self._base(tool))

    def preview(self, sample: str | int | None = 0, *, run: bool = True):
        """Render the tool as a teacher will see it, running the notebook's unsaved content in the sandbox with
        a sample's inputs and files (``sample``: name or index; ``None``: an empty form). See preview.py."""
        from .preview import start_preview

        self.touch()
        view = start_preview(self, sample=sample, run=run)
        self.previews.append(view)
        return view

    def preview_results(self) -> dict[str, dict]:
        """The normalized payloads of the samples run by this kernel's previews (the latest per sample)."""
        for view in reversed(self.previews):  # the latest preview that ran samples
            if getattr(view, "sample_results", None):
                return dict(view.sample_results)
        return {}


def _add_cell_magics(node) -> None:
    """Give tagged code cells their registering cell magic (``%%skr_source`` ...) as the first line."""
    names = {SOURCE: "skr_source", INPUT_SCHEMA: "skr_input_schema", SETTINGS_SCHEMA: "skr_settings_schema",
             SAMPLE: "skr_sample", TOOL: "skr_tool", TEST: "skr_test"}
    for cell in node.cells:
        tags = [t for t in (cell.metadata.get("tags") or []) if t in names]
        if tags and cell.cell_type == "code" and not cell.source.lstrip().startswith("%%"):
            cell.source = f"%%{names[tags[0]]}\n{cell.source}"


def _display_html(markup: str, text: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        if get_ipython() is not None:
            display(HTML(markup))
            return
    except ImportError:
        pass
    print(text)
