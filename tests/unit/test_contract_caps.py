import pytest

from skriptoteket_ext.contract import DEFAULT_CAPS, Caps


def test_defaults_match_the_spec():
    caps = Caps()
    assert caps.outputs_max == 50
    assert caps.next_actions_max == 10
    assert caps.action_fields_max == 25
    assert (caps.enum_options_max, caps.multi_enum_options_max) == (100, 200)
    assert caps.notice_message_bytes == 8 * 1024
    assert caps.markdown_bytes == 64 * 1024
    assert caps.html_bytes == 96 * 1024
    assert (caps.table_rows_max, caps.table_columns_max, caps.table_cell_bytes) == (750, 40, 512)
    assert (caps.json_bytes, caps.json_depth, caps.json_keys_max, caps.json_array_max) == (96 * 1024, 10, 1000, 2000)
    assert (caps.vega_lite_bytes, caps.vega_lite_rows_max) == (512 * 1024, 4000)
    assert (caps.vega_lite_depth, caps.vega_lite_layers_max) == (8, 16)
    assert caps.state_max_bytes == 64 * 1024
    assert caps.payload_max_bytes == 256 * 1024
    assert caps.error_summary_bytes == 20_000
    assert (caps.stdout_bytes, caps.stderr_bytes) == (200_000, 200_000)
    assert (caps.upload_max_files, caps.upload_file_bytes, caps.upload_run_bytes) == (20, 20_000_000, 50_000_000)
    assert DEFAULT_CAPS == caps


def test_from_dict_overrides_some_and_keeps_the_rest():
    caps = Caps.from_dict({"outputs_max": 5, "upload_max_files": 3})
    assert caps.outputs_max == 5
    assert caps.upload_max_files == 3
    assert caps.markdown_bytes == 64 * 1024
    assert Caps.from_dict(None) == Caps()


def test_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="unknown cap\\(s\\): outputs_maxx"):
        Caps.from_dict({"outputs_maxx": 5})


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "10"])
def test_caps_must_be_positive_integers(value):
    with pytest.raises(ValueError, match="outputs_max"):
        Caps.from_dict({"outputs_max": value})


def test_payload_budget_has_a_floor():
    with pytest.raises(ValueError, match="payload_max_bytes"):
        Caps(payload_max_bytes=100)


def test_caps_are_frozen_and_round_trip():
    caps = Caps()
    with pytest.raises(Exception):
        caps.outputs_max = 1  # type: ignore[misc]
    assert Caps.from_dict(caps.to_dict()) == caps
