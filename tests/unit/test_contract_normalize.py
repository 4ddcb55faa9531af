"""normalize_result: one test per rule of §2–§7 (drops, caps, shapes)."""

import pytest

from skriptoteket_ext.contract import Caps, DEFAULT_CAPS, artifact_id_for, canonical_json, normalize_result

VIOLATION = "Execution failed (runner contract violation)."


def envelope(**parts):
    raw = {"contract_version": 2, "status": "succeeded", "error_summary": None, "outputs": [], "next_actions": [],
           "state": None, "artifacts": []}
    raw.update(parts)
    return raw


def run(caps=DEFAULT_CAPS, **parts):
    return normalize_result(envelope(**parts), caps)


def tool_outputs(payload):
    return [o for o in payload["outputs"] if not o.get("system")]


def system_notices(payload):
    notices = [o for o in payload["outputs"] if o.get("system")]
    assert all(set(n) == {"kind", "level", "message", "system"} and n["kind"] == "notice"
               and n["level"] == "warning" and n["message"].startswith("System notice: ") for n in notices)
    return [n["message"] for n in notices]


def only(payload):
    [output] = tool_outputs(payload)
    return output


# --- envelope (§2) ---

def test_clean_envelope_passes_through():
    payload = run(error_summary=None, outputs=[{"kind": "markdown", "markdown": "# Hej"}])
    assert payload == {"contract_version": 2, "status": "succeeded", "error_summary": None,
                       "outputs": [{"kind": "markdown", "markdown": "# Hej"}], "next_actions": [], "state": None,
                       "artifacts": []}


@pytest.mark.parametrize("version", [1, 3, "2", 2.0, True, None])
def test_wrong_contract_version_is_a_violation(version):
    payload = normalize_result(envelope(contract_version=version, outputs=[{"kind": "markdown", "markdown": "x"}]))
    assert payload["status"] == "failed"
    assert payload["error_summary"] == VIOLATION
    assert tool_outputs(payload) == []
    assert len(system_notices(payload)) == 1


def test_missing_contract_version_is_a_violation():
    raw = envelope()
    del raw["contract_version"]
    assert normalize_result(raw)["error_summary"] == VIOLATION


@pytest.mark.parametrize("status", ["running", "ok", "", None, 1, "SUCCEEDED"])
def test_invalid_status_is_a_violation(status):
    payload = run(status=status)
    assert (payload["status"], payload["error_summary"]) == ("failed", VIOLATION)
    assert system_notices(payload)[0].startswith("System notice: the runner's result was malformed: status")


@pytest.mark.parametrize("raw", [None, [], "ok", 2, b"x"])
def test_non_object_result_is_a_violation(raw):
    payload = normalize_result(raw)
    assert (payload["status"], payload["error_summary"], payload["artifacts"]) == ("failed", VIOLATION, [])


def test_violation_still_offers_valid_artifacts():
    payload = normalize_result(envelope(contract_version=1, artifacts=[{"path": "output/a.txt", "bytes": 1}]))
    assert payload["artifacts"] == [{"id": "a_txt", "path": "output/a.txt", "bytes": 1}]


@pytest.mark.parametrize("status", ["succeeded", "failed", "timed_out"])
def test_valid_statuses(status):
    assert run(status=status)["status"] == status


def test_error_summary_is_cut_utf8_safe_at_20000_bytes():
    payload = run(status="failed", error_summary="å" * 15_000)  # 30,000 bytes
    summary = payload["error_summary"]
    assert len(summary.encode("utf-8")) <= 20_000
    assert summary == "å" * 9_998 + "…"
    assert system_notices(payload) == [
        "System notice: the error message was too long and was shortened: cut to 20000 bytes."]


def test_error_summary_under_the_cap_is_kept():
    assert run(status="failed", error_summary="Boom.")["error_summary"] == "Boom."


def test_non_text_error_summary_is_dropped():
    payload = run(status="failed", error_summary={"msg": "x"})
    assert payload["error_summary"] is None
    assert system_notices(payload) == [
        "System notice: the runner's result was malformed: error_summary is dict, not text."]


def test_outputs_not_a_list_is_dropped_with_notice():
    payload = run(outputs={"kind": "markdown"})
    assert tool_outputs(payload) == []
    assert system_notices(payload) == ["System notice: the runner's result was malformed: outputs is not a list."]


# --- outputs (§3) ---

def test_unknown_kind_and_non_object_outputs_are_dropped_one_notice():
    payload = run(outputs=["text", {"kind": "video"}, {"markdown": "x"}, {"kind": "markdown", "markdown": "ok"}])
    assert tool_outputs(payload) == [{"kind": "markdown", "markdown": "ok"}]
    assert system_notices(payload) == [
        "System notice: outputs were dropped: output 1 is not an object; output 2 has unknown kind 'video'; "
        "output 3 has unknown kind 'NoneType'."]


def test_more_than_three_drops_say_plus_n_more():
    payload = run(outputs=[{"kind": "x"}] * 5)
    assert system_notices(payload) == [
        "System notice: outputs were dropped: output 1 has unknown kind 'x'; output 2 has unknown kind 'x'; "
        "output 3 has unknown kind 'x' (+2 more)."]


def test_notice_output():
    assert only(run(outputs=[{"kind": "notice", "level": "error", "message": "  Klart  "}])) == {
        "kind": "notice", "level": "error", "message": "Klart"}


@pytest.mark.parametrize("raw", [{"level": "danger", "message": "x"}, {"level": None, "message": "x"},
                                 {"level": "info", "message": "  "}, {"level": "info"},
                                 {"level": "info", "message": 5}])
def test_invalid_notices_are_dropped(raw):
    payload = run(outputs=[{"kind": "notice", **raw}])
    assert tool_outputs(payload) == []
    assert system_notices(payload)[0].startswith("System notice: outputs were dropped: output 1 (notice): ")


def test_notice_message_cap():
    payload = run(outputs=[{"kind": "notice", "level": "info", "message": "a" * 9000}])
    assert only(payload)["message"] == "a" * (8192 - 3) + "…"
    assert system_notices(payload) == [
        "System notice: notice text was too long and was shortened: output 1 cut to 8192 bytes."]


def test_markdown_is_kept_as_text():
    text = "<script>alert(1)</script>\n\n* item\n"
    assert only(run(outputs=[{"kind": "markdown", "markdown": text}])) == {"kind": "markdown", "markdown": text}


def test_empty_markdown_is_dropped():
    payload = run(outputs=[{"kind": "markdown", "markdown": " \n"}])
    assert system_notices(payload) == ["System notice: outputs were dropped: output 1 (markdown): markdown is empty."]


def test_markdown_cap_is_utf8_safe():
    payload = run(outputs=[{"kind": "markdown", "markdown": "ö" * 40_000}])  # 80,000 bytes
    text = only(payload)["markdown"]
    assert len(text.encode("utf-8")) <= 65536
    assert text == "ö" * 32_766 + "…"
    assert system_notices(payload) == [
        "System notice: Markdown text was too long and was shortened: output 1 cut to 65536 bytes."]


def test_html_sandboxed_and_its_cap():
    assert only(run(outputs=[{"kind": "html_sandboxed", "html": "<b>x</b>"}])) == {
        "kind": "html_sandboxed", "html": "<b>x</b>"}
    payload = run(outputs=[{"kind": "html_sandboxed", "html": "x" * 100_000}])
    assert len(only(payload)["html"].encode()) == 98304
    assert system_notices(payload) == [
        "System notice: HTML was too long and was shortened: output 1 cut to 98304 bytes."]
    assert tool_outputs(run(outputs=[{"kind": "html_sandboxed", "html": ""}])) == []


# --- tables ---

def table(**parts):
    return {"kind": "table", "columns": [{"key": "10", "label": "Ten"}, {"key": "2", "label": "Two"}], **parts}


def test_table_rows_are_lists_in_declared_column_order():
    payload = run(outputs=[table(title=" Groups ", rows=[{"2": "b", "10": "a"}, {"10": 1.5, "2": None}])])
    assert only(payload) == {"kind": "table", "title": "Groups",
                             "columns": [{"key": "10", "label": "Ten"}, {"key": "2", "label": "Two"}],
                             "rows": [["a", "b"], [1.5, None]]}
    assert canonical_json(only(payload)).startswith(b'{"columns":[{"key":"10","label":"Ten"},{"key":"2"')


def test_table_undeclared_keys_dropped_and_missing_become_null():
    payload = run(outputs=[table(rows=[{"10": True, "extra": "x"}])])
    assert only(payload)["rows"] == [[True, None]]
    assert system_notices(payload) == []


def test_table_nested_cells_are_dropped_with_notice():
    payload = run(outputs=[table(rows=[{"10": [1, 2], "2": {"a": 1}}, {"10": "ok", "2": 3}])])
    assert only(payload)["rows"] == [[None, None], ["ok", 3]]
    assert system_notices(payload) == [
        "System notice: parts of tables were dropped: output 1: 2 nested cell values dropped."]


def test_table_nan_and_infinity_become_empty_cells():
    payload = run(outputs=[table(rows=[{"10": float("nan"), "2": float("inf")}])])
    assert only(payload)["rows"] == [[None, None]]


@pytest.mark.parametrize("columns", [None, [], "a", [{"label": "x"}], [{"key": ""}], [5]])
def test_table_without_valid_columns_is_dropped(columns):
    payload = run(outputs=[{"kind": "table", "columns": columns, "rows": []}])
    assert tool_outputs(payload) == []
    assert "output 1 (table): no valid columns" in system_notices(payload)[0]


def test_table_duplicate_and_keyless_columns_are_dropped():
    payload = run(outputs=[{"kind": "table", "columns": [{"key": "a"}, {"key": "a", "label": "A2"}, {"x": 1}],
                            "rows": [{"a": 1}]}])
    assert only(payload)["columns"] == [{"key": "a", "label": "a"}]
    assert system_notices(payload) == [
        "System notice: parts of tables were dropped: output 1: duplicate column 'a'; output 1: column 3 has no key."]


def test_table_rows_must_be_objects_and_a_list():
    payload = run(outputs=[table(rows=[["a", "b"], {"10": "x"}, 5])])
    assert only(payload)["rows"] == [["x", None]]
    assert system_notices(payload) == [
        "System notice: parts of tables were dropped: output 1: 2 rows that are not objects dropped."]
    payload = run(outputs=[table(rows="a,b")])
    assert tool_outputs(payload) == []


def test_table_title_must_be_text():
    assert tool_outputs(run(outputs=[table(title=5, rows=[])])) == []
    assert only(run(outputs=[table(title="  ", rows=[])]))["title"] is None


def test_table_row_cap():
    payload = run(outputs=[table(rows=[{"10": i} for i in range(800)])])
    rows = only(payload)["rows"]
    assert len(rows) == 750 and rows[-1] == [749, None]
    assert system_notices(payload) == [
        "System notice: tables were too large and were shortened: output 1: only the first 750 of 800 rows kept."]


def test_table_column_cap():
    columns = [{"key": f"c{i}", "label": f"C{i}"} for i in range(45)]
    payload = run(outputs=[{"kind": "table", "columns": columns, "rows": [{f"c{i}": i for i in range(45)}]}])
    assert [c["key"] for c in only(payload)["columns"]] == [f"c{i}" for i in range(40)]
    assert only(payload)["rows"] == [list(range(40))]
    assert system_notices(payload) == [
        "System notice: tables were too large and were shortened: output 1: only the first 40 of 45 columns kept."]


def test_table_cell_cap_utf8_safe():
    payload = run(outputs=[table(rows=[{"10": "€" * 200, "2": "x" * 512}])])  # 600 bytes, 512 bytes
    cell, kept = only(payload)["rows"][0]
    assert cell == "€" * 169 + "…" and len(cell.encode()) == 510
    assert kept == "x" * 512
    assert system_notices(payload) == [
        "System notice: tables were too large and were shortened: output 1: 1 cells cut to 512 bytes."]


# --- json ---

def test_json_output_keeps_any_json_and_sorts_keys():
    payload = run(outputs=[{"kind": "json", "title": "Data", "value": {"b": [1, {"y": None, "x": 2.5}], "a": "s"}}])
    assert only(payload) == {"kind": "json", "title": "Data", "value": {"a": "s", "b": [1, {"x": 2.5, "y": None}]}}
    assert list(only(payload)["value"]) == ["a", "b"]


def test_json_null_value_is_valid_but_missing_value_is_not():
    assert only(run(outputs=[{"kind": "json", "value": None}])) == {"kind": "json", "title": None, "value": None}
    assert tool_outputs(run(outputs=[{"kind": "json"}])) == []


def nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_json_depth_cap():
    assert only(run(outputs=[{"kind": "json", "value": nested(10)}]))["value"] == nested(10)
    payload = run(outputs=[{"kind": "json", "value": nested(11)}])
    assert canonical_json(only(payload)["value"]) == b"[" * 10 + b"null" + b"]" * 10
    assert system_notices(payload)[0].startswith("System notice: JSON values were too large and were shortened or "
                                                 "dropped: output 1 shortened")


def test_json_keys_cap_keeps_first_sorted_keys():
    value = {f"k{i:04d}": i for i in range(1005)}
    payload = run(outputs=[{"kind": "json", "value": value}])
    kept = only(payload)["value"]
    assert len(kept) == 1000 and "k0999" in kept and "k1000" not in kept
    assert len(system_notices(payload)) == 1


def test_json_array_cap():
    payload = run(outputs=[{"kind": "json", "value": list(range(2500))}])
    assert only(payload)["value"] == list(range(2000))
    assert len(system_notices(payload)) == 1


def test_json_bytes_cap_drops_the_output():
    payload = run(outputs=[{"kind": "json", "value": ["x" * 1000] * 100}])  # ~100 KB
    assert tool_outputs(payload) == []
    assert system_notices(payload) == [
        "System notice: JSON values were too large and were shortened or dropped: output 1 dropped (100301 bytes, "
        "limit 98304)."]


def test_json_non_finite_numbers_become_null():
    assert only(run(outputs=[{"kind": "json", "value": [float("nan"), 1]}]))["value"] == [None, 1]


# --- output count cap ---

def test_outputs_cap_keeps_the_first_50_valid_outputs():
    outputs = [{"kind": "bogus"}] + [{"kind": "markdown", "markdown": str(i)} for i in range(60)]
    payload = run(outputs=outputs)
    assert [o["markdown"] for o in tool_outputs(payload)] == [str(i) for i in range(50)]
    assert system_notices(payload) == [
        "System notice: outputs were dropped: output 1 has unknown kind 'bogus'.",
        "System notice: too many outputs; the rest were dropped: only the first 50 are shown."]


def test_outputs_cap_is_configurable():
    payload = run(caps=Caps(outputs_max=2), outputs=[{"kind": "markdown", "markdown": "x"}] * 3)
    assert len(tool_outputs(payload)) == 2


# --- vega_lite ---

def chart(**spec):
    return {"kind": "vega_lite", "spec": {"mark": "bar", "data": {"values": [{"a": 1}, {"a": 2}]},
                                          "encoding": {"x": {"field": "a", "type": "quantitative"}}, **spec}}


def vega_reason(spec, caps=DEFAULT_CAPS):
    payload = run(caps=caps, outputs=[{"kind": "vega_lite", "spec": spec}])
    if tool_outputs(payload):
        return None
    [message] = system_notices(payload)
    assert message.startswith("System notice: charts were dropped: output 1: ")
    return message[len("System notice: charts were dropped: output 1: "):-1]


def test_valid_chart_is_kept():
    payload = run(outputs=[chart()])
    assert only(payload) == chart()
    assert system_notices(payload) == []


def test_vega_spec_must_be_an_object():
    assert vega_reason([1]) == "spec is not an object"
    assert vega_reason(None) == "spec is not an object"


def test_vega_url_data_is_dropped():
    assert vega_reason({"mark": "bar", "data": {"url": "https://evil/x.csv"}}) == \
        "only inline data (data.values) is allowed"


def test_vega_url_anywhere_in_nested_data_is_dropped():
    spec = {"layer": [{"mark": "line", "transform": [{"lookup": "id", "from": {"data": {"url": "x.json"},
                                                                                   "key": "id"}}]}]}
    assert vega_reason(spec) == "only inline data (data.values) is allowed"
    assert vega_reason({"mark": "bar", "data": {"values": [], "format": {"url": "x"}}}) == \
        "'url' is not allowed (no external data, images or links)"


def test_vega_data_generators_are_not_inline_data():
    assert vega_reason({"mark": "point", "data": {"sequence": {"start": 0, "stop": 1e9}}}) == \
        "only inline data (data.values) is allowed"


def test_vega_image_marks_and_links_are_dropped():
    assert vega_reason({"mark": "image", "data": {"values": []}}) == "image marks are not allowed"
    assert vega_reason({"mark": {"type": "image", "width": 5}}) == "image marks are not allowed"
    assert vega_reason({"mark": "point", "encoding": {"url": {"field": "u"}}}) == \
        "'url' is not allowed (no external data, images or links)"
    assert vega_reason({"mark": "point", "encoding": {"href": {"field": "u"}}}) == \
        "'href' is not allowed (no external data, images or links)"


def test_vega_url_fields_inside_inline_rows_are_fine():
    assert vega_reason({"mark": "text", "data": {"values": [{"url": "https://example.org"}]}}) is None


def test_vega_row_cap_counts_all_inline_data():
    rows = [{"a": i} for i in range(2000)]
    assert vega_reason({"layer": [{"mark": "bar", "data": {"values": rows}}, {"mark": "line", "data": {"values": rows}}]}) is None
    spec = {"datasets": {"d": rows}, "layer": [{"mark": "bar", "data": {"values": rows + [{"a": 0}]}}]}
    assert vega_reason(spec) == "4001 data rows (limit 4000)"
    assert vega_reason({"mark": "bar", "data": {"values": "a\n" * 4000 + "b", "format": {"type": "csv"}}}) == \
        "4001 data rows (limit 4000)"


def test_vega_spec_size_cap():
    spec = {"mark": "bar", "data": {"values": [{"a": "x" * 200_000}, {"a": "y" * 200_000}, {"a": "z" * 200_000}]}}
    assert vega_reason(spec) == "spec is 600061 bytes (limit 524288)"


def compose(depth, operator="vconcat"):
    view = {"mark": "bar"}
    for _ in range(depth):
        view = {operator: [view]} if operator != "facet" else {"facet": {"field": "f"}, "spec": view}
    return view


@pytest.mark.parametrize("operator", ["vconcat", "hconcat", "concat", "facet"])
def test_vega_composition_depth_cap(operator):
    assert vega_reason(compose(8, operator)) is None
    assert vega_reason(compose(9, operator)) == "composition is nested 9 levels deep (limit 8)"


def test_vega_layer_cap():
    assert vega_reason({"layer": [{"mark": "bar"}] * 16}) is None
    assert vega_reason({"layer": [{"mark": "bar"}] * 10 + [{"layer": [{"mark": "bar"}] * 7}]}) == \
        "17 layers (limit 16)"


def test_vega_caps_are_configurable():
    caps = Caps(vega_lite_rows_max=1, vega_lite_layers_max=1, vega_lite_depth=1)
    assert vega_reason(chart()["spec"], caps) == "2 data rows (limit 1)"


# --- next_actions (§4) ---

def action(action_id="again", **parts):
    return {"action_id": action_id, "label": "Again", "kind": "form", "fields": [], "prefill": {}, **parts}


def test_action_with_fields_and_prefill_is_normalized():
    raw = action(fields=[{"name": " size ", "label": " Size ", "kind": "integer", "min": 2, "max": 5, "default": 3,
                          "x-extra": 1, "help": "How many"},
                         {"name": "mode", "label": "Mode", "kind": "enum",
                          "options": [{"value": "a", "label": " A "}]}],
                 prefill={"size": 4, "mode": "a"})
    payload = run(next_actions=[raw])
    assert payload["next_actions"] == [{
        "action_id": "again", "label": "Again", "kind": "form",
        "fields": [{"name": "size", "label": "Size", "kind": "integer", "default": 3, "help": "How many", "min": 2,
                    "max": 5},
                   {"name": "mode", "label": "Mode", "kind": "enum", "options": [{"value": "a", "label": "A"}]}],
        "prefill": {"mode": "a", "size": 4}}]
    assert system_notices(payload) == []


def test_plain_button_action_and_defaults_for_missing_parts():
    payload = run(next_actions=[{"action_id": "ok", "label": "OK"}])
    assert payload["next_actions"] == [{"action_id": "ok", "label": "OK", "kind": "form", "fields": [],
                                        "prefill": {}}]


@pytest.mark.parametrize("raw, reason", [
    ("x", "action 1 is not an object"),
    ({"label": "L"}, "action 1 needs an action_id of 1–64 characters"),
    ({"action_id": "  ", "label": "L"}, "action 1 needs an action_id of 1–64 characters"),
    ({"action_id": "a" * 65, "label": "L"}, "action 1 needs an action_id of 1–64 characters"),
    ({"action_id": "a", "label": " "}, "action 'a' has no label"),
    ({"action_id": "a", "label": "L", "kind": "link"}, "action 'a' has unknown kind 'link'"),
    ({"action_id": "a", "label": "L", "fields": {}}, "action 'a': fields is not a list"),
])
def test_malformed_actions_are_dropped(raw, reason):
    payload = run(next_actions=[raw])
    assert payload["next_actions"] == []
    assert system_notices(payload) == [f"System notice: actions were dropped: {reason}."]


def test_action_id_of_64_chars_is_fine_and_duplicates_dropped():
    payload = run(next_actions=[action("a" * 64), action("b"), action("b")])
    assert [a["action_id"] for a in payload["next_actions"]] == ["a" * 64, "b"]
    assert system_notices(payload) == ["System notice: actions were dropped: action 'b' is offered twice."]


def test_actions_cap():
    payload = run(next_actions=[action(str(i)) for i in range(12)])
    assert [a["action_id"] for a in payload["next_actions"]] == [str(i) for i in range(10)]
    assert system_notices(payload) == [
        "System notice: too many actions; the rest were dropped: only the first 10 are offered."]


def test_next_actions_not_a_list():
    payload = run(next_actions={"action_id": "x"})
    assert payload["next_actions"] == []
    assert system_notices(payload) == ["System notice: the runner's result was malformed: next_actions is not a list."]


def test_action_fields_are_validated_like_input_schema_without_files():
    fields = [{"name": "f", "label": "F", "kind": "file"},
              {"name": "d", "label": "D", "kind": "date"},
              {"name": "ok", "label": "OK", "kind": "string"},
              {"name": "ok", "label": "Again", "kind": "text"},
              {"name": "e", "label": "E", "kind": "enum", "options": []}]
    payload = run(next_actions=[action(fields=fields)])
    assert payload["next_actions"][0]["fields"] == [{"name": "ok", "label": "OK", "kind": "string"}]
    assert system_notices(payload) == [
        "System notice: action form fields were dropped: action 'again', field 1: File fields are only allowed in "
        "the input schema.; action 'again', field 2: Unknown field kind 'date'. Use one of: string, text, integer, "
        "number, boolean, enum, multi_enum.; action 'again', field 4: the name 'ok' is already used (+1 more)."]


def test_action_fields_cap():
    fields = [{"name": f"f{i}", "label": "F", "kind": "string"} for i in range(30)]
    payload = run(next_actions=[action(fields=fields)])
    assert [f["name"] for f in payload["next_actions"][0]["fields"]] == [f"f{i}" for i in range(25)]
    assert system_notices(payload) == [
        "System notice: action forms were too large and were shortened: action 'again': only the first 25 fields "
        "kept."]


@pytest.mark.parametrize("kind, limit", [("enum", 100), ("multi_enum", 200)])
def test_action_option_caps_cut_options(kind, limit):
    options = [{"value": f"v{i}", "label": "V"} for i in range(limit + 5)]
    payload = run(next_actions=[action(fields=[{"name": "c", "label": "C", "kind": kind, "options": options}])])
    assert len(payload["next_actions"][0]["fields"][0]["options"]) == limit
    assert system_notices(payload) == [
        f"System notice: action forms were too large and were shortened: action 'again', field 'c': only the first "
        f"{limit} options kept."]


def test_prefill_drops_unknown_and_wrong_type_with_one_notice():
    fields = [{"name": "n", "label": "N", "kind": "integer", "max": 5}, {"name": "b", "label": "B", "kind": "boolean"},
              {"name": "m", "label": "M", "kind": "multi_enum", "options": [{"value": "a", "label": "A"}]}]
    raw = [action("one", fields=fields, prefill={"n": "3", "b": "yes", "m": ["a", "a"], "zz": 1, "n2": 2}),
           action("two", fields=fields, prefill={"n": 9, "b": True})]
    payload = run(next_actions=raw)
    assert [a["prefill"] for a in payload["next_actions"]] == [{"m": ["a"]}, {"b": True}]
    assert system_notices(payload) == [
        "System notice: prefilled values were dropped: one.b (wrong type or value); one.n (wrong type or value); "
        "one.n2 (unknown field) (+2 more)."]


def test_prefill_not_an_object():
    payload = run(next_actions=[action(prefill=[1])])
    assert payload["next_actions"][0]["prefill"] == {}
    assert system_notices(payload) == ["System notice: prefilled values were dropped: again (prefill is not an object)."]


# --- state (§5) ---

def test_state_is_key_sorted_and_canonical():
    payload = run(state={"b": {"z": 1, "y": [float("nan")]}, "a": 1})
    assert payload["state"] == {"a": 1, "b": {"y": [None], "z": 1}}
    assert list(payload["state"]) == ["a", "b"] and list(payload["state"]["b"]) == ["y", "z"]


def test_state_absent_stays_none_and_empty_stays_empty():
    assert run(state=None)["state"] is None
    assert run(state={})["state"] == {}


@pytest.mark.parametrize("state", [[1, 2], "s", 3, True])
def test_non_object_state_is_dropped(state):
    payload = run(state=state)
    assert payload["state"] is None
    assert system_notices(payload) == [
        f"System notice: state values were dropped: state must be an object, not {type(state).__name__}; it was "
        "dropped."]


def test_state_keeps_the_longest_sorted_key_prefix_that_fits():
    state = {"d": "x" * 10, "a": "x" * 33_000, "c": "x" * 10, "b": "x" * 40_000, "e": 1}
    payload = run(state=state)
    assert list(payload["state"]) == ["a"]  # "c" would fit by size, but the kept part is a prefix
    assert system_notices(payload) == [
        "System notice: state values were dropped: 4 keys dropped to fit 65536 bytes: 'b', 'c', 'd' (+1 more)."]


def test_state_exactly_at_the_cap_is_kept():
    caps = Caps(state_max_bytes=1024)
    value = "x" * (1024 - len('{"k":""}'))
    assert run(caps=caps, state={"k": value})["state"] == {"k": value}
    assert run(caps=caps, state={"k": value + "x"})["state"] == {}


def test_state_values_are_cut_to_the_json_depth():
    payload = run(state={"deep": nested(12)})
    assert canonical_json(payload["state"]) == b'{"deep":' + b"[" * 9 + b"null" + b"]" * 9 + b"}"
    assert system_notices(payload) == [
        "System notice: state values were dropped: 'deep' shortened (depth, size or non-JSON values)."]


# --- artifacts (§7) ---

def test_artifact_ids():
    assert artifact_id_for(["Report.PDF", "report.pdf", "sub/Å b.txt", "report_pdf"]) == {
        "Report.PDF": "report_pdf", "report.pdf": "report_pdf_2", "report_pdf": "report_pdf_3",
        "sub/Å b.txt": "sub___b_txt"}
    assert artifact_id_for(["b", "a.b", "a_b", "a_b_2"]) == {"a.b": "a_b", "a_b": "a_b_2", "a_b_2": "a_b_2_2", "b": "b"}


def test_artifact_ids_do_not_depend_on_listing_order():
    paths = ["x.csv", "X.csv", "x_csv", "y/x.csv"]
    assert artifact_id_for(paths) == artifact_id_for(list(reversed(paths)))


def test_artifacts_are_sorted_validated_and_given_ids():
    raw = [{"path": "output/b.pdf", "bytes": 5, "id": "ignored"}, {"path": "output/a/B.csv", "bytes": 0},
           {"path": "output/b.pdf", "bytes": 7}]
    assert run(artifacts=raw)["artifacts"] == [
        {"id": "a_b_csv", "path": "output/a/B.csv", "bytes": 0}, {"id": "b_pdf", "path": "output/b.pdf", "bytes": 5}]


@pytest.mark.parametrize("path", ["/etc/passwd", "output/../secret", "output/a/../../x", "output/", "output",
                                  "input/a.csv", "a.csv", "output//a", "output/./a", "output/a\\b", "output/a\x00",
                                  None, 5, "/work/output/a"])
def test_artifact_paths_outside_output_are_dropped(path):
    payload = run(artifacts=[{"path": path, "bytes": 1}, {"path": "output/ok.txt", "bytes": 1}])
    assert payload["artifacts"] == [{"id": "ok_txt", "path": "output/ok.txt", "bytes": 1}]
    assert system_notices(payload)[0].startswith("System notice: files were not offered for download: ")
    assert "is not a file path inside output/" in system_notices(payload)[0]


@pytest.mark.parametrize("size", [-1, None, "3", 1.5, True])
def test_artifact_size_must_be_a_non_negative_integer(size):
    payload = run(artifacts=[{"path": "output/a", "bytes": size}])
    assert payload["artifacts"] == []
    assert system_notices(payload) == ["System notice: files were not offered for download: 'output/a' has no valid size."]


def test_artifacts_cap_and_path_cap_keep_ids_stable():
    long = "a" * 1100
    raw = [{"path": f"output/{p}", "bytes": 1} for p in ("x.txt", "x_txt", long)]
    payload = run(caps=Caps(artifacts_max=1), artifacts=raw)
    assert payload["artifacts"] == [{"id": "x_txt", "path": "output/x.txt", "bytes": 1}]
    payload = run(artifacts=list(reversed(raw)))
    assert [a["id"] for a in payload["artifacts"]] == ["x_txt", "x_txt_2"]
    assert system_notices(payload)[0].endswith("has a path longer than 1024 bytes.")


def test_artifacts_not_a_list():
    payload = run(artifacts="output/a")
    assert payload["artifacts"] == []
    assert system_notices(payload) == ["System notice: the runner's result was malformed: artifacts is not a list."]


# --- system notices ---

def test_one_notice_per_category_in_fixed_order():
    payload = run(outputs=[{"kind": "x"}, {"kind": "table", "columns": []}, {"kind": "markdown", "markdown": "m" * 70_000}],
                  artifacts=[{"path": "../x", "bytes": 1}], state=[1])
    assert [m.split(":")[1].strip() for m in system_notices(payload)] == [
        "outputs were dropped", "Markdown text was too long and was shortened", "state values were dropped",
        "files were not offered for download"]
    assert payload["outputs"][-1]["system"] is True


def test_notice_details_quoting_tool_text_stay_short():
    field = {"name": "n", "label": "L" * 5000, "kind": "integer", "max": 1, "default": 2}
    payload = run(next_actions=[action(fields=[field] * 5)])
    [message] = system_notices(payload)
    assert len(message) < 3 * 200 + 200
    assert message.startswith("System notice: action form fields were dropped: action 'again', field 1: “LLL")
