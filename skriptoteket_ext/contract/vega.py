"""The Vega-Lite restrictions of §3: self-contained, bounded charts only.

A spec may carry data only inline (``data.values`` or top-level ``datasets``), never load anything (no ``url`` or
``href`` anywhere outside the inline rows, no image marks, no data generators), and stays within the row, size,
composition-depth and layer caps. A spec that breaks one is dropped whole: a half-chart would mislead.
"""

from __future__ import annotations

from typing import Any

from .canonical import JsonLimits, JsonReport, clean_json, json_size
from .caps import Caps

NESTING_LIMIT = 64  # guards the walk itself; real specs are far shallower
INLINE_DATA_KEYS = frozenset({"values", "name", "format"})
LINK_KEYS = frozenset({"url", "href"})
VIEW_LISTS = ("layer", "concat", "hconcat", "vconcat")


def check_vega_lite(spec: Any, caps: Caps) -> tuple[dict | None, str | None]:
    """Returns (clean spec, None) or (None, reason)."""
    if not isinstance(spec, dict):
        return None, "spec is not an object"
    report = JsonReport()
    spec = clean_json(spec, JsonLimits(max_depth=NESTING_LIMIT), report)
    if report.too_deep:
        return None, f"spec is nested more than {NESTING_LIMIT} levels deep"
    size = json_size(spec)
    if size > caps.vega_lite_bytes:
        return None, f"spec is {size} bytes (limit {caps.vega_lite_bytes})"
    counter = {"rows": 0}
    reason = _scan(spec, counter, top=True)
    if reason:
        return None, reason
    if counter["rows"] > caps.vega_lite_rows_max:
        return None, f"{counter['rows']} data rows (limit {caps.vega_lite_rows_max})"
    depth, layers = _composition(spec)
    if depth > caps.vega_lite_depth:
        return None, f"composition is nested {depth} levels deep (limit {caps.vega_lite_depth})"
    if layers > caps.vega_lite_layers_max:
        return None, f"{layers} layers (limit {caps.vega_lite_layers_max})"
    return spec, None


def _scan(node: Any, counter: dict, top: bool = False) -> str | None:
    """First violation of the data/link rules, walking keys in sorted order (clean_json sorted them)."""
    if isinstance(node, list):
        for item in node:
            reason = _scan(item, counter)
            if reason:
                return reason
        return None
    if not isinstance(node, dict):
        return None
    for key, value in node.items():
        if key in LINK_KEYS:
            return f"'{key}' is not allowed (no external data, images or links)"
        if key == "mark" and (value == "image" or isinstance(value, dict) and value.get("type") == "image"):
            return "image marks are not allowed"
        if key == "data" and value is not None:
            if not isinstance(value, dict) or not set(value) <= INLINE_DATA_KEYS:
                return "only inline data (data.values) is allowed"
            counter["rows"] += _rows(value.get("values"))
            reason = _scan(value.get("format"), counter)
        elif key == "datasets" and top and isinstance(value, dict):
            counter["rows"] += sum(_rows(rows) for rows in value.values())
            reason = None
        else:
            reason = _scan(value, counter)
        if reason:
            return reason
    return None


def _rows(values: Any) -> int:
    if isinstance(values, list):
        return len(values)
    if isinstance(values, str):  # inline CSV/TSV text
        return values.count("\n") + 1
    return 0 if values is None else 1


def _composition(view: Any) -> tuple[int, int]:
    """(nesting depth of composition operators, total number of layers) under ``view``."""
    if not isinstance(view, dict):
        return 0, 0
    children: list = []
    layers = 0
    for key in VIEW_LISTS:
        items = view.get(key)
        if isinstance(items, list):
            children.extend(items)
            if key == "layer":  # count drawn layers: a nested layer's own children are counted below
                layers += sum(1 for item in items if not (isinstance(item, dict) and "layer" in item))
    if isinstance(view.get("spec"), dict):  # facet and repeat wrap one inner view
        children.append(view["spec"])
    if not children:
        return 0, layers
    depth = 0
    for child in children:
        child_depth, child_layers = _composition(child)
        depth = max(depth, child_depth)
        layers += child_layers
    return depth + 1, layers
