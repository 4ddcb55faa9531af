"""Small pieces the Voila tool app composes around a result. Each takes callbacks and does no I/O itself.

Callbacks may be plain functions or return an awaitable; a piece that starts work (run, save, clear) stays
disabled until the callback has finished, so a second click cannot send a second request.
"""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any, Callable

import ipywidgets as widgets

from skriptoteket_ext.contract.caps import DEFAULT_CAPS, Caps
from skriptoteket_ext.i18n import normalize_language, translator

from ._calls import call_then
from ._shared import html, shared
from .forms import Form
from .markup import css_token, esc, human_size

SESSION_FILE_CHOICES = ("none", "reuse", "clear")


class _BusyButton(widgets.HBox):
    """A button that calls ``callback()`` and is disabled, with a status text, until the call has finished.
    ``status=False`` leaves out the status text (the button's own label and spinner say it is running)."""

    def __init__(self, callback: Callable[[], Any], label: str, busy_label: str, css_class: str, *,
                 status: bool = True):
        self.callback, self.label, self.busy_label, self.css_class = callback, label, busy_label, css_class
        self.running = False
        self.locked = False  # stays disabled whatever the calls do (a page whose session moved on)
        self.button = widgets.Button(description=label, _dom_classes=(css_class,))
        self.button.on_click(lambda _b: self.click())
        self.status = html("", "skr-busy-status") if status else None
        super().__init__(children=[self.button, *([self.status] if status else [])], layout=shared(widgets.Layout),
                         _dom_classes=(f"{css_class}-box",))

    def click(self) -> None:
        """What a click does; ignored while a call is in flight (a double click, a second tab's replayed event)."""
        if self.running or self.button.disabled:
            return
        self._set_running(True)
        call_then(self.callback, (), self._done)

    def lock(self, locked: bool = True) -> None:
        self.locked = locked
        self.button.disabled = locked or self.running

    def _done(self, result: Any, error: BaseException | None) -> None:
        self._set_running(False)

    def _set_running(self, running: bool) -> None:
        self.running = running
        with self.button.hold_sync():  # one message for the three traits
            self.button.disabled = running or self.locked
            self.button.description = self.busy_label if running else self.label
            self.button._dom_classes = (self.css_class, "skr-running") if running else (self.css_class,)
        if self.status is not None:
            self.status.value = (f'<span class="skr-spinner" role="status">{esc(self.busy_label)}</span>'
                                 if running else "")


class RunButton(_BusyButton):
    """The "Run" button: ``on_run()`` starts a run; the button says "Running…" until it has returned (or its
    awaitable has completed), and cannot be pressed again meanwhile."""

    def __init__(self, on_run: Callable[[], Any], *, lang: str = "en", label: str | None = None,
                 status: bool = True):
        _ = translator(lang)
        super().__init__(on_run, label or _("renderer.run"), _("renderer.running"), "skr-run-button", status=status)


class ClearMemoryButton(_BusyButton):
    """"Clear memory": ``on_clear()`` removes the session (state, offered actions, files) in the service."""

    def __init__(self, on_clear: Callable[[], Any], *, lang: str = "en"):
        self._ = translator(lang)
        super().__init__(on_clear, self._("renderer.clear_memory"), self._("renderer.clear_memory"),
                         "skr-clear-memory")

    def _done(self, result: Any, error: BaseException | None) -> None:
        super()._done(result, error)
        if error is None:
            self.status.value = f'<span class="skr-done">{esc(self._("renderer.clear_memory.done"))}</span>'


class StepHistory(widgets.VBox):
    """The steps of this visit (first run and actions): label, time, status. Clicking one calls
    ``on_select(index, step)``, so the app can show that step's payload again (e.g. with ``disabled=True``).

    The step buttons share one layout and one style model: a new step is one widget for the page, not three."""

    def __init__(self, *, lang: str = "en", on_select: Callable[[int, dict], Any] | None = None):
        self._ = translator(lang)
        self.on_select = on_select
        self.steps: list[dict] = []
        self.current: int | None = None
        self.title = html(f'<div class="skr-steps-title">{esc(self._("renderer.history.title"))}</div>')
        self.items = widgets.VBox([], layout=shared(widgets.Layout))
        self.button_layout = widgets.Layout()
        self.button_style = widgets.ButtonStyle()
        super().__init__(children=[self.title, self.items], _dom_classes=("skr-steps",),
                         layout=widgets.Layout(display="none"))  # nothing to show before the first step

    def add(self, label: str | None = None, *, status: str = "running", payload: dict | None = None,
            at: datetime | None = None, current: bool = False) -> int:
        """A new step (``label`` None: the first run); returns its index, for ``update``. ``current``: it is
        the result on screen now."""
        index = len(self.steps)
        step = {"label": label or self._("renderer.history.first"), "status": status, "payload": payload,
                "at": at or datetime.now()}
        self.steps.append(step)
        previous = self.current
        if current:
            self.current = index
        step["button"] = widgets.Button(**self._face(index), layout=self.button_layout, style=self.button_style)
        step["button"].on_click(lambda _b: self.select(index))
        self.items.children = (*self.items.children, step["button"])
        self.layout.display = None
        if current and previous is not None:
            self._draw(previous)
        return index

    def update(self, index: int, *, status: str | None = None, payload: dict | None = None) -> None:
        step = self.steps[index]
        if status is not None:
            step["status"] = status
        if payload is not None:
            step["payload"] = payload
        self._draw(index)

    def select(self, index: int) -> None:
        if not 0 <= index < len(self.steps):
            return
        previous, self.current = self.current, index
        for i in {previous, index} - {None}:
            self._draw(i)
        if self.on_select is not None and self.steps[index]["payload"] is not None:
            self.on_select(index, self.steps[index])

    def _face(self, index: int) -> dict:
        """The traits that show step ``index``: its label, time and status, and whether it is on screen."""
        step = self.steps[index]
        status = str(step["status"])
        status_text = self._(f"renderer.history.{status}") if status in (
            "running", "succeeded", "failed", "timed_out") else status
        description = f"{index + 1}. {step['label']} · {step['at']:%H:%M} · {status_text}"
        return {"description": description, "tooltip": description,
                "_dom_classes": ("skr-step", f"skr-step-{css_token(status)}",
                                 *(("skr-step-current",) if index == self.current else ()))}

    def _draw(self, index: int) -> None:
        button = self.steps[index]["button"]
        with button.hold_sync():  # one message instead of three
            for name, value in self._face(index).items():
                setattr(button, name, value)


class SettingsPanel(widgets.VBox):
    """A form over ``settings_schema`` with Save. ``on_save(values)`` gets kernel-validated values; it may
    return (or resolve to) a list of issues from the service (``{"path", "message"}``), shown in the form."""

    def __init__(self, schema: list[dict] | None, *, on_save: Callable[[dict], Any], values: dict | None = None,
                 lang: str = "en", caps: Caps = DEFAULT_CAPS):
        self.lang = normalize_language(lang)
        self._ = translator(self.lang)
        self.on_save = on_save
        self.form = Form(schema, values=values, lang=self.lang, caps=caps, settings=True)
        self.save = _BusyButton(self._submit, self._("renderer.settings.save"), self._("renderer.settings.save"),
                                "skr-settings-save")
        self.title = html(f'<div class="skr-settings-title">{esc(self._("renderer.settings.title"))}</div>')
        self.message = html("")
        self.message.add_class("skr-settings-message")
        super().__init__(children=[self.title, self.form, self.save, self.message], layout=shared(widgets.Layout))
        self.add_class("skr-settings")

    def _submit(self) -> Any:
        self.message.value = ""
        values, issues = self.form.validate()
        if issues:
            return None
        result = self.on_save(values)
        if inspect.isawaitable(result):
            async def wait() -> None:
                self._saved(await result)
            return wait()
        self._saved(result)
        return None

    def _saved(self, result: Any) -> None:
        if isinstance(result, list) and result:
            self.form.show_issues(result)
            return
        self.form.show_issues([])
        self.message.value = f'<span class="skr-done">{esc(self._("renderer.settings.saved"))}</span>'


class SessionFilesChooser(widgets.VBox):
    """Shown when a first run has no uploads but the session has files (contract §5): run with no files, reuse
    the session's files, or clear them. ``value`` is always one of "none", "reuse", "clear"."""

    def __init__(self, files: list[dict], *, lang: str = "en", value: str = "reuse"):
        self.lang = normalize_language(lang)
        _ = translator(self.lang)
        self.files = [f for f in files or () if isinstance(f, dict)]
        names = ", ".join(f"{f.get('name', '?')} ({human_size(int(f.get('bytes') or 0), self.lang)})"
                          for f in self.files[:5]) + (" …" if len(self.files) > 5 else "")
        prompt = html(f'<div class="skr-session-files-prompt">'
                              f'{esc(_("renderer.session_files.prompt", count=len(self.files), names=names))}</div>')
        self.choice = widgets.RadioButtons(
            options=[(_(f"renderer.session_files.{c}"), c) for c in SESSION_FILE_CHOICES],
            value=value if value in SESSION_FILE_CHOICES else "reuse")
        self.choice.add_class("skr-session-files-choice")
        super().__init__(children=[prompt, self.choice])
        self.add_class("skr-session-files")

    @property
    def value(self) -> str:
        value = self.choice.value
        return value if value in SESSION_FILE_CHOICES else "none"

    @property
    def reused_files(self) -> int:
        """How many files the run gets if it goes ahead now (for ``Form.validate(reused_files=…)``)."""
        return len(self.files) if self.value == "reuse" else 0

    @staticmethod
    def needed(session_files: list | None, uploads: int) -> bool:
        return bool(session_files) and uploads == 0
