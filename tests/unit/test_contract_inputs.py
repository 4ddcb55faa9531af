import hashlib

import pytest

from skriptoteket_ext.contract import Caps, normalize_inputs, settings_schema_hash, validate_action_input

OPTIONS = [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}, {"value": "c", "label": "C"}]


def one(kind, value, *, settings=False, **extra):
    """Normalize a single value of a single field named x; returns (value or None, error codes)."""
    fields = [{"name": "x", "label": "X", "kind": kind, **extra}]
    values, errors = normalize_inputs(fields, {"x": value}, 0, settings=settings)
    return values.get("x"), [e.code for e in errors]


def test_unknown_names_are_rejected_and_named():
    fields = [{"name": "a", "label": "A", "kind": "string"}]
    values, errors = normalize_inputs(fields, {"a": "x", "zeta": 1, "beta": 2}, 0)
    assert values == {"a": "x"}
    assert [(e.path, e.code) for e in errors] == [("", "contract.input.unknown")]
    assert errors[0].message == "The form sent fields this tool does not have: 'beta', 'zeta'."
    assert errors[0].translated("sv") == "Formuläret skickade fält som verktyget inte har: 'beta', 'zeta'."


def test_values_must_be_an_object():
    assert normalize_inputs([], ["a"], 0)[1][0].code == "contract.input.not_object"
    assert normalize_inputs([], None, 0) == ({}, [])


@pytest.mark.parametrize("value", [None, "", "   ", "\n\t"])
def test_missing_or_blank_is_omitted(value):
    assert one("string", value) == (None, [])
    assert normalize_inputs([{"name": "x", "label": "X", "kind": "string"}], {"x": value}, 0) == ({}, [])


def test_missing_field_is_omitted():
    assert normalize_inputs([{"name": "x", "label": "X", "kind": "integer"}], {}, 0) == ({}, [])


@pytest.mark.parametrize("kind", ["string", "text", "integer", "number", "boolean", "enum", "multi_enum"])
def test_required_blank_is_an_error(kind):
    fields = [{"name": "x", "label": "Namn", "kind": kind, "required": True, "options": OPTIONS}]
    blank = [] if kind == "multi_enum" else " "
    values, errors = normalize_inputs(fields, {"x": blank}, 0)
    assert values == {}
    assert [(e.path, e.code) for e in errors] == [("/x", "contract.input.required")]
    assert errors[0].message == "“Namn” is required."
    assert errors[0].translated("sv") == "”Namn” måste fyllas i."


def test_required_false_boolean_is_a_value():
    assert one("boolean", False, required=True) == (False, [])


def test_strings_are_trimmed():
    assert one("string", "  hej  ") == ("hej", [])
    assert one("text", "\n rad 1\nrad 2 \n") == ("rad 1\nrad 2", [])


def test_settings_strings_are_not_trimmed_and_spaces_are_a_value():
    assert one("string", "  hej  ", settings=True) == ("  hej  ", [])
    assert one("string", " ", settings=True) == (" ", [])
    assert one("string", "", settings=True) == (None, [])
    assert one("integer", " 4 ", settings=True) == (4, [])


def test_string_type_and_max_length():
    assert one("string", 5) == (None, ["contract.input.text"])
    assert one("string", " abc ", max_length=3) == ("abc", [])
    value, codes = one("text", "abcd", max_length=3)
    assert (value, codes) == (None, ["contract.input.too_long"])
    errors = normalize_inputs([{"name": "x", "label": "X", "kind": "text", "max_length": 3}], {"x": "abcd"}, 0)[1]
    assert errors[0].message == "“X” can be at most 3 characters long (it is 4)."


@pytest.mark.parametrize("value, expected", [(7, 7), (-2, -2), ("12", 12), (" +3 ", 3), ("-0", 0)])
def test_integer_accepts_int_and_numeric_string(value, expected):
    result, codes = one("integer", value)
    assert (result, codes) == (expected, [])
    assert type(result) is int


@pytest.mark.parametrize("value", [True, False, 1.0, 2.5, "2.5", "1e3", "abc", "1_000", [1], {"a": 1}, "9" * 200])
def test_integer_rejects_everything_else(value):
    assert one("integer", value) == (None, ["contract.input.integer"])


def test_integer_bounds():
    assert one("integer", 1, min=1, max=3) == (1, [])
    assert one("integer", "3", min=1, max=3) == (3, [])
    assert one("integer", 0, min=1, max=3) == (None, ["contract.input.too_small"])
    assert one("integer", "4", min=1, max=3) == (None, ["contract.input.too_large"])


@pytest.mark.parametrize("value, expected", [(2, 2), (2.5, 2.5), ("2.5", 2.5), (" -1e2 ", -100.0), (".5", 0.5),
                                             ("7", 7)])
def test_number_accepts_int_float_and_numeric_string(value, expected):
    result, codes = one("number", value)
    assert (result, codes) == (expected, [])
    assert type(result) is type(expected)


@pytest.mark.parametrize("value", [True, float("nan"), float("inf"), float("-inf"), "nan", "inf", "Infinity",
                                   "1e999", "1,5", "abc", "0x10", [2]])
def test_number_rejects_nan_inf_bool_and_text(value):
    assert one("number", value) == (None, ["contract.input.number"])


def test_number_bounds():
    assert one("number", 0.5, min=0.5, max=1) == (0.5, [])
    assert one("number", "0.49", min=0.5) == (None, ["contract.input.too_small"])
    assert one("number", 1.01, max=1) == (None, ["contract.input.too_large"])


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("1", True), ("YES", True), (" on ", True),
    ("false", False), ("0", False), ("No", False), ("off", False), (1, True), (0, False)])
def test_boolean_words(value, expected):
    assert one("boolean", value) == (expected, [])


@pytest.mark.parametrize("value", ["y", "sant", 2, 1.0, ["true"]])
def test_boolean_rejects_other_values(value):
    assert one("boolean", value) == (None, ["contract.input.boolean"])


def test_enum_must_be_an_option():
    assert one("enum", "b", options=OPTIONS) == ("b", [])
    assert one("enum", " b ", options=OPTIONS) == ("b", [])
    assert one("enum", "B", options=OPTIONS) == (None, ["contract.input.enum"])
    assert one("enum", ["a"], options=OPTIONS) == (None, ["contract.input.enum"])


def test_multi_enum_deduplicates_in_order():
    assert one("multi_enum", ["c", "a", "c", "a", "b"], options=OPTIONS) == (["c", "a", "b"], [])


def test_multi_enum_rejects_unknown_choices_and_non_lists():
    assert one("multi_enum", "a", options=OPTIONS) == (None, ["contract.input.multi_enum_list"])
    fields = [{"name": "x", "label": "X", "kind": "multi_enum", "options": OPTIONS}]
    errors = normalize_inputs(fields, {"x": ["a", "q", 3]}, 0)[1]
    assert [e.code for e in errors] == ["contract.input.multi_enum"]
    assert errors[0].message == "“X”: these choices are not among the options: 'q', 'int'."


FILE_FIELD = {"name": "files", "label": "Klasslista", "kind": "file", "min": 1, "max": 2}


@pytest.mark.parametrize("count, codes", [(0, ["contract.input.files_too_few"]), (1, []), (2, []),
                                          (3, ["contract.input.files_too_many"])])
def test_file_count_within_min_and_max(count, codes):
    values, errors = normalize_inputs([FILE_FIELD], {}, count)
    assert values == {}
    assert [e.code for e in errors] == codes
    assert all(e.path == "/files" for e in errors)


def test_file_count_defaults():
    optional = {"name": "f", "label": "F", "kind": "file"}
    assert normalize_inputs([optional], {}, 0) == ({}, [])
    assert [e.code for e in normalize_inputs([optional], {}, 21)[1]] == ["contract.input.files_too_many"]
    assert [e.code for e in normalize_inputs([optional], {}, 3, caps=Caps(upload_max_files=2))[1]] == [
        "contract.input.files_too_many"]
    required = {**optional, "required": True}
    assert [e.code for e in normalize_inputs([required], {}, 0)[1]] == ["contract.input.files_too_few"]


def test_files_without_a_file_field_are_rejected():
    values, errors = normalize_inputs([{"name": "a", "label": "A", "kind": "string"}], {"a": "x"}, 1)
    assert values == {"a": "x"}
    assert [(e.path, e.code) for e in errors] == [("", "contract.input.files_unexpected")]
    assert errors[0].message == "This tool does not take files, but 1 were uploaded."


def test_file_field_takes_no_value():
    errors = normalize_inputs([FILE_FIELD], {"files": "a.csv"}, 1)[1]
    assert [(e.path, e.code) for e in errors] == [("/files", "contract.input.file_value")]


def test_all_errors_are_reported_and_values_keep_field_order():
    fields = [{"name": "b", "label": "B", "kind": "integer"}, {"name": "a", "label": "A", "kind": "string"},
              {"name": "c", "label": "C", "kind": "boolean", "required": True}]
    values, errors = normalize_inputs(fields, {"a": " x ", "b": "2", "c": None}, 0)
    assert list(values.items()) == [("b", 2), ("a", "x")]
    assert [e.code for e in errors] == ["contract.input.required"]


ACTIONS = [
    {"action_id": "regroup", "label": "Regroup", "kind": "form",
     "fields": [{"name": "size", "label": "Group size", "kind": "integer", "min": 2, "max": 6, "required": True}],
     "prefill": {}},
    {"action_id": "done", "label": "Done", "kind": "form", "fields": [], "prefill": {}},
]


def test_action_not_offered_is_rejected():
    values, errors = validate_action_input(ACTIONS, "delete_all", {})
    assert values == {}
    assert [(e.path, e.code) for e in errors] == [("/action_id", "contract.action.not_offered")]
    assert validate_action_input([], "done", {})[1][0].code == "contract.action.not_offered"
    assert validate_action_input(None, "done", {})[1][0].code == "contract.action.not_offered"
    assert validate_action_input(ACTIONS, None, {})[1][0].code == "contract.action.not_offered"


def test_action_input_is_validated_like_input_schema():
    assert validate_action_input(ACTIONS, "regroup", {"size": "4"}) == ({"size": 4}, [])
    assert [e.code for e in validate_action_input(ACTIONS, "regroup", {"size": 9})[1]] == ["contract.input.too_large"]
    assert [e.code for e in validate_action_input(ACTIONS, "regroup", {})[1]] == ["contract.input.required"]
    assert [e.code for e in validate_action_input(ACTIONS, "regroup", {"size": 3, "x": 1})[1]] == [
        "contract.input.unknown"]


def test_plain_button_action_takes_no_values():
    assert validate_action_input(ACTIONS, "done", None) == ({}, [])
    assert [e.code for e in validate_action_input(ACTIONS, "done", {"x": 1})[1]] == ["contract.input.unknown"]


def test_settings_schema_hash_is_stable_and_key_order_free():
    schema = [{"name": "sig", "label": "Signature", "kind": "text"}]
    reordered = [{"kind": "text", "label": "Signature", "name": "sig"}]
    assert settings_schema_hash(schema) == settings_schema_hash(reordered)
    expected = hashlib.sha256(b'[{"kind":"text","label":"Signature","name":"sig"}]').hexdigest()
    assert settings_schema_hash(schema) == expected
    assert settings_schema_hash(schema) != settings_schema_hash([{**schema[0], "label": "Sign"}])
    assert settings_schema_hash(None) == "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"
