"""Layout and style models shared by the renderer's HTML pieces.

Every ipywidgets widget brings its own Layout model and, for most kinds, a style model: three models for the
kernel to send and the page to create per widget. The HTML pieces (labels, hints, errors, outputs, status lines)
keep the defaults and never change them, so within a kernel they share one Layout and one HTMLStyle
(docs/renderer.md, "Few widget messages per run"). A widget whose layout is changed later (``layout.display``)
keeps its own.
"""

from __future__ import annotations

import ipywidgets as widgets
from ipywidgets.widgets.widget_string import HTMLStyle

_models: dict[type, widgets.Widget] = {}


def shared(kind: type[widgets.Widget]) -> widgets.Widget:
    """The kernel's one model of ``kind`` (recreated if it was closed, e.g. by ``Widget.close_all()``)."""
    model = _models.get(kind)
    if model is None or model.comm is None:
        model = _models[kind] = kind()
    return model


def is_shared(model: object) -> bool:
    return any(model is m for m in _models.values())


def html(markup: str = "", *classes: str) -> widgets.HTML:
    """An HTML widget with the shared layout and style; classes in the constructor (no message per class)."""
    return widgets.HTML(markup, _dom_classes=classes, layout=shared(widgets.Layout), style=shared(HTMLStyle))
