"""The ipywidgets renderer of the tool UI contract (docs/renderer.md).

A library without I/O: it gets a normalized payload, schemas and callbacks, and returns widgets. The Voila tool
app, the "My runs" replay and the author's preview all draw results with it.
"""

from .app import ClearMemoryButton, RunButton, SessionFilesChooser, SettingsPanel, StepHistory
from .forms import Form
from .outputs import ActionView, PayloadView, close_tree, output_part, render_payload
from .style import CSS, stylesheet

__all__ = [
    "CSS",
    "ActionView",
    "ClearMemoryButton",
    "Form",
    "PayloadView",
    "RunButton",
    "SessionFilesChooser",
    "SettingsPanel",
    "StepHistory",
    "close_tree",
    "output_part",
    "render_payload",
    "stylesheet",
]
