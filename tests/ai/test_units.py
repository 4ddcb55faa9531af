"""The AI package without a model: configuration, answer parsing, tool checks, diffs."""

from __future__ import annotations

import json
import random

import pytest

from skriptoteket_ext.ai import capabilities as caps
from skriptoteket_ext.ai import prompts
from skriptoteket_ext.ai.config import resolve
from skriptoteket_ext.ai.diff import DiffError, apply_diff, make_diff
from skriptoteket_ext.errors import ApiError

from .fake_openai import GENERATED_INPUT_SCHEMA, GENERATED_SOURCE, generated_answer


# ---- configuration --------------------------------------------------------------------------------------------

def test_everything_off_unless_configured():
    settings = resolve({}, env={})
    assert not settings.any_on
    assert {c.state for c in settings.capabilities.values()} == {"off"}
    assert settings["generate"].public() == {"state": "off", "enabled": False}


def test_env_defaults_for_all_and_per_capability_overrides():
    env = {"SKRIPTOTEKET_AI_BASE_URL": "http://llm:8080/v1", "SKRIPTOTEKET_AI_MODEL": "qwen",
           "SKRIPTOTEKET_AI_API_KEY": "sk-secret", "SKRIPTOTEKET_AI_COMPLETE_MODEL": "small",
           "SKRIPTOTEKET_AI_REQUESTS_PER_MINUTE": "5", "SKRIPTOTEKET_AI_EXPLAIN_TIMEOUT": "7.5"}
    s = resolve({}, env=env)
    assert all(c.on for c in s.capabilities.values())
    assert s["generate"].model == "qwen" and s["complete"].model == "small"
    assert s["edit"].requests_per_minute == 5 and s["explain"].timeout == 7.5
    assert "sk-secret" not in repr(s["generate"])  # the key is never in a repr (and so never in a log line)
    assert "sk-secret" not in json.dumps(s["generate"].public())


def test_trait_overrides_env_and_capabilities_list():
    env = {"SKRIPTOTEKET_AI_BASE_URL": "http://llm/v1", "SKRIPTOTEKET_AI_MODEL": "m",
           "SKRIPTOTEKET_AI_CAPABILITIES": "explain,complete"}
    s = resolve({"complete": {"enabled": False}, "generate": {"enabled": True, "tokens_per_day": 10}}, env=env)
    assert [c for c in prompts.FIELD_TAGS] and s["explain"].on and not s["complete"].on and not s["edit"].on
    assert s["generate"].on and s["generate"].tokens_per_day == 10


@pytest.mark.parametrize("trait,reason", [
    ({"generate": {"base_url": "http://x/v1"}}, "model missing"),
    ({"generate": {"model": "m"}}, "base_url missing"),
    ({"generate": {"base_url": "ftp://x", "model": "m"}}, "http"),
    ({"generate": {"base_url": "http://x/v1", "model": "m", "modle": "typo"}}, "unknown keys"),
    ({"generate": {"base_url": "http://x/v1", "model": "m", "timeout": "soon"}}, "could not convert"),
    ({"genrate": {"base_url": "http://x/v1", "model": "m"}}, "unknown capabilities"),
])
def test_misconfigurations_are_reported(trait, reason):
    cap = resolve(trait, env={})["generate"]
    assert cap.state == "misconfigured" and reason in cap.reason


# ---- answers ----------------------------------------------------------------------------------------------------

def test_parse_blocks_tagged_untagged_and_prose():
    text = ("Intro.\n```python skr-source\nx = 1\n```\nMiddle.\n````markdown skr-instructions\n"
            "Use it:\n```\ncode\n```\n````\n```bash\nls\n```\n")
    tagged, untagged, prose = prompts.parse_blocks(text)
    assert tagged == {"skr-source": "x = 1\n", "skr-instructions": "Use it:\n```\ncode\n```\n"}
    assert untagged == [("bash", "ls\n")] and prose == "Intro.\nMiddle."


def test_generate_result_is_a_checked_tool():
    result = caps.generate_result(generated_answer(), "en")
    assert result["tool"]["source"] == GENERATED_SOURCE
    assert result["tool"]["input_schema"] == GENERATED_INPUT_SCHEMA and result["tool"]["settings_schema"] is None
    assert result["tool"]["title"] == "Group maker"
    assert json.loads(result["cells"]["input_schema"]) == GENERATED_INPUT_SCHEMA


@pytest.mark.parametrize("answer,code", [
    ("Sorry, I cannot help with that.", "ai_bad_answer"),
    ("```python skr-source\ndef run_tool(i, o)\n    return {}\n```", "ai_invalid_tool"),  # syntax error
    ("```python skr-source\ndef main():\n    return {}\n```", "ai_invalid_tool"),  # no entrypoint
    ("```python skr-source\ndef run_tool(i, o):\n    return {}\n```\n```json skr-input-schema\n"
     '[{"kind": "colour", "name": "c", "label": "C"}]\n```', "ai_invalid_tool"),  # contract violation
    ("```python skr-source\ndef run_tool(i, o):\n    return {}\n```\n```json skr-input-schema\n[{oops\n```",
     "ai_invalid_tool"),
])
def test_generate_refuses_what_would_not_work(answer, code):
    with pytest.raises(ApiError) as info:
        caps.generate_result(answer, "sv")
    assert info.value.code == code
    if code == "ai_invalid_tool":
        assert info.value.details["issues"] and all(i["message"] for i in info.value.details["issues"])


CURRENT = {"source": "def run_tool(input_dir, output_dir):\n    return {}\n",
           "input_schema": '[\n  {"kind": "string", "name": "who", "label": "Who"}\n]',
           "settings_schema": None, "usage_instructions": "Type a name.", "entrypoint": "run_tool"}


def test_edit_offers_verified_diffs_only_for_real_changes():
    answer = ("Greets.\n```python skr-source\ndef run_tool(input_dir, output_dir):\n"
              "    return 'hello'\n```\n"
              # same schema, other formatting: not a change
              '```json skr-input-schema\n[{"kind": "string", "name": "who", "label": "Who"}]\n```\n')
    result = caps.edit_result(answer, CURRENT, "en")
    assert [c["field"] for c in result["changes"]] == ["source"]
    change = result["changes"][0]
    assert apply_diff(CURRENT["source"], change["diff"]) == change["proposed"]
    assert "-    return {}" in change["diff"] and "+    return 'hello'" in change["diff"]
    assert change["base_sha256"] == caps.sha256(CURRENT["source"])
    assert result["explanation"] == "Greets."


def test_edit_that_breaks_the_tool_is_not_offered():
    answer = "```json skr-input-schema\n[{\"kind\": \"enum\", \"name\": \"x\", \"label\": \"X\"}]\n```\n"
    with pytest.raises(ApiError) as info:
        caps.edit_result(answer, CURRENT, "en")
    assert info.value.code == "ai_invalid_tool"
    assert info.value.details["issues"][0]["path"].startswith("/input_schema/0")


def test_explain_keeps_the_explanation_when_the_fix_is_broken():
    answer = "You forgot a colon.\n```python skr-source\ndef run_tool(i, o)\n```\n"
    result = caps.explain_result(answer, CURRENT, "en")
    assert result["explanation"] == "You forgot a colon." and result["changes"] == [] and result["fix_rejected"]


def test_complete_strips_fences():
    assert caps.complete_result("```python\nreturn 1\n```")["completion"] == "return 1"
    assert caps.complete_result("return 1")["completion"] == "return 1"


def test_requests_are_checked():
    with pytest.raises(ApiError) as info:
        caps.parse_request("generate", {})
    assert info.value.status == 422
    with pytest.raises(ApiError) as info:
        caps.parse_request("complete", {"source": "abc", "cursor": 9})
    assert info.value.status == 422
    assert caps.parse_request("complete", {"source": "abcdef", "cursor": 2}) == {"prefix": "ab", "suffix": "cdef"}
    edit = caps.parse_request("edit", {"instruction": "x", "current": {"source": "s", "input_schema": []}})
    assert edit["current"]["input_schema"] == "[]\n"


def test_prompts_carry_the_contract_reference():
    for messages in (prompts.generate_messages("d", "en"), prompts.edit_messages("i", CURRENT, "sv"),
                     prompts.explain_messages("e", CURRENT, "en"), prompts.complete_messages("a", "b", "en")):
        assert prompts.contract_reference() in messages[0]["content"]
        assert "CONTRACT REFERENCE" in messages[0]["content"]
    assert "Swedish" in prompts.edit_messages("i", CURRENT, "sv")[0]["content"]


# ---- diffs ------------------------------------------------------------------------------------------------------

def test_diffs_round_trip_any_text():
    rng = random.Random(7)
    pieces = ["a\n", "b\n", "def f():\n", "    pass\n", "", "x", "\n"]
    for _ in range(2000):
        old = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        new = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert apply_diff(old, make_diff(old, new, "f")) == new


def test_a_diff_does_not_apply_to_other_content():
    diff = make_diff("a\nb\nc\n", "a\nB\nc\n", "source")
    with pytest.raises(DiffError):
        apply_diff("a\nx\nc\n", diff)


def test_the_notebook_side_speaks_english_and_swedish():
    from runner_kernel.authoring import assistant
    from skriptoteket_ext.i18n import catalog

    en = {k for k in catalog("en") if k.startswith("ai.nb.")}
    assert en and en == {k for k in catalog("sv") if k.startswith("ai.nb.")}
    change = [{"field": "source", "proposed": "x = 1\n", "base_text": "x = 0\n"}]
    assert '"updated": "updated"' in assistant.update_cells_js(change)
    assert '"updated": "uppdaterad"' in assistant.update_cells_js(change, "sv")
    assert assistant.cursor_at("a\nbb\n", 2) == 4 and assistant.cursor_at("a\nbb\n", None) == 5
    with pytest.raises(assistant.AuthoringError, match="ingen rad 3"):
        assistant.cursor_at("a\nbb\n", 3, "sv")
