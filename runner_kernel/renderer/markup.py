"""HTML strings for the output kinds: everything a tool wrote is escaped or sanitized here, and only here.

Pure functions from payload values to markup; ``outputs.py`` puts the markup into ``HTML`` widgets. Every
element carries a ``skr-*`` class so browser tests and the stylesheet can find it.
"""

from __future__ import annotations

import base64
import json
import re
from html import escape
from typing import Any, Callable

import nh3
from markdown_it import MarkdownIt

Translate = Callable[..., str]


def esc(value: Any) -> str:
    """Text → HTML text or attribute value (quotes escaped too)."""
    return escape(str(value), quote=True)


def css_token(value: str) -> str:
    """Any string → something safe inside a class name (action ids, field names)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", value)[:64] or "_"


def human_size(size: int, lang: str = "en") -> str:
    """Decimal units, like the upload limits ("20 MB" = 20,000,000 bytes); Swedish uses a decimal comma."""
    if size < 1000:
        return f"{size} B"
    for unit in ("kB", "MB", "GB", "TB"):
        size /= 1000
        if size < 1000 or unit == "TB":
            break
    text = f"{size:.1f}".removesuffix(".0")
    return (text.replace(".", ",") if lang == "sv" else text) + f" {unit}"


# --- notices ---------------------------------------------------------------------------------------------

def notice_html(level: str, message: str, *, system: bool = False) -> str:
    level = level if level in ("info", "warning", "error") else "info"
    classes = f"skr-notice skr-notice-{level}" + (" skr-notice-system" if system else "")
    role = "alert" if level == "error" else "status"
    return f'<div class="{classes}" role="{role}">{esc(message)}</div>'


# --- markdown --------------------------------------------------------------------------------------------

def _markdown_parser() -> MarkdownIt:
    # CommonMark + GFM tables and strikethrough; raw HTML is parsed, then nh3 keeps only the allowlist below.
    md = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
    try:
        import linkify_it  # noqa: F401  (optional: bare URLs become links when linkify-it-py is installed)
    except ImportError:
        return md
    md.options["linkify"] = True
    return md.enable("linkify")


_MD = _markdown_parser()
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "mark", "ol", "p", "pre", "s", "small", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}
_ATTRIBUTES = {
    "a": {"href", "title"}, "img": {"src", "alt", "title", "width", "height"}, "ol": {"start"},
    "th": {"style", "colspan", "rowspan"}, "td": {"style", "colspan", "rowspan"},
}
_DATA_IMAGE = re.compile(r"data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]*\Z", re.I)
_LINK = re.compile(r"(https?:|mailto:|#|/|\./|\.\./|[^:/?#]*([/?#]|\Z))", re.I)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # Images must be inline data: a remote image would load by itself and could carry data out of the page.
    if tag == "img" and attribute == "src":
        return value if _DATA_IMAGE.match(value) else None
    if tag == "a" and attribute == "href":
        return value if _LINK.match(value.strip()) else None
    return value


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter,
        url_schemes={"http", "https", "mailto", "data"},  # data: only survives the filter above, on img
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        filter_style_properties={"text-align"},  # table column alignment from GFM
        strip_comments=True,
    )


def markdown_html(text: str) -> str:
    return f'<div class="skr-markdown">{sanitize_html(_MD.render(text))}</div>'


# --- tables ----------------------------------------------------------------------------------------------

def cell_text(value: Any, _: Translate) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return _("renderer.yes") if value else _("renderer.no")
    if isinstance(value, float):
        return f"{value:.15g}"  # 0.1 + 0.2 shows as 0.3
    if isinstance(value, (str, int)):
        return str(value)
    return ""  # nested values are dropped by the normalizer; never render them from a raw payload either


def row_cells(row: Any, keys: list[str]) -> list[Any]:
    """Normalized rows are lists aligned with the columns; a dict row (raw or older payloads) is read by key."""
    if isinstance(row, dict):
        return [row.get(key) for key in keys]
    if isinstance(row, (list, tuple)):
        return list(row[: len(keys)]) + [None] * (len(keys) - len(row))
    return [None] * len(keys)


def table_html(title: str | None, columns: list[dict], rows: list, _: Translate, *, extra_class: str = "") -> str:
    columns = [c for c in columns if isinstance(c, dict) and isinstance(c.get("key"), str)]
    keys = [c["key"] for c in columns]
    head = "".join(
        f'<th scope="col" data-key="{esc(c["key"])}">{esc(c.get("label") or c["key"])}</th>' for c in columns
    )
    body = []
    for row in rows if isinstance(rows, list) else ():
        cells = []
        for value in row_cells(row, keys):
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            td = '<td class="skr-num">' if numeric else "<td>"
            cells.append(f"{td}{esc(cell_text(value, _))}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    if not body:
        body.append(f'<tr><td class="skr-table-empty" colspan="{max(1, len(keys))}">{esc(_("renderer.table.empty"))}</td></tr>')
    caption = f"<caption>{esc(title)}</caption>" if title else ""
    return (f'<div class="skr-table-wrap"><table class="skr-table{extra_class}">{caption}'
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


# --- JSON viewer -----------------------------------------------------------------------------------------

def _json_scalar(value: Any) -> str:
    kind = ("null" if value is None else "bool" if isinstance(value, bool) else
            "number" if isinstance(value, (int, float)) else "string")
    return f'<span class="skr-json-{kind}">{esc(json.dumps(value, ensure_ascii=False))}</span>'


def _json_node(key: str | None, value: Any, depth: int, _: Translate) -> str:
    label = f'<span class="skr-json-key">{esc(key)}</span>: ' if key is not None else ""
    if isinstance(value, dict):
        items = [_json_node(str(k), v, depth + 1, _) for k, v in value.items()]
        count = _("renderer.json.key") if len(value) == 1 else _("renderer.json.keys", count=len(value))
        brackets = "{}"
    elif isinstance(value, list):
        items = [_json_node(str(i), v, depth + 1, _) for i, v in enumerate(value)]
        count = _("renderer.json.item") if len(value) == 1 else _("renderer.json.items", count=len(value))
        brackets = "[]"
    else:
        return f"<li>{label}{_json_scalar(value)}</li>"
    if not items:
        return f'<li>{label}<span class="skr-json-empty">{brackets}</span></li>'
    is_open = " open" if depth < 2 else ""  # the first two levels start expanded
    return (f"<li><details{is_open}><summary>{label}<span class=\"skr-json-count\">{brackets[0]} {esc(count)} "
            f"{brackets[1]}</span></summary><ul>{''.join(items)}</ul></details></li>")


def json_html(title: str | None, value: Any, _: Translate) -> str:
    heading = f'<div class="skr-json-title">{esc(title)}</div>' if title else ""
    return f'<div class="skr-json">{heading}<ul class="skr-json-tree">{_json_node(None, value, 0, _)}</ul></div>'


# --- sandboxed HTML --------------------------------------------------------------------------------------

# Prepended to the tool's document: sandbox="" already stops scripts, forms, same-origin and navigation; this
# also stops the frame from loading anything from the network (an image URL could carry data out).
FRAME_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; "
             "media-src data:; form-action 'none'")


def sandboxed_iframe_html(html: str, title: str, *, height: int = 360, extra_class: str = "") -> str:
    document = f'<!DOCTYPE html><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{FRAME_CSP}">{html}'
    return (f'<iframe class="skr-html-frame{extra_class}" sandbox="" referrerpolicy="no-referrer" '
            f'title="{esc(title)}" style="width:100%;height:{int(height)}px" srcdoc="{esc(document)}"></iframe>')


def svg_img_html(svg: str, alt: str) -> str:
    """An SVG as an image: an <img> never runs scripts or loads anything the SVG refers to."""
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="skr-chart" alt="{esc(alt)}" src="data:image/svg+xml;base64,{data}">'


# --- artifacts -------------------------------------------------------------------------------------------

_SAFE_URL = re.compile(r"(https?://|/|\./|\.\./|[^:/?#]*([/?#]|\Z))", re.I)


def artifacts_html(items: list[tuple[dict, str | None]], _: Translate, lang: str, *, missing: str) -> str:
    """``items`` are (artifact, url or None); ``missing`` is the catalog key shown when the url is None."""
    rows = []
    for artifact, url in items:
        path = str(artifact.get("path", ""))
        name = path.removeprefix("output/")
        size = artifact.get("bytes")
        size_html = (f' <span class="skr-artifact-size">({esc(human_size(size, lang))})</span>'
                     if isinstance(size, int) and not isinstance(size, bool) else "")
        data_id = f' data-artifact-id="{esc(artifact.get("id", ""))}"'
        if url is not None and _SAFE_URL.match(url):
            link = (f'<a class="skr-artifact-link" href="{esc(url)}" download="{esc(name.rsplit("/", 1)[-1])}"'
                    f"{data_id}>{esc(name)}</a>")
        else:
            link = (f'<span class="skr-artifact-expired"{data_id}>{esc(name)} — '
                    f"{esc(_(missing))}</span>")
        rows.append(f'<li class="skr-artifact">{link}{size_html}</li>')
    return (f'<div class="skr-artifacts"><div class="skr-artifacts-title">{esc(_("renderer.files"))}</div>'
            f"<ul>{''.join(rows)}</ul></div>")
