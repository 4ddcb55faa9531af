"""``render_payload``: a normalized result (contract §2–§4) → one ipywidgets tree. No I/O.

The same call draws a live result, a replay from "My runs" and the author's preview; the caller supplies the
artifact URLs and what an action click does.
"""

from __future__ import annotations

from typing import Any, Callable

import ipywidgets as widgets

from skriptoteket_ext.contract.caps import DEFAULT_CAPS, Caps
from skriptoteket_ext.i18n import normalize_language, translator

from . import charts
from ._calls import call_then
from .forms import Form
from .markup import (artifacts_html, css_token, json_html, markdown_html, notice_html, sandboxed_iframe_html,
                     svg_img_html, table_html)
from .style import stylesheet

ArtifactUrl = Callable[[dict], "str | None"]
OnAction = Callable[[str, dict], Any]


def _html(markup: str, *classes: str) -> widgets.HTML:
    # classes in the constructor: one comm message per widget instead of one more per class
    return widgets.HTML(markup, _dom_classes=classes)


def render_output(output: dict, _, lang: str) -> widgets.Widget | None:
    """One output of §3; None for a kind this renderer does not know (the normalizer never lets one through)."""
    kind = output.get("kind")
    classes = ("skr-output", f"skr-output-{css_token(str(kind))}")
    if kind == "notice":
        return _html(notice_html(output.get("level", "info"), str(output.get("message", "")),
                                 system=output.get("system") is True), *classes)
    if kind == "markdown":
        return _html(markdown_html(str(output.get("markdown", ""))), *classes)
    if kind == "table":
        return _html(table_html(output.get("title"), output.get("columns") or [], output.get("rows") or [], _),
                     *classes)
    if kind == "json":
        return _html(json_html(output.get("title"), output.get("value"), _), *classes)
    if kind == "html_sandboxed":
        return _html(sandboxed_iframe_html(str(output.get("html", "")), _("renderer.html.title")), *classes)
    if kind == "vega_lite":
        return _chart(output.get("spec"), _, classes)
    return None


def _chart(spec: Any, _, classes: tuple[str, ...]) -> widgets.Widget:
    svg = charts.to_svg(spec)
    if svg is not None:
        return _html(svg_img_html(svg, _("renderer.chart.title")), *classes)
    markup = notice_html("info", _("renderer.chart.unavailable"))
    data = charts.data_table(spec)
    if data is not None:
        markup += table_html(None, data[0], data[1], _, extra_class=" skr-chart-data")
    return _html(markup, *classes, "skr-chart-fallback")


class ActionView(widgets.VBox):
    """One of ``next_actions``: its fields as a Form (if any) and a button that submits them."""

    def __init__(self, action: dict, *, lang: str, caps: Caps, on_submit: Callable[["ActionView"], None]):
        self.action = action
        self.action_id = str(action.get("action_id", ""))
        fields = action.get("fields") or []
        self.form = Form(fields, prefill=action.get("prefill"), lang=lang, caps=caps) if fields else None
        self.button = widgets.Button(description=str(action.get("label") or self.action_id),
                                     _dom_classes=("skr-action-button",))
        self.button.on_click(lambda _b: on_submit(self))
        super().__init__(children=[c for c in (self.form, self.button) if c is not None],
                         _dom_classes=("skr-action", f"skr-action-{css_token(self.action_id)}"))

    def set_disabled(self, disabled: bool) -> None:
        self.button.disabled = disabled
        if self.form is not None:
            self.form.disabled = disabled


class PayloadView(widgets.VBox):
    """The rendered result. ``disabled`` turns its actions off (a replay, or while a run is in flight)."""

    def __init__(self, payload: dict, *, lang: str = "en", artifact_url: ArtifactUrl | None = None,
                 on_action: OnAction | None = None, disabled: bool = False, caps: Caps = DEFAULT_CAPS,
                 style: bool = True):
        self.payload = payload if isinstance(payload, dict) else {}
        self.lang = normalize_language(lang)
        _ = translator(self.lang)
        self.on_action = on_action
        self.busy = False
        children: list[widgets.Widget] = [stylesheet()] if style else []

        status = self.payload.get("status")
        if status in ("failed", "timed_out"):
            message = self.payload.get("error_summary") or _(f"renderer.status.{status}")
            children.append(_html(notice_html("error", str(message)), "skr-output", "skr-run-error"))
        for output in self.payload.get("outputs") or ():
            widget = render_output(output, _, self.lang) if isinstance(output, dict) else None
            if widget is not None:
                children.append(widget)

        artifacts = [a for a in self.payload.get("artifacts") or () if isinstance(a, dict)]
        if artifacts:
            items = [(a, artifact_url(a) if artifact_url else None) for a in artifacts]
            missing = "renderer.artifact.expired" if artifact_url else "renderer.artifact.unavailable"
            children.append(_html(artifacts_html(items, _, self.lang, missing=missing), "skr-artifacts-box"))

        self.actions = {}
        for action in self.payload.get("next_actions") or ():
            if isinstance(action, dict) and action.get("action_id"):
                view = ActionView(action, lang=self.lang, caps=caps, on_submit=self._submit)
                self.actions[view.action_id] = view
        if self.actions:
            children.append(widgets.VBox(list(self.actions.values()), _dom_classes=("skr-actions",)))

        super().__init__(children=children, _dom_classes=("skr-result", f"skr-status-{css_token(str(status))}"))
        self.disabled = disabled

    @property
    def disabled(self) -> bool:
        return self._disabled

    @disabled.setter
    def disabled(self, value: bool) -> None:
        self._disabled = bool(value)
        for view in self.actions.values():
            view.set_disabled(self._disabled or self.busy or self.on_action is None)

    def _submit(self, view: ActionView) -> None:
        """Button click: validate in the kernel, then ``on_action(action_id, normalized)``; one action at a time."""
        if self.busy or self._disabled or self.on_action is None:
            return
        values, issues = view.form.validate() if view.form is not None else ({}, [])
        if issues:
            return
        self._set_busy(True)
        call_then(self.on_action, (view.action_id, values), lambda _result, _error: self._set_busy(False))

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.disabled = self._disabled


def render_payload(payload: dict, *, lang: str = "en", artifact_url: ArtifactUrl | None = None,
                   on_action: OnAction | None = None, disabled: bool = False, caps: Caps = DEFAULT_CAPS,
                   style: bool = True) -> PayloadView:
    """Draw a normalized payload. ``artifact_url(artifact)`` gives a download URL or None (expired);
    ``on_action(action_id, values)`` gets kernel-validated values and may return an awaitable — the actions
    stay disabled until it has finished. ``style=False`` leaves out the stylesheet (when the page has it)."""
    return PayloadView(payload, lang=lang, artifact_url=artifact_url, on_action=on_action, disabled=disabled,
                       caps=caps, style=style)
