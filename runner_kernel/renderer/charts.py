"""Vega-Lite charts, drawn in the kernel: the page has no vega-embed and the containers have no network.

With ``vl-convert-python`` installed (a self-contained wheel: Vega in an embedded Deno, no network) the spec
becomes an SVG shown as an ``<img>``. Without it, or when conversion fails, the chart's inline data is shown as a
table under a "chart preview unavailable" notice. See docs/renderer.md.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

FALLBACK_ROWS = 750  # the same as a table output's row cap
_NOT_YET = object()
# The converter (an optional dependency) is imported at the first chart, not with the renderer: its library is an
# 88 MB .so and every process that imports it dirties ~6 MB of its pages (relocations), paid by the fork server
# that page kernels come from even when no tool draws a chart (docs/renderer.md).
vl_convert: Any = _NOT_YET


def _converter():
    global vl_convert
    if vl_convert is _NOT_YET:
        try:
            import vl_convert as module
        except ImportError:  # pragma: no cover - depends on the environment
            module = None
        vl_convert = module
    return vl_convert


def available() -> bool:
    return _converter() is not None


def warm_up() -> None:
    """Start the converter's engine ahead of time (a preheated Voila kernel can call this): the first
    conversion in a process pays a second or more of start-up."""
    to_svg({"data": {"values": [{"a": 1}]}, "mark": "point", "encoding": {"x": {"field": "a", "type": "quantitative"}}})


def to_svg(spec: dict) -> str | None:
    """The chart as SVG text, or None when it cannot be drawn here."""
    if _converter() is None or not isinstance(spec, dict):
        return None
    try:
        return _svg(json.dumps(spec, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=32)  # replaying a step or re-rendering a result draws the same chart again
def _svg(spec_json: str) -> str | None:
    try:
        # allowed_base_urls=[]: no data or image is ever fetched, whatever the spec says (the contract
        # already rejects url data; this makes it true of the converter too).
        return vl_convert.vegalite_to_svg(spec_json, allowed_base_urls=[])
    except Exception:  # a spec the converter rejects must not break the whole result
        return None


def data_table(spec: Any) -> tuple[list[dict], list[list[Any]]] | None:
    """Columns and rows of the first inline ``data.values`` (or ``datasets``) holding objects, for the fallback."""
    for values in _inline_values(spec, depth=0):
        records = [v for v in values if isinstance(v, dict)][:FALLBACK_ROWS]
        if not records:
            continue
        keys: list[str] = []
        for record in records:
            keys.extend(str(k) for k in record if str(k) not in keys)
        rows = [[_scalar(record.get(k)) for k in keys] for record in records]
        return [{"key": k, "label": k} for k in keys], rows
    return None


def _inline_values(node: Any, depth: int):
    if depth > 10 or not isinstance(node, dict):
        return
    data = node.get("data")
    if isinstance(data, dict) and isinstance(data.get("values"), list):
        yield data["values"]
    datasets = node.get("datasets")
    if isinstance(datasets, dict):
        yield from (v for v in datasets.values() if isinstance(v, list))
    for key in ("layer", "concat", "hconcat", "vconcat"):
        children = node.get(key)
        for child in children if isinstance(children, list) else ():
            yield from _inline_values(child, depth + 1)
    yield from _inline_values(node.get("spec"), depth + 1)


def _scalar(value: Any) -> Any:
    return value if value is None or isinstance(value, (str, int, float, bool)) else None
