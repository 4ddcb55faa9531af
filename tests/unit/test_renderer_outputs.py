"""render_payload: every output kind of contract §3, sanitizing, artifacts, status and actions."""

from __future__ import annotations

import base64
import re
from html import unescape

import ipywidgets as widgets
import pytest

from runner_kernel.renderer import charts, render_payload
from runner_kernel.renderer.markup import human_size, markdown_html, sanitize_html
from skriptoteket_ext.contract import normalize_result


def payload(outputs=(), **extra) -> dict:
    return normalize_result({"contract_version": 2, "status": "succeeded", "outputs": list(outputs), **extra})


def walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def page_html(view) -> str:
    """Everything the page's own DOM would receive from HTML widgets and button labels."""
    parts = []
    for w in walk(view):
        if isinstance(w, widgets.HTML) and "skr-style" not in w._dom_classes:
            parts.append(w.value)
        if isinstance(w, (widgets.Button, widgets.Checkbox)):
            parts.append(w.description)
    return "\n".join(parts)


def by_class(view, cls):
    """The markup of each part of the result (notices, outputs, artifacts) whose ``<div>`` has class ``cls``."""
    return [markup for classes, markup in view.parts if cls in classes]


def output_html(view, kind) -> str:
    [markup] = by_class(view, f"skr-output-{kind}")
    assert f'<div class="skr-output skr-output-{kind}' in view.content.value and markup in view.content.value
    return markup


# --- kinds ---

@pytest.mark.parametrize("level", ["info", "warning", "error"])
def test_notice_levels_are_coloured_callouts(level):
    view = render_payload(payload([{"kind": "notice", "level": level, "message": "Hello <b>you</b>"}]))
    html = output_html(view, "notice")
    assert f'class="skr-notice skr-notice-{level}"' in html
    assert "Hello &lt;b&gt;you&lt;/b&gt;" in html


def test_system_notices_are_shown_and_marked():
    view = render_payload(payload([{"kind": "notice", "level": "loud", "message": "x"}]))
    html = output_html(view, "notice")
    assert "skr-notice-system" in html and "System notice:" in html


def test_markdown_renders_gfm_tables_and_strikethrough():
    view = render_payload(payload([{"kind": "markdown", "markdown": "# Title\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n~~old~~ **new**"}]))
    html = output_html(view, "markdown")
    assert '<div class="skr-markdown">' in html
    assert "<h1>Title</h1>" in html and "<table>" in html and "<s>old</s>" in html and "<strong>new</strong>" in html
    assert 'style="text-align:right"' in html


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>",
    '<img src="x" onerror="alert(1)">',
    "[click](javascript:alert(1))",
    '<a href="JaVaScRiPt:alert(1)">click</a>',
    '<a href=" javascript:alert(1)">click</a>',
    '<a href="data:text/html,<script>alert(1)</script>">click</a>',
    '<iframe src="https://evil.example"></iframe>',
    "<style>body{display:none}</style>",
    '<div onclick="alert(1)" style="position:fixed">x</div>',
    '<svg><script>alert(1)</script></svg>',
    '<form action="https://evil.example"><input name=a></form>',
])
def test_markdown_is_sanitized(hostile):
    html = markdown_html("before\n\n" + hostile + "\n\nafter")
    lowered = html.lower()
    for bad in ("<script", "onerror", "onclick", "<iframe", "<style", "position:fixed", "<form", "<input"):
        assert bad not in lowered, (bad, html)
    # a javascript: or data: URL may remain as visible text, never as an attribute
    for value in re.findall(r'=\s*"([^"]*)"', lowered):
        assert "javascript:" not in value and "data:text" not in value, html
    assert "before" in html and "after" in html


def test_markdown_links_open_safely_and_remote_images_are_dropped():
    html = markdown_html("[site](https://example.org) ![chart](https://tracker.example/p.png) "
                         "![inline](data:image/png;base64,iVBORw0KGgo=)")
    assert 'href="https://example.org"' in html
    assert 'rel="noopener noreferrer"' in html and 'target="_blank"' in html
    assert "tracker.example" not in html  # a remote image would load by itself
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in html


def test_sanitize_drops_classes_so_tools_cannot_fake_platform_elements():
    assert "skr-notice" not in sanitize_html('<p class="skr-notice skr-notice-error">fake</p>')


def test_table_keeps_declared_column_order_10_before_2():
    view = render_payload(payload([{
        "kind": "table", "title": "Scores",
        "columns": [{"key": "10", "label": "Ten"}, {"key": "2", "label": "Two"}, {"key": "a", "label": "A"}],
        "rows": [{"2": "two", "a": "<i>x</i>", "10": "ten", "extra": "dropped"}, {"10": 1.5, "2": True, "a": None}],
    }]))
    html = output_html(view, "table")
    assert 'class="skr-table"' in html and "<caption>Scores</caption>" in html
    assert re.findall(r'data-key="([^"]+)"', html) == ["10", "2", "a"]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html)
    assert cells == ["ten", "two", "&lt;i&gt;x&lt;/i&gt;", "1.5", "yes", ""]
    assert "dropped" not in html


def test_table_accepts_dict_rows_from_raw_payloads_and_shows_empty_tables():
    raw = {"status": "succeeded", "outputs": [
        {"kind": "table", "title": None, "columns": [{"key": "10", "label": "10"}, {"key": "2", "label": "2"}],
         "rows": [{"2": "b", "10": "a"}]},
        {"kind": "table", "title": None, "columns": [{"key": "k", "label": "K"}], "rows": []}]}
    view = render_payload(raw)
    first, second = by_class(view, "skr-output-table")
    assert re.findall(r"<td[^>]*>(.*?)</td>", first) == ["a", "b"]
    assert "skr-table-empty" in second and "No rows." in second


def test_json_viewer_is_collapsible_and_escaped():
    view = render_payload(payload([{"kind": "json", "title": "Data", "value": {"<k>": ["</details><script>"], "n": 1}}]))
    html = output_html(view, "json")
    assert 'class="skr-json"' in html and "<details open>" in html and "<summary>" in html
    assert "<script>" not in html and "&lt;/details&gt;&lt;script&gt;" in html
    assert "&lt;k&gt;" in html and "skr-json-number" in html
    assert html.count("<details") == html.count("</details>")


def test_html_sandboxed_is_an_iframe_with_empty_sandbox_and_escaped_srcdoc():
    tool_html = '<script>alert(document.cookie)</script><p onclick="x()">"Hi" &amp; bye</p>'
    view = render_payload(payload([{"kind": "html_sandboxed", "html": tool_html}]))
    html = output_html(view, "html_sandboxed")
    assert html.startswith("<iframe ") and html.endswith("></iframe>")
    assert 'sandbox=""' in html and "allow-" not in html
    # the page's own DOM never sees the tool's markup: only the escaped attribute value carries it
    page = page_html(view)
    assert "<script" not in page and "<p onclick" not in page
    srcdoc = re.search(r'srcdoc="([^"]*)"', html).group(1)
    assert tool_html in unescape(srcdoc)
    assert "Content-Security-Policy" in unescape(srcdoc)
    # exactly one element: nothing after the attribute could break out of it
    assert html.count("<") == 2


def test_vega_lite_draws_svg_offline_or_falls_back_to_a_table():
    spec = {"data": {"values": [{"fruit": "apple", "n": 3}, {"fruit": "pear", "n": 5}]}, "mark": "bar",
            "encoding": {"x": {"field": "fruit", "type": "nominal"}, "y": {"field": "n", "type": "quantitative"}}}
    html = output_html(render_payload(payload([{"kind": "vega_lite", "spec": spec}])), "vega_lite")
    if charts.available():
        src = re.search(r'<img class="skr-chart" alt="Chart" src="data:image/svg\+xml;base64,([^"]+)">', html)
        svg = base64.b64decode(src.group(1)).decode()
        assert svg.startswith("<svg") and "apple" in svg
    else:
        assert "skr-notice-info" in html and "skr-chart-data" in html and "apple" in html


def test_vega_lite_fallback_table(monkeypatch):
    monkeypatch.setattr(charts, "vl_convert", None)
    spec = {"layer": [{"data": {"values": [{"b": 1, "a": "<x>"}, {"a": "y", "c": True}]}, "mark": "point"}]}
    view = render_payload(payload([{"kind": "vega_lite", "spec": spec}]))
    html = output_html(view, "vega_lite")
    assert "Chart preview unavailable" in html
    # keys in order of first appearance (the normalizer has already sorted each record's keys)
    assert re.findall(r'data-key="([^"]+)"', html) == ["a", "b", "c"]
    assert "&lt;x&gt;" in html


def test_every_kind_in_one_payload_in_order():
    kinds = ["notice", "markdown", "table", "json", "html_sandboxed", "vega_lite"]
    outputs = [{"kind": "notice", "level": "info", "message": "m"}, {"kind": "markdown", "markdown": "m"},
               {"kind": "table", "columns": [{"key": "k", "label": "K"}], "rows": []},
               {"kind": "json", "value": 1}, {"kind": "html_sandboxed", "html": "<p>x</p>"},
               {"kind": "vega_lite", "spec": {"data": {"values": [{"a": 1}]}, "mark": "point"}}]
    view = render_payload(payload(outputs))
    shown = [classes[1] for classes, _markup in view.parts if "skr-output" in classes]
    assert shown == [f"skr-output-{k}" for k in kinds]
    assert "skr-result" in view._dom_classes and "skr-status-succeeded" in view._dom_classes


# --- status, artifacts ---

def test_failed_run_shows_error_summary_as_error_callout():
    view = render_payload({"status": "failed", "error_summary": "Tool execution failed (KeyError).", "outputs": []})
    [error] = by_class(view, "skr-run-error")
    assert "skr-notice-error" in error and "Tool execution failed (KeyError)." in error
    assert "skr-status-failed" in view._dom_classes


@pytest.mark.parametrize("lang, text", [("en", "Execution timed out."), ("sv", "tog för lång tid")])
def test_timed_out_without_summary_gets_a_default_message(lang, text):
    view = render_payload({"status": "timed_out", "error_summary": None}, lang=lang)
    assert text in by_class(view, "skr-run-error")[0]


def test_artifacts_are_download_links_and_expired_ones_are_marked():
    p = payload(artifacts=[{"path": "output/report.pdf", "bytes": 2_500_000},
                           {"path": "output/old/data.csv", "bytes": 12}])
    urls = {"report_pdf": "/services/skriptoteket/api/v1/runs/r/artifacts/report_pdf"}
    view = render_payload(p, artifact_url=lambda a: urls.get(a["id"]))
    html = by_class(view, "skr-artifacts-box")[0]
    assert ('<a class="skr-artifact-link" href="/services/skriptoteket/api/v1/runs/r/artifacts/report_pdf" '
            'download="report.pdf" data-artifact-id="report_pdf">report.pdf</a>') in html
    assert "(2.5 MB)" in html
    assert 'class="skr-artifact-expired" data-artifact-id="old_data_csv">old/data.csv — expired' in html


def test_artifact_links_never_use_script_urls():
    p = payload(artifacts=[{"path": "output/a.txt", "bytes": 1}])
    html = by_class(render_payload(p, artifact_url=lambda a: "javascript:alert(1)"), "skr-artifacts-box")[0]
    assert "javascript" not in html and "skr-artifact-expired" in html


def test_human_size():
    assert human_size(999) == "999 B"
    assert human_size(20_000_000) == "20 MB"
    assert human_size(1_250, "sv") == "1,2 kB" or human_size(1_250, "sv") == "1,3 kB"


# --- actions ---

ACTIONS = [
    {"action_id": "grade", "label": "Grade", "fields": [
        {"name": "points", "label": "Points", "kind": "integer", "min": 0, "max": 10, "required": True},
        {"name": "note", "label": "Note", "kind": "string"}], "prefill": {"points": 4}},
    {"action_id": "done now", "label": "Finish"},
]


def actions_payload():
    return payload([{"kind": "notice", "level": "info", "message": "x"}], next_actions=ACTIONS)


def test_actions_render_as_forms_and_plain_buttons():
    view = render_payload(actions_payload(), on_action=lambda *a: None)
    grade, done = view.actions["grade"], view.actions["done now"]
    assert "skr-action-grade" in grade._dom_classes and "skr-action-done_now" in done._dom_classes
    assert grade.form.values() == {"points": "4", "note": ""}
    assert done.form is None and done.button.description == "Finish"


def test_action_click_calls_on_action_with_normalized_values():
    calls = []
    view = render_payload(actions_payload(), on_action=lambda action_id, values: calls.append((action_id, values)))
    grade = view.actions["grade"]
    grade.form.views["note"].input.value = "  well done  "
    grade.button.click()
    assert calls == [("grade", {"points": 4, "note": "well done"})]
    view.actions["done now"].button.click()
    assert calls[-1] == ("done now", {})


def test_action_with_bad_values_is_not_sent():
    calls = []
    view = render_payload(actions_payload(), on_action=lambda *a: calls.append(a))
    grade = view.actions["grade"]
    grade.form.views["points"].input.value = "11"
    grade.button.click()
    assert calls == []
    assert "at most 10" in grade.form.views["points"].error.value
    assert "skr-form-issues" in grade.form.summary.value


async def test_actions_are_disabled_while_one_is_in_flight():
    import asyncio
    release = asyncio.Event()
    calls = []

    async def on_action(action_id, values):
        calls.append(action_id)
        await release.wait()

    view = render_payload(actions_payload(), on_action=on_action)
    view.actions["done now"].button.click()
    view.actions["done now"].button.click()
    view.actions["grade"].button.click()
    await asyncio.sleep(0)
    assert calls == ["done now"]
    assert view.actions["grade"].button.disabled and view.actions["grade"].form.views["points"].input.disabled
    release.set()
    await asyncio.sleep(0.01)
    assert not view.actions["grade"].button.disabled


def test_disabled_payload_and_missing_callback_disable_actions():
    assert render_payload(actions_payload(), disabled=True, on_action=print).actions["grade"].button.disabled
    assert render_payload(actions_payload()).actions["grade"].button.disabled
    view = render_payload(actions_payload(), on_action=print, disabled=True)
    view.disabled = False
    assert not view.actions["grade"].button.disabled


def test_swedish_strings_in_results():
    p = payload([{"kind": "table", "columns": [{"key": "k", "label": "K"}], "rows": [{"k": True}, {"k": False}]}],
                artifacts=[{"path": "output/a.txt", "bytes": 1}])
    view = render_payload(p, lang="sv", artifact_url=lambda a: None)
    html = page_html(view)
    assert "<td>ja</td>" in html and "<td>nej</td>" in html
    assert "Filer från den här körningen" in html and "har gått ut" in html


def test_show_draws_the_next_result_into_the_same_widgets():
    view = render_payload(actions_payload(), on_action=print)
    box, content = view.actions_box, view.content
    grade_input = view.actions["grade"].form.views["points"].input
    input_id = grade_input.model_id
    view.show(payload([{"kind": "markdown", "markdown": "second"}]), on_action=print)
    assert view.content is content and view.children == (view.head[0], content)
    assert "second" in content.value and "x</div>" not in content.value
    assert view.actions == {} and view.actions_box is None
    # the replaced actions are closed, in the kernel and (by comm_close) on the page
    assert box.comm is None and grade_input.comm is None and grade_input.layout.comm is None
    assert input_id not in widgets.Widget.widgets
    view.show({"status": "failed", "error_summary": "boom", "outputs": []})
    assert "skr-status-failed" in view._dom_classes and "boom" in by_class(view, "skr-run-error")[0]
    assert "second" not in content.value


def test_html_pieces_share_one_layout_and_style_that_outlive_a_closed_tree():
    view = render_payload(actions_payload(), on_action=print)
    label = view.actions["grade"].form.views["points"].children[0]
    assert isinstance(label, widgets.HTML)
    assert label.layout is view.content.layout and label.style is view.content.style
    view.show(payload([{"kind": "markdown", "markdown": "next"}]))  # closes the actions' widgets
    assert label.comm is None
    assert view.content.layout.comm is not None and view.content.style.comm is not None
    widgets.Widget.close_all()  # e.g. between tests: the next piece gets new shared models
    again = render_payload(payload([]))
    assert again.content.layout.comm is not None and again.content.style.comm is not None
