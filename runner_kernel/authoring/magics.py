"""IPython magics of the authoring library (``%load_ext runner_kernel.authoring``). docs/authoring.md.

Line magics act on the notebook's tool: ``%skr_new "Title"``, ``%skr_open slug``, ``%skr_preview [sample]``,
``%skr_validate``, ``%skr_save [--force]``, ``%skr_submit``, ``%skr_versions``, ``%skr_diff``, ``%skr_lock``,
``%skr_status``. Cell magics start the tagged cells (``%%skr_source``, ``%%skr_input_schema``,
``%%skr_settings_schema``, ``%%skr_sample``, ``%%skr_tool``, ``%%skr_test``): running such a cell registers its
text (so an edit counts without saving the notebook) and checks it at once; tool code never runs here.
"""

from __future__ import annotations

import html
import shlex

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.display import HTML, display

from skriptoteket_ext.contract import validate_input_schema, validate_settings_schema

from .library import Authoring
from .notebook_format import (
    INPUT_SCHEMA,
    SAMPLE,
    SETTINGS_SCHEMA,
    SOURCE,
    TEST,
    TOOL,
    NotebookFormatError,
    _check_meta,
    _check_sample,
    _literal,
)
from .service import AuthoringError


def _note(ok: bool, text: str) -> None:
    cls = "skr-cell-ok" if ok else "skr-cell-issues"
    display(HTML(f'<div class="{cls}" style="color:{"#26722b" if ok else "#a3261c"}">{text}</div>'))


def _issues_html(issues, prefix: str) -> str:
    return "<ul>" + "".join(f"<li><code>{html.escape(prefix + i.path)}</code>: {html.escape(i.to_dict().get('message', ''))}</li>"
                            for i in issues) + "</ul>"


@magics_class
class AuthoringMagics(Magics):
    def __init__(self, shell, skr: Authoring):
        super().__init__(shell)
        self.skr = skr

    # ---- tagged cells --------------------------------------------------------------------------------------

    @cell_magic
    def skr_source(self, line, cell):
        self.skr.register(SOURCE, cell)
        try:
            compile(cell, "tool.py", "exec", dont_inherit=True)
        except SyntaxError as exc:
            caret = " " * max(0, (exc.offset or 1) - 1) + "^"
            _note(False, f"Syntax error, line {exc.lineno}: {html.escape(exc.msg)}<pre>{html.escape(exc.text or '')}{caret}</pre>")
            return
        _note(True, f"✓ source registered ({len(cell.splitlines())} lines). Tool code runs only in the preview's sandbox.")

    def _schema(self, tag, cell, check, field, allow_null):
        self.skr.register(tag, cell)
        try:
            value = _literal(cell, field)
        except NotebookFormatError as exc:
            _note(False, html.escape(str(exc)))
            return
        if value is None and allow_null:
            _note(True, f"✓ {field}: none")
            return
        issues = check(value)
        if issues:
            _note(False, f"{len(issues)} issue(s) in {field}:" + _issues_html(issues, f"/{field}"))
        else:
            _note(True, f"✓ {field} registered ({len(value) if isinstance(value, list) else 0} fields)")

    @cell_magic
    def skr_input_schema(self, line, cell):
        self._schema(INPUT_SCHEMA, cell, validate_input_schema, "input_schema", False)

    @cell_magic
    def skr_settings_schema(self, line, cell):
        self._schema(SETTINGS_SCHEMA, cell, validate_settings_schema, "settings_schema", True)

    @cell_magic
    def skr_tool(self, line, cell):
        self.skr.register(TOOL, cell)
        try:
            meta = _check_meta(_literal(cell, "skr-tool"), "skr-tool")
        except NotebookFormatError as exc:
            _note(False, html.escape(str(exc)))
            return
        _note(True, f"✓ tool “{html.escape(meta['title'])}” ({html.escape(meta['slug'])})")

    @cell_magic
    def skr_sample(self, line, cell):
        self.skr.register(SAMPLE, cell)
        try:
            value = _literal(cell, "skr-sample")
            samples = [_check_sample(s, "skr-sample") for s in (value if isinstance(value, list) else [value])]
        except NotebookFormatError as exc:
            _note(False, html.escape(str(exc)))
            return
        _note(True, "✓ samples: " + ", ".join(html.escape(s["name"]) for s in samples))

    @cell_magic
    def skr_test(self, line, cell):
        """Registers the test; with a preview in this kernel, runs it against the preview's results now."""
        self.skr.register(TEST, cell)
        results = self.skr.preview_results()
        if not results:
            _note(True, "✓ test registered (it runs in <code>skriptoteket check</code>, or here after a preview)")
            return
        failed = [name for name, payload in results.items() if payload.get("status") != "succeeded"]
        if failed:
            _note(False, "test not run: the last preview of " + ", ".join(map(html.escape, failed)) + " failed")
            return
        namespace = {"results": results, "artifacts": {}, "runs": {}}
        try:
            exec(compile(cell, "<skr-test>", "exec"), namespace)  # noqa: S102 - the author's own test code
        except Exception as exc:  # noqa: BLE001 - a failing test is a message; "Run All" goes on to the preview
            _note(False, f"✗ test failed against the last preview: {html.escape(type(exc).__name__)}: "
                         f"{html.escape(str(exc) or 'assertion failed')}")
            return
        _note(True, f"✓ test passed against the last preview ({', '.join(map(html.escape, results))})")

    # ---- actions ---------------------------------------------------------------------------------------------

    @line_magic
    def skr_new(self, line):
        args = shlex.split(line)
        if not args:
            print('Usage: %skr_new "Title of the tool" ["summary"]')
            return
        return self.skr.create_tool(args[0], args[1] if len(args) > 1 else "")

    @line_magic
    def skr_open(self, line):
        args = shlex.split(line)
        if not args:
            print("Usage: %skr_open slug-or-id [version-id]")
            return
        return self.skr.open(args[0], version=int(args[1]) if len(args) > 1 else None)

    @line_magic
    def skr_preview(self, line):
        arg = line.strip()
        sample = None if arg == "--empty" else (int(arg) if arg.isdigit() else (arg or 0))
        self.skr.preview(sample)  # the view is displayed; the app is skr.previews[-1]

    @line_magic
    def skr_validate(self, line):
        self.skr.validate()

    @line_magic
    def skr_save(self, line):
        self.skr.save(force="--force" in line)
        display(self.skr.lock_widget())

    @line_magic
    def skr_submit(self, line):
        self.skr.submit()

    @line_magic
    def skr_versions(self, line):
        self.skr.versions()

    @line_magic
    def skr_diff(self, line):
        self.skr.diff()

    @line_magic
    def skr_lock(self, line):
        if line.strip() == "release":
            self.skr.release_lock()
        else:
            self.skr.acquire_lock()
        display(self.skr.lock_widget())

    @line_magic
    def skr_status(self, line):
        self.skr.status()


def _show_refusal(shell, etype, value, tb, tb_offset=None):
    """Authoring refusals are messages for the author, not program errors: no traceback."""
    display(HTML(f'<div class="skr-refusal" style="color:#a3261c;border-left:4px solid #a3261c;padding:4px 8px">'
                 f"{html.escape(str(value))}</div>"))
    return None


def register(shell, skr: Authoring) -> None:
    shell.register_magics(AuthoringMagics(shell, skr))
    shell.set_custom_exc((AuthoringError, NotebookFormatError), _show_refusal)
