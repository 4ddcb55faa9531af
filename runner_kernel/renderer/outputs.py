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
from ._shared import html, is_shared, shared
from .forms import Form
from .markup import (artifacts_html, css_token, json_html, markdown_html, notice_html, sandboxed_iframe_html,
                     svg_img_html, table_html)
from .style import stylesheet

ArtifactUrl = Callable[[dict], "str | None"]
OnAction = Callable[[str, dict], Any]


def output_part(output: dict, _, lang: str) -> tuple[tuple[str, ...], str] | None:
    """One output of §3 as (CSS classes, markup); None for a kind this renderer does not know (the normalizer
    never lets one through)."""
    kind = output.get("kind")
    classes = ("skr-output", f"skr-output-{css_token(str(kind))}")
    if kind == "notice":
        return classes, notice_html(output.get("level", "info"), str(output.get("message", "")),
                                    system=output.get("system") is True)
    if kind == "markdown":
        return classes, markdown_html(str(output.get("markdown", "")))
    if kind == "table":
        return classes, table_html(output.get("title"), output.get("columns") or [], output.get("rows") or [], _)
    if kind == "json":
        return classes, json_html(output.get("title"), output.get("value"), _)
    if kind == "html_sandboxed":
        return classes, sandboxed_iframe_html(str(output.get("html", "")), _("renderer.html.title"))
    if kind == "vega_lite":
        svg = charts.to_svg(output.get("spec"))
        if svg is not None:
            return classes, svg_img_html(svg, _("renderer.chart.title"))
        markup = notice_html("info", _("renderer.chart.unavailable"))
        data = charts.data_table(output.get("spec"))
        if data is not None:
            markup += table_html(None, data[0], data[1], _, extra_class=" skr-chart-data")
        return (*classes, "skr-chart-fallback"), markup
    return None


def payload_parts(payload: dict, _, lang: str, artifact_url: ArtifactUrl | None) -> list[tuple[tuple[str, ...], str]]:
    """Everything of a result but its actions, in order, as (CSS classes, markup): the error summary of a failed
    run, each output, the artifact links."""
    parts = []
    status = payload.get("status")
    if status in ("failed", "timed_out"):
        message = payload.get("error_summary") or _(f"renderer.status.{status}")
        parts.append((("skr-output", "skr-run-error"), notice_html("error", str(message))))
    for output in payload.get("outputs") or ():
        part = output_part(output, _, lang) if isinstance(output, dict) else None
        if part is not None:
            parts.append(part)
    artifacts = [a for a in payload.get("artifacts") or () if isinstance(a, dict)]
    if artifacts:
        items = [(a, artifact_url(a) if artifact_url else None) for a in artifacts]
        missing = "renderer.artifact.expired" if artifact_url else "renderer.artifact.unavailable"
        parts.append((("skr-artifacts-box",), artifacts_html(items, _, lang, missing=missing)))
    return parts


def close_tree(widget: widgets.Widget) -> None:
    """Close a widget, its descendants and their layout/style models (a replaced subtree would otherwise stay
    in the kernel and the page for as long as the page is open)."""
    for child in getattr(widget, "children", ()):
        close_tree(child)
    for part in (getattr(widget, "layout", None), getattr(widget, "style", None)):
        if isinstance(part, widgets.Widget) and not is_shared(part):
            part.close()
    widget.close()


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
        super().__init__(children=[c for c in (self.form, self.button) if c is not None], layout=shared(widgets.Layout),
                         _dom_classes=("skr-action", f"skr-action-{css_token(self.action_id)}"))

    def set_disabled(self, disabled: bool) -> None:
        self.button.disabled = disabled
        if self.form is not None:
            self.form.disabled = disabled


class PayloadView(widgets.VBox):
    """The rendered result. ``disabled`` turns its actions off (a replay, or while a run is in flight).

    Everything but the actions is one HTML widget (``content``), each part in a ``<div>`` with its classes
    (``parts``): a run's result is one widget message for the page instead of three models per output.
    ``show()`` draws the next result into the same view."""

    def __init__(self, payload: dict, *, lang: str = "en", artifact_url: ArtifactUrl | None = None,
                 on_action: OnAction | None = None, disabled: bool = False, caps: Caps = DEFAULT_CAPS,
                 style: bool = True):
        self.lang = normalize_language(lang)
        self.caps = caps
        self.busy = False
        self._disabled = bool(disabled)
        self.actions: dict[str, ActionView] = {}
        self.actions_box: widgets.VBox | None = None
        self.head = [stylesheet()] if style else []
        self.content = html("", "skr-outputs")
        super().__init__(children=[*self.head, self.content], layout=shared(widgets.Layout))
        self.show(payload, artifact_url=artifact_url, on_action=on_action, disabled=disabled)

    def show(self, payload: dict, *, artifact_url: ArtifactUrl | None = None, on_action: OnAction | None = None,
             disabled: bool = False) -> None:
        """Draw ``payload`` in place of the current result."""
        self.payload = payload if isinstance(payload, dict) else {}
        self.on_action = on_action
        self.busy = False
        _ = translator(self.lang)
        self.parts = payload_parts(self.payload, _, self.lang, artifact_url)
        old_box = self.actions_box
        self.actions = {}
        for action in self.payload.get("next_actions") or ():
            if isinstance(action, dict) and action.get("action_id"):
                view = ActionView(action, lang=self.lang, caps=self.caps, on_submit=self._submit)
                self.actions[view.action_id] = view
        self.actions_box = (widgets.VBox(list(self.actions.values()), _dom_classes=("skr-actions",),
                                         layout=shared(widgets.Layout))
                            if self.actions else None)
        self.content.value = "".join(f'<div class="{" ".join(classes)}">{markup}</div>'
                                     for classes, markup in self.parts)
        with self.hold_sync():
            if old_box is not None or self.actions_box is not None:
                self.children = [*self.head, self.content, *([self.actions_box] if self.actions_box else [])]
            self._dom_classes = ("skr-result", f"skr-status-{css_token(str(self.payload.get('status')))}")
        if old_box is not None:
            close_tree(old_box)
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
