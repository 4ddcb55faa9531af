"""Form: every field kind, initial values, kernel-side validation of values and uploads (contract §4)."""

from __future__ import annotations

import ipywidgets as widgets
import pytest

from runner_kernel.renderer import Form
from runner_kernel.renderer.forms import accepted, safe_name
from skriptoteket_ext.contract import Caps

OPTIONS = [{"value": "a", "label": "Alpha"}, {"value": "b", "label": "Beta"}, {"value": "c", "label": "Gamma"}]
FIELDS = [
    {"name": "title", "label": "Title", "kind": "string", "required": True, "max_length": 5, "help": "Short",
     "placeholder": "e.g. 7B"},
    {"name": "body", "label": "Body", "kind": "text", "default": "Hello"},
    {"name": "count", "label": "Count", "kind": "integer", "min": 1, "max": 5, "default": 2},
    {"name": "ratio", "label": "Ratio", "kind": "number", "min": 0, "placeholder": "0.5"},
    {"name": "shuffle", "label": "Shuffle", "kind": "boolean", "default": True},
    {"name": "mode", "label": "Mode", "kind": "enum", "options": OPTIONS},
    {"name": "sure", "label": "Sure", "kind": "enum", "options": OPTIONS, "required": True, "default": "b"},
    {"name": "tags", "label": "Tags", "kind": "multi_enum", "options": OPTIONS, "default": ["c", "a"]},
]


def upload(form: Form, *files: tuple[str, bytes], mime: str = "") -> None:
    """What the browser does: the FileUpload's value arrives as JSON through the widget's deserializer."""
    view = next(v for v in form.views.values() if v.kind == "file")
    view.input.set_state({"value": [{"name": n, "type": mime, "size": 1, "content": c, "last_modified": 0}
                                    for n, c in files]})


def messages(issues, lang="en"):
    return [i.translated(lang) for i in issues]


def test_every_kind_gets_its_widget_label_help_and_markers():
    form = Form(FIELDS + [{"name": "f", "label": "Files", "kind": "file", "accept": [".csv"], "max": 3}])
    v = form.views
    assert isinstance(v["title"].input, widgets.Text) and v["title"].input.placeholder == "e.g. 7B"
    assert isinstance(v["body"].input, widgets.Textarea)
    assert isinstance(v["count"].input, widgets.Text) and isinstance(v["ratio"].input, widgets.Text)
    assert isinstance(v["shuffle"].input, widgets.Checkbox)
    assert isinstance(v["mode"].input, widgets.Dropdown)
    assert all(isinstance(c, widgets.Checkbox) for c in v["tags"].input.children)
    upload_widget = v["f"].input
    assert isinstance(upload_widget, widgets.FileUpload) and upload_widget.accept == ".csv" and upload_widget.multiple
    html = "".join(w.value for view in v.values() for w in view.children if isinstance(w, widgets.HTML))
    assert 'Title<abbr class="skr-required" title="required">*</abbr>' in html
    assert "Short" in html and "At most 5 characters." in html
    assert "From 1 to 5." in html and "At least 0." in html and "Accepted files: .csv." in html
    assert "skr-field-integer" in v["count"]._dom_classes and "skr-field-name-count" in v["count"]._dom_classes
    assert "skr-form" in form._dom_classes


def test_defaults_are_initial_values():
    assert Form(FIELDS).values() == {"title": "", "body": "Hello", "count": "2", "ratio": "", "shuffle": True,
                                     "mode": None, "sure": "b", "tags": ["a", "c"]}


def test_enum_has_an_empty_choice_unless_required_with_a_default():
    form = Form(FIELDS)
    assert form.views["mode"].input.options[0] == ("— choose —", None)
    assert [value for _, value in form.views["sure"].input.options] == ["a", "b", "c"]
    required_no_default = Form([{"name": "e", "label": "E", "kind": "enum", "options": OPTIONS, "required": True}])
    assert required_no_default.views["e"].input.value is None  # no silent first-option answer
    assert messages(required_no_default.validate()[1]) == ["“E” is required."]


def test_many_multi_enum_options_use_select_multiple():
    options = [{"value": f"v{i}", "label": f"L{i}"} for i in range(30)]
    form = Form([{"name": "m", "label": "M", "kind": "multi_enum", "options": options, "default": ["v3", "v1"]}])
    assert isinstance(form.views["m"].input, widgets.SelectMultiple)
    assert form.values() == {"m": ["v1", "v3"]}


def test_validate_returns_normalized_values():
    form = Form(FIELDS)
    form.views["title"].input.value = "  7B  "
    form.views["ratio"].input.value = "0.25"
    form.views["mode"].input.value = "c"
    normalized, issues = form.validate()
    assert issues == []
    assert normalized == {"title": "7B", "body": "Hello", "count": 2, "ratio": 0.25, "shuffle": True, "mode": "c",
                          "sure": "b", "tags": ["a", "c"]}
    assert form.summary.value == ""


def test_bad_values_are_shown_next_to_fields_and_in_a_summary():
    form = Form(FIELDS)
    form.views["title"].input.value = "much too long"
    form.views["count"].input.value = "9"
    form.views["ratio"].input.value = "lots"
    normalized, issues = form.validate()
    assert [i.path for i in issues] == ["/title", "/count", "/ratio"]
    assert "at most 5 characters" in form.views["title"].error.value
    assert "“Count” must be at most 5." in form.views["count"].error.value
    assert "“Ratio” must be a number." in form.views["ratio"].error.value
    assert "skr-field-invalid" in form.views["count"]._dom_classes
    assert form.summary.value.count("<li>") == 3
    form.views["title"].input.value, form.views["count"].input.value, form.views["ratio"].input.value = "ok", "3", ""
    assert form.validate()[1] == []
    assert form.views["count"].error.value == "" and "skr-field-invalid" not in form.views["count"]._dom_classes


def test_required_string_blank_is_reported():
    assert messages(Form(FIELDS).validate()[1]) == ["“Title” is required."]


def test_hostile_widget_values_are_rejected_in_the_kernel():
    form = Form(FIELDS)
    form.views["title"].input.value = "ok"
    # what a tampered page could send for the dropdown is limited by the widget, but the kernel checks anyway
    form.views["count"].input.value = "1" * 5000
    form.views["ratio"].input.value = "1e999"
    assert [i.path for i in form.validate()[1]] == ["/count", "/ratio"]


def test_prefill_is_initial_only_and_never_overrides_user_edits():
    form = Form(FIELDS, prefill={"title": "pre", "count": 4})
    assert form.values()["title"] == "pre" and form.values()["count"] == "4"
    form.views["title"].input.value = "mine"
    form.apply_prefill({"title": "again", "body": "new body"})
    assert form.values()["title"] == "mine"  # edited: kept
    assert form.values()["body"] == "new body"  # untouched: takes the new initial value


def test_values_win_over_prefill_over_default_and_misfits_fall_through():
    form = Form(FIELDS, values={"count": 5, "mode": "zzz"}, prefill={"count": 3, "mode": "a"})
    assert form.values()["count"] == "5" and form.values()["mode"] == "a"
    assert Form(FIELDS, prefill={"count": "not a number"}).values()["count"] == "2"


def test_settings_forms_keep_whitespace():
    form = Form([{"name": "sep", "label": "Separator", "kind": "string"}], settings=True, values={"sep": " ; "})
    assert form.validate() == ({"sep": " ; "}, [])


# --- files ---

FILE_FIELD = {"name": "docs", "label": "Documents", "kind": "file", "accept": [".csv", "application/pdf"],
              "min": 1, "max": 2}


def test_files_are_read_with_measured_sizes_and_safe_names():
    form = Form([FILE_FIELD])
    upload(form, ("../../etc/passwd.csv", b"a,b\n1,2\n"), ("C:\\Users\\x\\report.pdf", b"%PDF"))
    assert form.files() == [{"name": "passwd.csv", "bytes": 8, "content": b"a,b\n1,2\n"},
                            {"name": "report.pdf", "bytes": 4, "content": b"%PDF"}]
    assert form.validate() == ({}, [])
    assert "passwd.csv" in form.views["docs"].file_list.value


def test_file_count_is_checked():
    form = Form([FILE_FIELD])
    assert messages(form.validate()[1]) == ["“Documents”: upload at least 1 file(s) (0 uploaded)."]
    upload(form, ("a.csv", b"1"), ("b.csv", b"2"), ("c.csv", b"3"))
    assert "upload at most 2 file(s)" in form.views["docs"].error.value  # shown as soon as files are picked
    assert messages(form.validate()[1]) == ["“Documents”: upload at most 2 file(s) (3 uploaded)."]


def test_reused_session_files_count_towards_the_minimum():
    assert Form([FILE_FIELD]).validate(reused_files=1)[1] == []


def test_file_accept_is_checked_by_extension_or_mime_type_from_the_name():
    form = Form([FILE_FIELD])
    upload(form, ("evil.exe", b"MZ"), mime="application/pdf")  # the browser's claimed type is not trusted
    assert messages(form.validate()[1]) == ["“evil.exe” is not an accepted file type (.csv, application/pdf)."]
    assert accepted("REPORT.PDF", ["application/pdf"]) and accepted("x.CSV", [".csv"])
    assert accepted("photo.jpg", ["image/*"]) and not accepted("photo.jpg", ["image/png"])
    assert not accepted("pdf", [".pdf"]) and not accepted("a.csv.exe", [".csv"])


def test_file_sizes_are_checked_per_file_and_in_all():
    caps = Caps.from_dict({"upload_file_bytes": 10, "upload_run_bytes": 15})
    form = Form([{**FILE_FIELD, "accept": None}], caps=caps, lang="sv")
    upload(form, ("a.csv", b"x" * 11), ("b.csv", b"x" * 8))
    assert messages(form.validate()[1], "sv") == [
        "”a.csv” är 11 B; varje fil får vara högst 10 B.",
        "Filerna är 19 B tillsammans; högst 15 B kan laddas upp per körning.",
    ]


def test_file_cap_on_count_even_without_field_max():
    caps = Caps.from_dict({"upload_max_files": 2})
    form = Form([{"name": "f", "label": "F", "kind": "file"}], caps=caps)
    upload(form, ("a", b""), ("b", b""), ("c", b""))
    assert messages(form.validate()[1]) == ["“F”: upload at most 2 file(s) (3 uploaded)."]


def test_single_file_field_is_not_multiple():
    form = Form([{"name": "f", "label": "F", "kind": "file", "max": 1}])
    assert not form.views["f"].input.multiple and form.views["f"].input.description == "Choose a file"


def test_unreadable_upload_entries_are_errors_not_crashes():
    form = Form([{"name": "f", "label": "F", "kind": "file"}])
    # a tampered message: content that is not binary data
    form.views["f"].input.set_state({"value": [{"name": "a.csv", "type": "", "size": 1, "content": "zzz",
                                                "last_modified": 0}]})
    assert form.files() == []
    assert messages(form.validate()[1]) == ["A chosen file could not be read. Choose it again."]


def test_safe_name():
    assert safe_name("../../x.csv") == "x.csv" and safe_name("..") == "file" and safe_name("a\x00b.txt") == "ab.txt"


# --- language, disabling ---

def test_swedish_form():
    form = Form(FIELDS, lang="sv")
    assert form.views["mode"].input.options[0] == ("— välj —", None)
    html = "".join(w.value for w in form.views["count"].children if isinstance(w, widgets.HTML))
    assert "Från 1 till 5." in html
    form.validate()
    assert "”Title” måste fyllas i." in form.views["title"].error.value
    assert "Kontrollera formuläret:" in form.summary.value


def test_disabled_form_disables_every_input():
    form = Form(FIELDS)
    form.disabled = True
    assert form.views["title"].input.disabled and all(c.disabled for c in form.views["tags"].input.children)
    form.disabled = False
    assert not form.views["mode"].input.disabled


def test_service_issues_can_be_shown():
    form = Form(FIELDS)
    form.show_issues([{"path": "/title", "message": "Already taken."}, {"path": "", "message": "Try later."}])
    assert "Already taken." in form.views["title"].error.value
    assert "Try later." in form.summary.value
