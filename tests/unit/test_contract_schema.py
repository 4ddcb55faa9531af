import pytest

from skriptoteket_ext.contract import Caps, validate_input_schema, validate_settings_schema


def paths_and_codes(issues):
    return [(i.path, i.code) for i in issues]


def enum(name="choice", **extra):
    return {"name": name, "label": "Choice", "kind": "enum",
            "options": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}], **extra}


def test_valid_schema_with_every_kind_has_no_issues():
    schema = [
        {"name": "title", "label": "Title", "kind": "string", "max_length": 80, "default": "x", "required": True,
         "help": "Short", "placeholder": "e.g. Week 3"},
        {"name": "notes", "label": "Notes", "kind": "text"},
        {"name": "count", "label": "Count", "kind": "integer", "min": 1, "max": 10, "default": 3},
        {"name": "ratio", "label": "Ratio", "kind": "number", "min": 0, "max": 1.5, "default": 0.5},
        {"name": "flag", "label": "Flag", "kind": "boolean", "default": False},
        enum(default="a"),
        {**enum("many"), "kind": "multi_enum", "default": ["a", "b"]},
        {"name": "files", "label": "Files", "kind": "file", "accept": [".csv", "text/csv", "image/*"], "min": 1,
         "max": 5},
    ]
    assert validate_input_schema(schema) == []


def test_empty_schema_is_valid_and_settings_may_be_none():
    assert validate_input_schema([]) == []
    assert validate_settings_schema(None) == []


@pytest.mark.parametrize("schema", [None, {}, "fields", 3])
def test_schema_must_be_a_list(schema):
    assert paths_and_codes(validate_input_schema(schema)) == [("", "contract.schema.not_list")]


def test_field_must_be_an_object():
    assert paths_and_codes(validate_input_schema([enum(), "x"])) == [("/1", "contract.field.not_object")]


@pytest.mark.parametrize("name", [None, "", "   ", 3])
def test_name_must_be_non_empty_text(name):
    assert paths_and_codes(validate_input_schema([{"name": name, "label": "L", "kind": "string"}])) == [
        ("/0/name", "contract.field.name_missing")]


@pytest.mark.parametrize("label", [None, "", "  ", 5])
def test_label_must_be_non_empty_text(label):
    assert paths_and_codes(validate_input_schema([{"name": "a", "label": label, "kind": "string"}])) == [
        ("/0/label", "contract.field.label_missing")]


def test_names_are_unique_after_trimming():
    schema = [{"name": "a", "label": "A", "kind": "string"}, {"name": " a ", "label": "B", "kind": "text"}]
    issues = validate_input_schema(schema)
    assert paths_and_codes(issues) == [("/1/name", "contract.field.name_duplicate")]
    assert issues[0].message == "The name 'a' is already used by another field in this form."


def test_unknown_kind():
    issues = validate_input_schema([{"name": "a", "label": "A", "kind": "date"}])
    assert paths_and_codes(issues) == [("/0/kind", "contract.field.kind_invalid")]
    assert issues[0].message == ("Unknown field kind 'date'. Use one of: string, text, integer, number, boolean, "
                                 "enum, multi_enum, file.")


def test_file_field_not_allowed_in_settings():
    schema = [{"name": "f", "label": "F", "kind": "file"}]
    assert paths_and_codes(validate_settings_schema(schema)) == [("/0/kind", "contract.field.file_not_allowed")]


def test_at_most_one_file_field():
    schema = [{"name": "f", "label": "F", "kind": "file"}, {"name": "g", "label": "G", "kind": "file"}]
    assert paths_and_codes(validate_input_schema(schema)) == [("/1/kind", "contract.field.file_multiple")]


@pytest.mark.parametrize("options", [None, [], "a,b", {"a": "A"}])
def test_choice_fields_need_options(options):
    for kind in ("enum", "multi_enum"):
        field = {"name": "c", "label": "C", "kind": kind, "options": options}
        assert paths_and_codes(validate_input_schema([field])) == [("/0/options", "contract.field.options_missing")]


def test_option_problems_have_precise_paths():
    field = {"name": "c", "label": "C", "kind": "enum",
             "options": [{"value": "a", "label": "A"}, "b", {"value": " c", "label": "C"}, {"value": "", "label": "E"},
                         {"value": "a", "label": "A again"}, {"value": "d", "label": " "}]}
    assert paths_and_codes(validate_input_schema([field])) == [
        ("/0/options/1", "contract.option.not_object"),
        ("/0/options/2/value", "contract.option.value_invalid"),
        ("/0/options/3/value", "contract.option.value_invalid"),
        ("/0/options/4/value", "contract.option.value_duplicate"),
        ("/0/options/5/label", "contract.option.label_missing"),
    ]


@pytest.mark.parametrize("kind, limit", [("enum", 100), ("multi_enum", 200)])
def test_option_caps(kind, limit):
    options = [{"value": f"v{i}", "label": f"V{i}"} for i in range(limit)]
    assert validate_input_schema([{"name": "c", "label": "C", "kind": kind, "options": options}]) == []
    options.append({"value": "extra", "label": "Extra"})
    issues = validate_input_schema([{"name": "c", "label": "C", "kind": kind, "options": options}])
    assert paths_and_codes(issues) == [("/0/options", "contract.field.options_too_many")]
    assert issues[0].params == {"max": limit, "count": limit + 1}


def test_option_cap_is_configurable():
    field = enum()
    assert paths_and_codes(validate_input_schema([field], Caps(enum_options_max=1))) == [
        ("/0/options", "contract.field.options_too_many")]


@pytest.mark.parametrize("kind, key", [("string", "min"), ("text", "max"), ("integer", "max_length"),
                                       ("boolean", "options"), ("number", "accept"), ("enum", "min"),
                                       ("file", "default"), ("file", "options")])
def test_keys_that_do_not_apply_to_the_kind(kind, key):
    field = {"name": "x", "label": "X", "kind": kind, key: 1}
    if kind == "enum":
        field["options"] = [{"value": "a", "label": "A"}]
    assert (f"/0/{key}", "contract.field.key_not_allowed") in paths_and_codes(validate_input_schema([field]))


def test_unknown_extra_keys_are_ignored():
    assert validate_input_schema([{"name": "x", "label": "X", "kind": "string", "x-note": "ok"}]) == []


def test_required_help_placeholder_types():
    field = {"name": "x", "label": "X", "kind": "string", "required": "yes", "help": 3, "placeholder": ["p"]}
    assert paths_and_codes(validate_input_schema([field])) == [
        ("/0/required", "contract.field.required_invalid"),
        ("/0/help", "contract.field.text_invalid"),
        ("/0/placeholder", "contract.field.text_invalid"),
    ]


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "10"])
def test_max_length_must_be_positive(value):
    field = {"name": "x", "label": "X", "kind": "text", "max_length": value}
    assert paths_and_codes(validate_input_schema([field])) == [("/0/max_length", "contract.field.max_length_invalid")]


def test_integer_bounds_must_be_integers_and_ordered():
    assert paths_and_codes(validate_input_schema([{"name": "n", "label": "N", "kind": "integer", "min": 1.5,
                                                   "max": True}])) == [
        ("/0/min", "contract.field.bound_integer"), ("/0/max", "contract.field.bound_integer")]
    issues = validate_input_schema([{"name": "n", "label": "N", "kind": "integer", "min": 5, "max": 2}])
    assert paths_and_codes(issues) == [("/0/max", "contract.field.min_gt_max")]
    assert issues[0].message == "'min' (5) is larger than 'max' (2)."


def test_number_bounds_must_be_finite_numbers():
    field = {"name": "n", "label": "N", "kind": "number", "min": float("nan"), "max": "9"}
    assert paths_and_codes(validate_input_schema([field])) == [
        ("/0/min", "contract.field.bound_number"), ("/0/max", "contract.field.bound_number")]
    assert validate_input_schema([{"name": "n", "label": "N", "kind": "number", "min": -1, "max": 0.5}]) == []


def test_file_bounds():
    def codes(**extra):
        return paths_and_codes(validate_input_schema([{"name": "f", "label": "F", "kind": "file", **extra}]))

    assert codes(min=0, max=1) == []
    assert codes(min=-1) == [("/0/min", "contract.field.file_min_invalid")]
    assert codes(max=0) == [("/0/max", "contract.field.file_max_invalid")]
    assert codes(max=21) == [("/0/max", "contract.field.file_max_over_limit")]
    assert codes(max=20) == []
    assert codes(min=3, max=2) == [("/0/min", "contract.field.file_min_gt_max")]
    assert codes(min=21) == [("/0/min", "contract.field.file_min_gt_max")]
    assert codes(accept=".pdf") == [("/0/accept", "contract.field.accept_invalid")]
    assert codes(accept=[".pdf", "pdf", ""]) == [("/0/accept/1", "contract.field.accept_invalid"),
                                                 ("/0/accept/2", "contract.field.accept_invalid")]


def test_file_limit_follows_the_caps():
    field = {"name": "f", "label": "F", "kind": "file", "max": 5}
    assert paths_and_codes(validate_input_schema([field], Caps(upload_max_files=4))) == [
        ("/0/max", "contract.field.file_max_over_limit")]


@pytest.mark.parametrize("field", [
    {"name": "s", "label": "S", "kind": "string", "default": 3},
    {"name": "s", "label": "S", "kind": "string", "max_length": 2, "default": "abc"},
    {"name": "i", "label": "I", "kind": "integer", "default": "3"},
    {"name": "i", "label": "I", "kind": "integer", "default": True},
    {"name": "i", "label": "I", "kind": "integer", "max": 2, "default": 3},
    {"name": "n", "label": "N", "kind": "number", "default": float("inf")},
    {"name": "b", "label": "B", "kind": "boolean", "default": "yes"},
    enum(default="z"),
    {**enum(), "kind": "multi_enum", "default": "a"},
    {**enum(), "kind": "multi_enum", "default": ["a", "z"]},
])
def test_defaults_must_be_type_correct(field):
    issues = validate_input_schema([field])
    assert [i.path for i in issues] == ["/0/default"]
    assert issues[0].code.startswith("contract.input.")


def test_default_message_names_the_field():
    issues = validate_input_schema([{"name": "i", "label": "Antal", "kind": "integer", "max": 2, "default": 3}])
    assert issues[0].message == "“Antal” must be at most 2."


def test_paths_escape_json_pointer_characters():
    from skriptoteket_ext.contract.issues import pointer
    assert pointer(2, "options", 0, "value") == "/2/options/0/value"
    assert pointer("a/b", "c~d") == "/a~1b/c~0d"
