"""The notebook side (runner_kernel/authoring/assistant.py) against the real platform and the fake model:
ask, see the streamed answer and the diff, accept → the kernel's tool content changes; off → one line."""

from __future__ import annotations

import html

import pytest

import runner_kernel.authoring as authoring_ext
from runner_kernel.authoring import assistant as ai
from runner_kernel.authoring.library import Authoring
from runner_kernel.authoring.preview import open_preview
from runner_kernel.authoring.service import AuthoringAPI
from skriptoteket_ext.ai.diff import apply_diff

from .conftest import AI_TIMEOUT
from .fake_openai import Reply

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]


def session(platform, name, path):
    if name not in platform.passwords:
        platform.create_user(name, "authors")
    api = AuthoringAPI(platform.token_for(name), api_url=f"{platform.service_url}/api/v1/")
    skr = Authoring(api, notebook=path)
    skr.create_tool("Assistant tool", "s", ["teacher"], ["other"], path=path)
    return skr


def test_propose_edit_streams_shows_a_diff_and_applies_only_on_accept(ai_platform, fake, tmp_path):
    skr = session(ai_platform, "ak-amy", tmp_path / "tool.ipynb")
    assistant = ai.Assistant(skr)
    shown_js = []
    assistant._display_js = shown_js.append
    before = skr.current().source
    texts = []
    fake.script(Reply(text="Added a title.\n```python skr-source\n# greeting\n" + before + "```\n",
                      chunk_delay=0.2))
    answer = assistant.propose_edit("Add a greeting comment", texts.append)
    assert answer.ok and answer.chunks >= 2 and len(texts) >= 2 and texts[-1] == answer.text
    [change] = assistant.proposal.changes
    assert change["field"] == "source" and apply_diff(before, change["diff"]) == "# greeting\n" + before
    assert skr.current().source == before  # shown, not applied
    assert "greeting" in ai.diff_html(assistant.proposal.changes)

    assert assistant.accept() == ["skr-source updated"]
    assert skr.current().source == "# greeting\n" + before  # the kernel's tool content (preview, save) changed
    assert shown_js and "%%skr_source" in shown_js[0] and "# greeting" in shown_js[0]
    assert assistant.accept() == ["Nothing to accept."]


def test_a_stale_proposal_is_not_applied_and_failures_change_nothing(ai_platform, fake, tmp_path):
    skr = session(ai_platform, "ak-bea", tmp_path / "tool.ipynb")
    assistant = ai.Assistant(skr)
    assistant._display_js = lambda code: None
    before = skr.current().source
    assistant.propose_edit("Comment it")
    assert assistant.proposal is not None
    skr.register("skr-source", before + "# the author typed meanwhile\n")
    assert "changed since the proposal" in assistant.accept()[0]
    assert skr.current().source.endswith("# the author typed meanwhile\n")

    # The model fails (429, 500, a timeout, garbage): the panel says so in a sentence; no diff, nothing to accept.
    now = skr.current().source
    for reply, code in ((Reply(status=429), "ai_upstream_busy"), (Reply(status=500), "ai_upstream_error"),
                        (Reply(delay=AI_TIMEOUT + 2), "ai_timeout"),
                        (Reply(raw=b"<html>bad gateway</html>", raw_stream=[b"data: {not json\n\n"]), "ai_bad_answer")):
        fake.script(reply)
        panel = assistant.panel("edit", "again", run=True)
        answer_box, diff_box = panel.children[4], panel.children[5]
        assert assistant.last_answer.error["code"] == code and assistant.proposal is None
        assert "skr-ai-error" in answer_box.value and diff_box.value == ""
        message = assistant.last_answer.error["message"]
        assert html.escape(message) in answer_box.value and 0 < len(message) < 200 and "Traceback" not in message
        assert assistant.accept() == ["Nothing to accept."] and skr.current().source == now


def test_explain_a_failed_preview_outcome(ai_platform, fake, tmp_path):
    skr = session(ai_platform, "ak-cid", tmp_path / "tool.ipynb")
    outcome = {"envelope": {"status": "failed", "error_summary": "Tool execution failed (NameError)."},
               "stderr": "", "traceback": "NameError: name 'x' is not defined"}
    assert ai.failure_of(outcome) == ("Tool execution failed (NameError).", "NameError: name 'x' is not defined")
    assert ai.failure_of({"envelope": {"status": "succeeded"}}) is None
    widget = ai.explain_failure_widget(outcome, skr)
    assert widget is not None
    button = widget.children[1]
    button.click()
    assert "not defined" in widget.children[2].value
    assert fake.requests[-1]["body"]["messages"][1]["content"].count("NameError") >= 2


async def test_a_failed_preview_run_offers_explain_this_failure(ai_platform, fake, tmp_path, monkeypatch):
    skr = session(ai_platform, "ak-fay", tmp_path / "tool.ipynb")
    monkeypatch.setattr(authoring_ext, "_skr", skr)  # the kernel's session, as after %load_ext
    monkeypatch.setattr(ai, "_assistant", None)
    skr.register("skr-source", "def run_tool(input_dir, output_dir):\n    return 1 / 0\n")
    preview = await open_preview(skr, sample=0)
    assert "ZeroDivisionError" in preview.logs.value
    [offer] = preview.explain.children
    button = offer.children[1]
    assert button.description == "Explain this failure"
    fake.script(Reply(text="Division by zero: the code divides 1 by 0 on line 2."))
    button.click()
    assert "Division by zero" in offer.children[2].value
    sent = fake.requests[-1]["body"]["messages"][-1]["content"]
    assert "ZeroDivisionError" in sent and "return 1 / 0" in sent


def test_generate_offers_every_cell(ai_platform, fake, tmp_path):
    skr = session(ai_platform, "ak-dan", tmp_path / "tool.ipynb")
    assistant = ai.Assistant(skr)
    assistant._display_js = lambda code: None
    answer = assistant.generate("Groups from names")
    assert answer.ok
    fields = [c["field"] for c in assistant.proposal.changes]
    assert fields[:2] == ["source", "input_schema"]
    assistant.accept()
    tool = skr.current()
    assert "def run_tool" in tool.source and tool.input_schema[0]["name"] == "names"


def test_with_everything_off_the_assistant_says_so_in_one_line(platform, tmp_path):
    skr = session(platform, "ak-off", tmp_path / "tool.ipynb")
    assistant = ai.Assistant(skr)
    assert assistant.status_line() == "AI assistance is off."
    panel = assistant.panel()
    assert "AI assistance is off." in panel.value and "skr-ai-off" in panel.value
    outcome = {"envelope": {"status": "failed", "error_summary": "x"}}
    assert ai.explain_failure_widget(outcome, skr) is None  # the preview shows nothing extra
    skr.validate(show=False)  # the library keeps working


async def test_with_everything_off_a_failed_preview_shows_no_assistant(platform, tmp_path, monkeypatch):
    skr = session(platform, "ak-off2", tmp_path / "tool.ipynb")
    monkeypatch.setattr(authoring_ext, "_skr", skr)
    monkeypatch.setattr(ai, "_assistant", None)
    skr.register("skr-source", "def run_tool(input_dir, output_dir):\n    return 1 / 0\n")
    preview = await open_preview(skr, sample=0)
    assert "ZeroDivisionError" in preview.logs.value and preview.explain.children == ()
    skr.register("skr-source", "def run_tool(input_dir, output_dir):\n    return {'outputs': []}\n")
    version = skr.save()  # and the author saves a draft as always
    try:
        saved = skr.api.version(skr.current().meta["id"], version["id"])
        assert saved["source"].endswith("return {'outputs': []}\n")
    finally:
        skr.release_lock()


def test_complete_the_source_where_it_ends_or_at_a_line_offered_as_a_diff(ai_platform, fake, tmp_path):
    skr = session(ai_platform, "ak-eve", tmp_path / "tool.ipynb")
    assistant = ai.Assistant(skr)
    assistant._display_js = lambda code: None
    source = "def run_tool(input_dir, output_dir):\n    "
    skr.register("skr-source", source)
    fake.script(Reply(text='return {"outputs": []}\n', usage=(10, 5)))  # complete: 3 calls a minute, 3000 tokens
    answer = assistant.propose_completion()
    assert answer.ok
    sent = fake.requests[-1]["body"]["messages"][-1]["content"]
    assert sent.endswith("def run_tool(input_dir, output_dir):\n    <|CURSOR|>")  # the cursor: the source's end
    [change] = assistant.proposal.changes
    assert apply_diff(source, change["diff"]) == source + 'return {"outputs": []}\n'
    assert skr.current().source == source  # offered, not applied
    assert assistant.accept() == ["skr-source updated"]
    assert skr.current().source == source + 'return {"outputs": []}\n'

    # At the end of line 1 of a longer source: the cursor sits before that line's newline.
    two = "import json\n\ndef run_tool(input_dir, output_dir):\n    return {'outputs': []}\n"
    skr.register("skr-source", two)
    fake.script(Reply(text=", os", usage=(10, 5)))
    assistant.propose_completion(line=1)
    assert "import json<|CURSOR|>\n\ndef run_tool" in fake.requests[-1]["body"]["messages"][-1]["content"]
    assistant.accept()
    assert skr.current().source == two.replace("import json", "import json, os")

    # The magic opens the panel and completes at once; a failure offers nothing.
    fake.script(Reply(status=429))
    panel = assistant.panel("complete", "", run=True)
    assert "skr-ai-error" in panel.children[4].value and assistant.proposal is None
    with pytest.raises(ai.AuthoringError):
        ai.cursor_at(two, 9)
