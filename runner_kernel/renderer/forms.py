"""Forms for ``input_schema``, ``settings_schema`` and action fields (contract §4), as ipywidgets.

A ``Form`` only draws fields and reads them back. Everything the page sends is checked in the kernel with the
contract's own rules (``normalize_inputs``, the upload caps) before anything leaves it: widget values come from
the browser, so they are untrusted input like any request body.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

import ipywidgets as widgets

from skriptoteket_ext.contract.caps import DEFAULT_CAPS, Caps
from skriptoteket_ext.contract.inputs import normalize_inputs
from skriptoteket_ext.contract.issues import Issue, pointer
from skriptoteket_ext.contract.models import field_label, field_name, file_bounds, is_number
from skriptoteket_ext.i18n import normalize_language, translator

from ._shared import html, shared
from .markup import css_token, esc, human_size

CHECKBOX_LIMIT = 12  # multi_enum with up to this many options is a column of checkboxes, else a SelectMultiple


class _FieldView(widgets.VBox):
    """One field: label, input widget, hints and its error line. Knows whether the user has changed it."""

    def __init__(self, field: dict, _, lang: str, caps: Caps):
        self.field, self.kind, self.name = field, field.get("kind"), field_name(field)
        self._, self.lang, self.caps = _, lang, caps
        self.touched = False
        self._setting = False
        self.input = self._build_input()
        self.error = html("")
        self.error.add_class("skr-field-error")
        parts = [] if self.kind == "boolean" else [html(self._label_html())]
        parts += [self.input]
        hint = self._hint_html()
        if hint:
            parts.append(html(hint))
        if self.kind == "file":
            self.file_list = html("")
            self.file_list.add_class("skr-file-list")
            parts.append(self.file_list)
        super().__init__(children=parts + [self.error], layout=shared(widgets.Layout))
        self.add_class("skr-field")
        self.add_class(f"skr-field-{self.kind}")
        self.add_class(f"skr-field-name-{css_token(self.name)}")
        for widget in self._value_widgets():
            widget.observe(self._changed, names="value")

    # --- building ---

    def _label_html(self) -> str:
        marker = (f'<abbr class="skr-required" title="{esc(self._("renderer.required"))}">*</abbr>'
                  if self.field.get("required") is True else "")
        return f'<label class="skr-label">{esc(field_label(self.field))}{marker}</label>'

    def _hint_html(self) -> str:
        _, field = self._, self.field
        hints = [field["help"]] if isinstance(field.get("help"), str) and field["help"].strip() else []
        low, high = field.get("min"), field.get("max")
        if self.kind in ("integer", "number"):
            if is_number(low) and is_number(high):
                hints.append(_("renderer.range", min=low, max=high))
            elif is_number(low):
                hints.append(_("renderer.range_min", min=low))
            elif is_number(high):
                hints.append(_("renderer.range_max", max=high))
        if self.kind in ("string", "text") and isinstance(field.get("max_length"), int):
            hints.append(_("renderer.max_length", max_length=field["max_length"]))
        if self.kind == "file" and self.accept:
            hints.append(_("renderer.accept", accept=", ".join(self.accept)))
        return "".join(f'<div class="skr-help">{esc(h)}</div>' for h in hints)

    def _build_input(self) -> widgets.Widget:
        field, kind = self.field, self.kind
        placeholder = field.get("placeholder") if isinstance(field.get("placeholder"), str) else ""
        if kind == "text":
            widget = widgets.Textarea(placeholder=placeholder, rows=5)
        elif kind in ("string", "integer", "number"):
            # integers and numbers are text boxes: IntText/FloatText cannot be empty, and blank means "omitted"
            widget = widgets.Text(placeholder=placeholder)
        elif kind == "boolean":
            label = field_label(field) + (" *" if field.get("required") is True else "")
            widget = widgets.Checkbox(description=label, indent=False, value=False)
        elif kind == "enum":
            options = [(o["label"], o["value"]) for o in _options(field)]
            # an empty choice unless the field is required and has a default: no silent "first option" answer
            if not (field.get("required") is True and field.get("default") is not None):
                options.insert(0, (self._("renderer.choose"), None))
            widget = widgets.Dropdown(options=options, value=options[0][1])
        elif kind == "multi_enum":
            options = _options(field)
            if len(options) <= CHECKBOX_LIMIT:
                self.checkboxes = [widgets.Checkbox(description=o["label"], indent=False, value=False)
                                   for o in options]
                widget = widgets.VBox(self.checkboxes, layout=shared(widgets.Layout))
                widget.add_class("skr-checkbox-group")
            else:
                widget = widgets.SelectMultiple(options=[(o["label"], o["value"]) for o in options],
                                                rows=min(8, len(options)))
        elif kind == "file":
            self.accept = [a for a in field.get("accept") or () if isinstance(a, str)]
            _low, high = file_bounds(field, self.caps.upload_max_files)
            widget = widgets.FileUpload(accept=",".join(self.accept), multiple=high > 1,
                                        description=self._("renderer.upload" if high > 1 else "renderer.upload_one"))
            widget.style.button_color = None
        else:  # unknown kinds never pass the schema check; show nothing rather than fail
            widget = html("")
        widget.add_class("skr-input")
        if kind != "file":
            self.accept = []
        return widget

    def _value_widgets(self) -> list[widgets.Widget]:
        return list(getattr(self, "checkboxes", None) or [self.input])

    def _changed(self, change) -> None:
        if not self._setting:
            self.touched = True
            if self.kind == "file":
                self.show_files()

    # --- values ---

    def get(self) -> Any:
        kind, widget = self.kind, self.input
        if kind == "multi_enum":
            if hasattr(self, "checkboxes"):
                return [o["value"] for o, box in zip(_options(self.field), self.checkboxes) if box.value]
            return list(widget.value)
        if kind == "file" or isinstance(widget, widgets.HTML):
            return None
        return widget.value

    def set(self, value: Any) -> bool:
        """Set an initial value (a default, a saved value or a prefill); False if it does not fit the field."""
        kind, options = self.kind, [o["value"] for o in _options(self.field)]
        if kind in ("string", "text") and isinstance(value, str):
            new = value
        elif kind in ("integer", "number") and is_number(value):
            new = str(value)
        elif kind == "boolean" and isinstance(value, bool):
            new = value
        elif kind == "enum" and value in options:
            new = value
        elif kind == "multi_enum" and isinstance(value, (list, tuple)):
            new = [v for v in options if v in value]
        else:
            return False
        self._setting = True
        try:
            if kind == "multi_enum" and hasattr(self, "checkboxes"):
                for option, box in zip(options, self.checkboxes):
                    box.value = option in new
            else:
                self.input.value = tuple(new) if kind == "multi_enum" else new
        finally:
            self._setting = False
        return True

    def files(self) -> tuple[list[dict], int]:
        """The chosen files as ``{name, bytes, content}`` and how many entries could not be read.

        Never trusts the browser's ``size`` or a path in ``name``: sizes are measured, names reduced to a base name.
        """
        files, broken = [], 0
        for entry in self.input.value if self.kind == "file" else ():
            try:
                name, content = entry["name"], entry["content"]
            except (KeyError, TypeError, IndexError):
                broken += 1
                continue
            if not isinstance(name, str) or not isinstance(content, (bytes, bytearray, memoryview)):
                broken += 1
                continue
            data = bytes(content)
            files.append({"name": safe_name(name), "bytes": len(data), "content": data})
        return files, broken

    def file_issues(self, files: list[dict], broken: int, *, count: bool = False) -> list[Issue]:
        """Accept, per-file size and total size; with ``count``, also the field's (and the cap's) maximum."""
        _, caps, path = self._, self.caps, pointer(self.name)
        issues = [Issue(path, "renderer.file.unreadable")] if broken else []
        if count:  # validate() leaves this to normalize_inputs, which says the same
            _low, high = file_bounds(self.field, caps.upload_max_files)  # never above the upload cap
            if len(files) > high:
                issues.append(Issue(path, "contract.input.files_too_many",
                                    {"label": field_label(self.field), "count": len(files), "max": high}))
        for f in files:
            if self.accept and not accepted(f["name"], self.accept):
                issues.append(Issue(path, "renderer.file.type", {"name": f["name"], "accept": ", ".join(self.accept)}))
            if f["bytes"] > caps.upload_file_bytes:
                issues.append(Issue(path, "renderer.file.too_large", {
                    "name": f["name"], "size": human_size(f["bytes"], self.lang),
                    "limit": human_size(caps.upload_file_bytes, self.lang)}))
        total = sum(f["bytes"] for f in files)
        if total > caps.upload_run_bytes:
            issues.append(Issue(path, "renderer.file.total_too_large", {
                "size": human_size(total, self.lang), "limit": human_size(caps.upload_run_bytes, self.lang)}))
        return issues

    def show_files(self) -> None:
        """After a pick: list the files and flag what the kernel will refuse, before the user presses Run."""
        files, broken = self.files()
        self.file_list.value = "".join(
            f'<div class="skr-file">{esc(f["name"])} <span class="skr-file-size">({esc(human_size(f["bytes"], self.lang))})</span></div>'
            for f in files)
        self.show_issues(self.file_issues(files, broken, count=True))

    def show_issues(self, issues: list) -> None:
        messages = [issue_message(issue, self.lang) for issue in issues]
        self.error.value = "".join(f'<div role="alert">{esc(m)}</div>' for m in messages)
        (self.add_class if messages else self.remove_class)("skr-field-invalid")

    def set_disabled(self, disabled: bool) -> None:
        for widget in self._value_widgets():
            widget.disabled = disabled


def issue_path(issue: Any) -> str:
    path = issue.get("path") if isinstance(issue, dict) else getattr(issue, "path", "")
    return path if isinstance(path, str) else ""


def issue_message(issue: Any, lang: str) -> str:
    if isinstance(issue, Issue):
        return issue.translated(lang)
    return str(issue.get("message", "")) if isinstance(issue, dict) else str(issue)


def _options(field: dict) -> list[dict]:
    return [o for o in field.get("options") or () if isinstance(o, dict) and isinstance(o.get("value"), str)]


def safe_name(name: str) -> str:
    """A browser-given file name reduced to a plain base name (the service does the same, authoritatively)."""
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] if base not in ("", ".", "..") else "file"


def accepted(name: str, accept: list[str]) -> bool:
    """``accept`` entries are extensions (".csv") or MIME types ("text/csv", "image/*"). The type is guessed
    from the name in the kernel; the browser's claimed type is not trusted."""
    lower = name.lower()
    guessed = (mimetypes.guess_type(lower)[0] or "").lower()
    for entry in accept:
        entry = entry.strip().lower()
        if entry.startswith("."):
            if lower.endswith(entry):
                return True
        elif entry.endswith("/*"):
            if guessed.startswith(entry[:-1]):
                return True
        elif guessed and guessed == entry:
            return True
    return False


class Form(widgets.VBox):
    """A form over a list of fields.

    ``values`` (for example saved settings) and ``prefill`` (an action's) are initial values only, in that order
    of precedence over a field's ``default``. ``validate()`` returns ``(normalized, issues)`` and shows the issues.
    """

    def __init__(self, fields: list[dict] | None, *, values: dict | None = None, prefill: dict | None = None,
                 lang: str = "en", caps: Caps = DEFAULT_CAPS, settings: bool = False):
        self.lang = normalize_language(lang)
        self._ = translator(self.lang)
        self.caps, self.settings = caps, settings
        self.fields = [f for f in fields or () if isinstance(f, dict) and field_name(f)]
        self.views = {field_name(f): _FieldView(f, self._, self.lang, caps) for f in self.fields}
        values, prefill = values if isinstance(values, dict) else {}, prefill if isinstance(prefill, dict) else {}
        for name, view in self.views.items():
            for value in (values.get(name), prefill.get(name), view.field.get("default")):
                if view.set(value):  # the first that fits the field wins
                    break
        self.summary = html("")
        self.summary.add_class("skr-form-summary")
        super().__init__(children=[*self.views.values(), self.summary], layout=shared(widgets.Layout))
        self.add_class("skr-form")

    def values(self) -> dict[str, Any]:
        """The raw widget values by field name (files excluded): not yet checked, see ``validate``."""
        return {name: view.get() for name, view in self.views.items() if view.kind != "file"}

    def files(self) -> list[dict]:
        """Uploaded files, ``[{"name", "bytes", "content"}]`` in upload order; unreadable entries are skipped."""
        view = self._file_view()
        return view.files()[0] if view else []

    def _file_view(self) -> _FieldView | None:
        return next((v for v in self.views.values() if v.kind == "file"), None)

    def apply_prefill(self, prefill: dict) -> None:
        """New initial values (e.g. a re-rendered action): fields the user has already edited keep their value."""
        for name, value in (prefill or {}).items():
            view = self.views.get(name)
            if view is not None and not view.touched:
                view.set(value)

    def validate(self, *, reused_files: int = 0) -> tuple[dict[str, Any], list[Issue]]:
        """Check everything in the kernel. ``reused_files``: session files this run will get instead of uploads
        (they count towards the file field's min/max)."""
        view = self._file_view()
        files, broken = view.files() if view else ([], 0)
        count = len(files) + broken + max(0, int(reused_files))
        normalized, issues = normalize_inputs(self.fields, self.values(), count, settings=self.settings,
                                              caps=self.caps)
        if view:
            issues += view.file_issues(files, broken)
        self.show_issues(issues)
        return normalized, issues

    def show_issues(self, issues: list) -> None:
        """Each issue next to its field (pointer ``/<name>``), and all of them in a summary under the form.

        Takes the contract's ``Issue`` objects or the service's ``{"path", "message"}`` dicts (a 422 response)."""
        by_field: dict[str, list] = {name: [] for name in self.views}
        for issue in issues:
            path = issue_path(issue)
            name = path[1:].replace("~1", "/").replace("~0", "~") if path.startswith("/") else None
            if name in by_field:
                by_field[name].append(issue)
        for name, view in self.views.items():
            view.show_issues(by_field[name])
        if issues:
            items = "".join(f"<li>{esc(issue_message(issue, self.lang))}</li>" for issue in issues)
            self.summary.value = (f'<div class="skr-form-issues" role="alert">{esc(self._("renderer.form.summary"))}'
                                  f"<ul>{items}</ul></div>")
        else:
            self.summary.value = ""

    @property
    def disabled(self) -> bool:
        return getattr(self, "_disabled", False)

    @disabled.setter
    def disabled(self, value: bool) -> None:
        self._disabled = bool(value)
        for view in self.views.values():
            view.set_disabled(self._disabled)
