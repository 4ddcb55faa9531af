"""Determinism, the whole-payload budget, and property tests over arbitrary input."""

import json
import random
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skriptoteket_ext.contract import DEFAULT_CAPS, Caps, canonical_json, normalize_result


def envelope(**parts):
    raw = {"contract_version": 2, "status": "succeeded", "error_summary": None, "outputs": [], "next_actions": [],
           "state": None, "artifacts": []}
    raw.update(parts)
    return raw


def system_notices(payload):
    return [o["message"] for o in payload["outputs"] if o.get("system")]


def shuffled(value, rng):
    """Same JSON value, every object's keys in a random order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


RICH = envelope(
    outputs=[
        {"kind": "table", "title": "T", "columns": [{"label": "Ten", "key": "10"}, {"key": "2", "label": "Two"}],
         "rows": [{"2": "b", "10": "a", "z": 1}, {"10": [1], "2": 2}]},
        {"kind": "json", "value": {"z": 1, "a": {"c": [1, {"y": 2, "x": 3}], "b": None}}},
        {"value": 1, "kind": "notice", "message": "m", "level": "info"},
        {"kind": "vega_lite", "spec": {"mark": "bar", "encoding": {"y": {"type": "quantitative", "field": "a"}},
                                       "data": {"values": [{"b": 1, "a": 2}]}}},
        {"kind": "bogus"}, {"kind": "table", "columns": []},
    ],
    next_actions=[{"label": "Go", "action_id": "go", "fields": [
        {"kind": "enum", "name": "e", "label": "E", "options": [{"value": "a", "label": "A"}]},
        {"name": "n", "kind": "integer", "label": "N"}], "prefill": {"zz": 1, "e": "a", "n": "x", "yy": 2, "xx": 3}}],
    state={"k2": {"b": 1, "a": 2}, "k1": [3]},
    artifacts=[{"path": "output/b.txt", "bytes": 2}, {"bytes": 1, "path": "output/B.txt"}, {"path": "../x", "bytes": 1}],
)


def test_any_key_order_gives_byte_identical_payloads():
    expected = canonical_json(normalize_result(RICH))
    for seed in range(20):
        assert canonical_json(normalize_result(shuffled(RICH, random.Random(seed)))) == expected


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": [2, 1], "a": {"y": "å", "x": None}}) == '{"a":{"x":null,"y":"å"},"b":[2,1]}'.encode()


def test_lone_surrogates_are_replaced_so_the_payload_encodes():
    payload = normalize_result(envelope(outputs=[{"kind": "markdown", "markdown": "a\ud800b"}],
                                        state={"k\udc00": "v\ud800"}))
    assert payload["outputs"][0]["markdown"] == "a?b"
    assert payload["state"] == {"k?": "v?"}
    canonical_json(payload)


def test_normalizing_again_keeps_actions_state_and_artifacts():
    # (outputs are not a fixed point by design: normalized table rows are lists, tools send objects)
    once = normalize_result(RICH)
    twice = normalize_result(once)
    assert (twice["next_actions"], twice["state"], twice["artifacts"]) == (
        once["next_actions"], once["state"], once["artifacts"])


# --- the whole-payload budget ---

def big_html(n):
    return [{"kind": "html_sandboxed", "html": f"{i}" + "x" * 90_000} for i in range(n)]


def test_outputs_are_removed_from_the_end_first():
    payload = normalize_result(envelope(outputs=big_html(5), next_actions=[{"action_id": "a", "label": "A"}]))
    assert len(canonical_json(payload)) <= 256 * 1024
    kept = [o for o in payload["outputs"] if not o.get("system")]
    assert [o["html"][0] for o in kept] == ["0", "1"]
    assert payload["next_actions"] == [{"action_id": "a", "label": "A", "kind": "form", "fields": [], "prefill": {}}]
    assert system_notices(payload) == ["System notice: the result was too large to show in full: 3 outputs removed."]


def test_then_actions_then_notices():
    caps = Caps(payload_max_bytes=3000)
    actions = [{"action_id": f"a{i}", "label": "L" * 600} for i in range(4)]
    outputs = [{"kind": "markdown", "markdown": "m" * 500}] * 3 + [{"kind": "bogus"}]
    payload = normalize_result(envelope(outputs=outputs, next_actions=actions), caps)
    assert len(canonical_json(payload)) <= 3000
    assert [o for o in payload["outputs"] if not o.get("system")] == []
    assert [a["action_id"] for a in payload["next_actions"]] == ["a0", "a1", "a2"]
    assert system_notices(payload) == [
        "System notice: outputs were dropped: output 4 has unknown kind 'bogus'.",
        "System notice: the result was too large to show in full: 3 outputs removed; 1 actions removed."]

    payload = normalize_result(envelope(outputs=outputs, next_actions=actions, state={"s": "x" * 2650}), caps)
    assert len(canonical_json(payload)) <= 3000
    assert payload["next_actions"] == []
    assert system_notices(payload) == [
        "System notice: the result was too large to show in full: 3 outputs removed; 4 actions removed; "
        "1 system notices removed."]


def test_record_itself_is_shed_only_when_caps_exceed_the_budget():
    caps = Caps(payload_max_bytes=2048)
    raw = envelope(status="failed", error_summary="e" * 1500, state={"s": "x" * 1000},
                   artifacts=[{"path": f"output/{i}.txt", "bytes": 1} for i in range(40)])
    payload = normalize_result(raw, caps)
    assert len(canonical_json(payload)) <= 2048
    assert payload["artifacts"] == [] and payload["state"] is None
    assert payload["error_summary"].startswith("eee")


def test_typical_result_normalizes_fast():
    start = time.perf_counter()
    for _ in range(200):
        normalize_result(RICH)
    per_run = (time.perf_counter() - start) / 200
    assert per_run < 0.002, per_run


# --- properties ---

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20))
json_values = st.recursive(json_leaf, lambda children: st.one_of(
    st.lists(children, max_size=5), st.dictionaries(st.text(max_size=8), children, max_size=5)), max_leaves=30)

names = st.sampled_from(["a", "b", "10", "2", "x", " ", ""])
kinds = st.sampled_from(["string", "text", "integer", "number", "boolean", "enum", "multi_enum", "file", "date"])


def maybe(strategy):
    """Mostly well-typed, sometimes any JSON, so both the happy paths and the drops are reached."""
    return st.one_of(strategy, strategy, strategy, json_values)


fields = st.fixed_dictionaries({"name": maybe(names), "label": maybe(names), "kind": maybe(kinds)}, optional={
    "options": maybe(st.lists(st.fixed_dictionaries({"value": maybe(names), "label": maybe(names)}), max_size=4)),
    "min": json_values, "max": json_values, "default": json_values, "required": json_values,
    "max_length": json_values})
outputs = st.one_of(
    st.fixed_dictionaries({"kind": st.just("notice"), "level": maybe(st.sampled_from(["info", "warning", "error"])),
                           "message": maybe(st.text())}),
    st.fixed_dictionaries({"kind": st.just("markdown"), "markdown": maybe(st.text())}),
    st.fixed_dictionaries({"kind": st.just("html_sandboxed"), "html": maybe(st.text())}),
    st.fixed_dictionaries({"kind": st.just("json"), "value": json_values}, optional={"title": json_values}),
    st.fixed_dictionaries({"kind": st.just("table"), "columns": maybe(st.lists(
        st.fixed_dictionaries({"key": maybe(names)}, optional={"label": json_values}), max_size=4)),
        "rows": maybe(st.lists(maybe(st.dictionaries(names, json_values, max_size=4)), max_size=5))}),
    st.fixed_dictionaries({"kind": st.just("vega_lite"), "spec": json_values}),
    json_values,
)
actions = st.fixed_dictionaries(
    {"action_id": maybe(names), "label": maybe(names)},
    optional={"kind": json_values, "fields": maybe(st.lists(fields, max_size=4)),
              "prefill": maybe(st.dictionaries(names, json_values, max_size=4))})
artifacts = st.fixed_dictionaries({"path": maybe(st.sampled_from(
    ["output/a.txt", "output/A.txt", "output/a_txt", "output/../x", "/etc/x", "output/", "output/d/e.csv"])),
    "bytes": maybe(st.integers(min_value=0))})
envelopes = st.fixed_dictionaries(
    {"contract_version": st.sampled_from([2] * 8 + [1, "2"]),
     "status": st.sampled_from(["succeeded"] * 4 + ["failed", "timed_out", "running", None])},
    optional={"error_summary": maybe(st.one_of(st.none(), st.text())), "outputs": maybe(st.lists(outputs, max_size=8)),
              "next_actions": maybe(st.lists(actions, max_size=4)),
              "state": maybe(st.dictionaries(st.text(max_size=5), json_values, max_size=6)),
              "artifacts": maybe(st.lists(artifacts, max_size=5))})

SMALL = Caps(payload_max_bytes=1024, outputs_max=3, next_actions_max=2, action_fields_max=2, table_rows_max=2,
             table_columns_max=2, table_cell_bytes=8, json_depth=2, json_keys_max=2, json_array_max=2,
             notice_message_bytes=16, markdown_bytes=16, html_bytes=16, state_max_bytes=64, error_summary_bytes=32)


def check(raw, caps):
    payload = normalize_result(raw, caps)
    data = canonical_json(payload)
    assert len(data) <= caps.payload_max_bytes
    assert json.loads(data) == payload
    assert set(payload) == {"contract_version", "status", "error_summary", "outputs", "next_actions", "state",
                            "artifacts"}
    assert payload["contract_version"] == 2
    assert payload["status"] in ("succeeded", "failed", "timed_out")
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_never_raises_on_arbitrary_json(raw):
    check(raw, DEFAULT_CAPS)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes, st.randoms(use_true_random=False))
def test_envelopes_stay_in_budget_and_are_order_independent(raw, rng):
    for caps in (DEFAULT_CAPS, SMALL):
        assert check(raw, caps) == check(shuffled(raw, rng), caps)
