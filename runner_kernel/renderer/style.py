"""The renderer's stylesheet: small, scoped to ``skr-*`` classes, and included once per rendered result."""

import ipywidgets as widgets

from ._shared import html

CSS = """
.skr-notice { border-left: 4px solid; border-radius: 4px; padding: 8px 12px; margin: 6px 0; white-space: pre-wrap; }
.skr-notice-info { background: #eef5fc; border-color: #2f6fb3; color: #173a5e; }
.skr-notice-warning { background: #fff7e6; border-color: #c77c02; color: #5c3a00; }
.skr-notice-error { background: #fdeeee; border-color: #c62828; color: #6b1010; }
.skr-notice-system { font-size: 0.9em; }
.skr-markdown { line-height: 1.5; }
.skr-markdown table, .skr-table { border-collapse: collapse; margin: 6px 0; }
.skr-markdown th, .skr-markdown td, .skr-table th, .skr-table td { border: 1px solid #ccc; padding: 4px 8px; }
.skr-table th { background: #f3f3f3; text-align: left; }
.skr-table td.skr-num { text-align: right; font-variant-numeric: tabular-nums; }
.skr-table caption { text-align: left; font-weight: 600; padding: 4px 0; }
.skr-table-wrap { overflow-x: auto; max-width: 100%; }
.skr-json { font-family: monospace; font-size: 0.9em; }
.skr-json ul { list-style: none; margin: 0; padding-left: 1.2em; }
.skr-json-tree { padding-left: 0 !important; }
.skr-json-key { color: #6a3d9a; }
.skr-json-string { color: #1b7a3a; }
.skr-json-number, .skr-json-bool, .skr-json-null { color: #1f5fa8; }
.skr-json-count { color: #777; }
.skr-json-title { font-weight: 600; font-family: sans-serif; }
.skr-html-frame { border: 1px solid #ddd; border-radius: 4px; resize: vertical; overflow: auto; background: #fff; }
.skr-chart { max-width: 100%; height: auto; }
.skr-artifacts ul { margin: 4px 0; }
.skr-artifact-size, .skr-artifact-expired, .skr-help, .skr-file-size { color: #666; }
.skr-label { font-weight: 600; }
.skr-required { color: #c62828; margin-left: 2px; text-decoration: none; border: 0; }
.skr-help { font-size: 0.9em; }
.skr-field { margin-bottom: 10px; }
.skr-field-error { color: #c62828; }
.skr-form-issues { color: #6b1010; background: #fdeeee; padding: 6px 12px; border-radius: 4px; }
.skr-step-current { font-weight: 600; }
.skr-steps .skr-step { width: auto; text-align: left; }
.skr-spinner::before, button.skr-running::before { content: ""; display: inline-block; width: 0.8em; height: 0.8em; margin-right: 6px;
  border: 2px solid #999; border-top-color: transparent; border-radius: 50%; animation: skr-spin 0.8s linear infinite;
  vertical-align: -0.1em; }
@keyframes skr-spin { to { transform: rotate(360deg); } }
.skr-done { color: #1b7a3a; }
"""


def stylesheet() -> widgets.HTML:
    return html(f"<style>{CSS}</style>", "skr-style")
