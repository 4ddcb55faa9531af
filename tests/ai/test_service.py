"""AI assistance through the real platform (hub, proxy, service, Postgres) and the real ``openai`` client,
against the fake OpenAI-compatible server: what an author gets, and what they never get."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from runner_kernel import KernelPool, RunLimits, Runner, RunRequest
from skriptoteket_ext.ai.diff import apply_diff
from skriptoteket_ext.ai.prompts import contract_reference
from skriptoteket_ext.contract import validate_input_schema, validate_settings_schema

from .conftest import AI_TIMEOUT, Author
from .fake_openai import Reply

pytestmark = [pytest.mark.hub, pytest.mark.timeout(600)]

SOURCE = "def run_tool(input_dir, output_dir):\n    return {'outputs': []}\n"


@pytest.fixture(scope="module")
def people(ai_platform):
    return {
        "amy": Author(ai_platform, "ai-amy", "authors"),
        "bob": Author(ai_platform, "ai-bob", "authors"),
        "cara": Author(ai_platform, "ai-cara", "authors"),
        "dan": Author(ai_platform, "ai-dan", "authors"),
        "tina": Author(ai_platform, "ai-tina"),
        "rita": Author(ai_platform, "ai-rita", "reviewers"),
    }


@pytest.fixture(scope="module")
def tool(people):
    amy = people["amy"]
    tool = amy.ok("POST", "tools", json={"title": "AI tool", "summary": "s", "professions": ["teacher"],
                                         "categories": ["other"]})
    amy.ok("POST", f"tools/{tool['id']}/versions", json={
        "expected_parent": None, "source": SOURCE, "input_schema": [{"kind": "string", "name": "who", "label": "Who"}]})
    return tool


def error_of(r, status, code):
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"]["code"] == code and body["error"]["message"] and body["correlation_id"], body
    return body["error"]


def sse(author, path, body, lang="en"):
    """POST and read the server-sent events as they arrive: [(arrival time, event, data)]."""
    events = []
    headers = author.headers(Accept="text/event-stream", **{"Accept-Language": lang})
    with httpx.stream("POST", f"{author.api}/{path}", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.read()
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((time.monotonic(), name, json.loads(line[6:])))
    return events


def versions(author, tool_id):
    return author.ok("GET", f"tools/{tool_id}/versions")["versions"]


# ---- status ---------------------------------------------------------------------------------------------------

def test_status_tells_which_capabilities_are_on_and_nothing_secret(people):
    r = people["tina"]("GET", "ai/status")  # any user may ask (the notebook's one line)
    assert r.status_code == 200, r.text
    status = r.json()
    assert status["enabled"] is True and set(status["capabilities"]) == {"generate", "edit", "explain", "complete"}
    assert all(c["state"] == "on" for c in status["capabilities"].values())
    assert status["capabilities"]["complete"]["limits"] == {"requests_per_minute": 3, "tokens_per_day": 3000}
    assert "test-key" not in r.text and "127.0.0.1" not in r.text and "fake-model" not in r.text


# ---- generate -------------------------------------------------------------------------------------------------

async def test_a_generated_tool_passes_validation_and_runs_in_the_runner(people, fake, tmp_path):
    r = people["amy"]("POST", "ai/generate", json={"description": "Split a list of names into groups of a size I choose."})
    assert r.status_code == 200, r.text
    tool = r.json()["tool"]
    assert tool["title"] == "Group maker" and r.json()["usage"]["prompt_tokens"] > 0
    assert validate_input_schema(tool["input_schema"]) == [] and validate_settings_schema(tool["settings_schema"]) == []
    compile(tool["source"], "<tool>", "exec")
    sent = fake.requests[-1]
    assert sent["authorization"] == "Bearer test-key" and sent["body"]["model"] == "fake-model"
    assert contract_reference() in sent["body"]["messages"][0]["content"]  # the prompt carries the contract

    async with KernelPool(size=1, limits=RunLimits(timeout=60)) as pool:
        await pool.wait_ready()
        outcome = await Runner(pool).run(RunRequest(
            source=tool["source"], inputs={"names": "Ada\nBea\nCid\nDan\nEve", "group_size": 2},
            artifacts_dir=tmp_path / "artifacts"))
    assert outcome.status == "succeeded", (outcome.error_summary, outcome.stderr)
    kinds = [o["kind"] for o in outcome.envelope["outputs"]]
    assert kinds == ["notice", "table"] and len(outcome.envelope["outputs"][1]["rows"]) == 3
    assert [a["path"] for a in outcome.envelope["artifacts"]] == ["output/groups.csv"] or outcome.envelope["artifacts"]


def test_generate_needs_the_author_role(people):
    error_of(people["tina"]("POST", "ai/generate", json={"description": "x"}), 403, "missing_scope")


def test_an_invalid_generated_tool_is_not_offered(people, fake):
    fake.script(Reply(text="```python skr-source\ndef run_tool(i, o):\n    return {}\n```\n```json skr-input-schema\n"
                           '[{"kind": "enum", "name": "x", "label": "X"}]\n```\n'))
    err = error_of(people["amy"]("POST", "ai/generate", json={"description": "x"}), 422, "ai_invalid_tool")
    assert err["details"]["issues"][0]["path"].startswith("/input_schema/0")


# ---- edit -----------------------------------------------------------------------------------------------------

def test_an_edit_is_a_diff_that_applies_to_the_current_content(people, tool):
    amy = people["amy"]
    before = versions(amy, tool["id"])
    current = {"source": SOURCE, "input_schema": '[{"kind": "string", "name": "who", "label": "Who"}]',
               "settings_schema": None, "usage_instructions": ""}
    r = amy("POST", f"tools/{tool['id']}/ai/edit", json={"instruction": "Greet the user", "current": current})
    assert r.status_code == 200, r.text
    [change] = r.json()["changes"]
    assert change["field"] == "source" and change["diff"].startswith("--- a/source\n+++ b/source\n@@")
    assert apply_diff(SOURCE, change["diff"]) == change["proposed"] == "# Change requested: Greet the user\n" + SOURCE
    # without `current`, the draft head is the base
    r = amy("POST", f"tools/{tool['id']}/ai/edit", json={"instruction": "Again"})
    assert apply_diff(SOURCE, r.json()["changes"][0]["diff"]).startswith("# Change requested: Again\n")
    assert versions(amy, tool["id"]) == before  # a proposal; nothing saved


def test_only_maintainers_reviewers_and_admins_may_use_the_assistant_on_a_tool(people, tool):
    body = {"instruction": "x"}
    # the tool is unpublished: invisible (404) to anyone without authoring rights on it, like every tool API
    # (teachers lack the author role altogether)
    for who, status, code in (("bob", 404, "tool_not_found"), ("tina", 403, "missing_scope")):
        error_of(people[who]("POST", f"tools/{tool['id']}/ai/edit", json=body), status, code)
        error_of(people[who]("POST", f"tools/{tool['id']}/ai/explain", json={"error": "x"}), status, code)
        error_of(people[who]("POST", f"tools/{tool['id']}/ai/complete", json={"source": "x"}), status, code)
    assert people["rita"]("POST", f"tools/{tool['id']}/ai/edit", json=body).status_code == 200


# ---- explain, streamed ----------------------------------------------------------------------------------------

def test_a_streamed_explanation_arrives_in_parts(people, tool, fake):
    fake.script(Reply(text="The name x is not defined. Define x before line 2.",
                      chunks=["The name x ", "is not defined. ", "Define x ", "before line 2."], chunk_delay=0.3))
    events = sse(people["amy"], f"tools/{tool['id']}/ai/explain",
                 {"error": "Tool execution failed (NameError).", "logs": "NameError: name 'x' is not defined"})
    names = [e[1] for e in events]
    assert names[0] == "start" and names[-1] == "result" and "error" not in names
    deltas = [e for e in events if e[1] == "delta"]
    assert len(deltas) >= 2
    assert events[-1][0] - deltas[0][0] > 0.5  # the first part was with the client long before the end
    assert "".join(d[2]["text"] for d in deltas) == events[-1][2]["explanation"]


# ---- failures of the model: a clear message, nothing offered --------------------------------------------------

FAILURES = [
    (Reply(status=429, error_message="Rate limit reached for requests"), 503, "ai_upstream_busy"),
    (Reply(status=500, error_message="The server had an error while processing your request"), 502, "ai_upstream_error"),
    (Reply(delay=AI_TIMEOUT + 2), 504, "ai_timeout"),
    (Reply(raw=b"<html>502 Bad Gateway</html>", raw_stream=[b"data: {not json\n\n"]), 502, "ai_bad_answer"),
    (Reply(text="Here you go:\n```python skr-source\ndef run_tool(input_dir, output_dir:\n```\n"), 422, "ai_invalid_tool"),
]


@pytest.mark.parametrize("reply,status,code", FAILURES, ids=[f[2] + str(i) for i, f in enumerate(FAILURES)])
def test_model_failures_give_a_clear_message_and_offer_nothing(people, tool, fake, reply, status, code):
    amy = people["amy"]
    before = versions(amy, tool["id"])
    fake.script(reply)
    r = amy("POST", f"tools/{tool['id']}/ai/edit", json={"instruction": "x", "current": {"source": SOURCE}},
            headers={"Accept-Language": "sv"})
    err = error_of(r, status, code)
    assert "changes" not in r.json() and "Traceback" not in r.text and "Rate limit reached" not in r.text
    assert err["message"].isprintable() and len(err["message"]) < 200
    # the same through the stream: an error event, no result
    fake.script(reply)
    events = sse(amy, f"tools/{tool['id']}/ai/edit", {"instruction": "x", "current": {"source": SOURCE}}, lang="sv")
    assert [e[1] for e in events if e[1] in ("result", "error")] == ["error"]
    assert events[-1][2]["error"]["code"] == code
    assert versions(amy, tool["id"]) == before


def test_messages_are_english_or_swedish(people, tool, fake):
    for lang, word in (("en", "busy"), ("sv", "upptagen")):
        fake.script(Reply(status=429))
        r = people["amy"]("POST", f"tools/{tool['id']}/ai/explain", json={"error": "x"}, headers={"Accept-Language": lang})
        assert word in error_of(r, 503, "ai_upstream_busy")["message"]


# ---- limits ---------------------------------------------------------------------------------------------------

def test_the_rate_limit_trips(people, fake):
    cara = people["cara"]
    tool = cara.ok("POST", "tools", json={"title": "Rate", "summary": "s", "professions": ["teacher"], "categories": ["other"]})
    fake.script(*[Reply(text="x = 1", usage=(10, 5)) for _ in range(3)])
    for _ in range(3):
        r = cara("POST", f"tools/{tool['id']}/ai/complete", json={"source": "def run_tool(i, o):\n    ", "cursor": 24})
        assert r.status_code == 200 and r.json()["completion"] == "x = 1", r.text
    err = error_of(cara("POST", f"tools/{tool['id']}/ai/complete", json={"source": "x"}), 429, "ai_rate_limited")
    assert "3" in err["message"]
    assert cara.ok("GET", "ai/status")["capabilities"]["complete"]["usage"] == {"requests_last_minute": 3,
                                                                               "tokens_last_day": 45}


def test_the_token_budget_trips(people, fake):
    dan = people["dan"]
    tool = dan.ok("POST", "tools", json={"title": "Budget", "summary": "s", "professions": ["teacher"], "categories": ["other"]})
    fake.script(Reply(text="x = 1", usage=(2500, 600)))
    assert dan("POST", f"tools/{tool['id']}/ai/complete", json={"source": "x"}).status_code == 200
    error_of(dan("POST", f"tools/{tool['id']}/ai/complete", json={"source": "x"}), 429, "ai_budget_exhausted")


# ---- all off --------------------------------------------------------------------------------------------------

def test_with_every_capability_off_status_says_off_and_endpoints_answer_off(platform):
    amy = Author(platform, "ai-off-amy", "authors")
    status = amy.ok("GET", "ai/status")
    assert status["enabled"] is False and status["message"] == "AI assistance is off."
    assert {c["state"] for c in status["capabilities"].values()} == {"off"}
    tool = amy.ok("POST", "tools", json={"title": "Off", "summary": "s", "professions": ["teacher"], "categories": ["other"]})
    calls = [("ai/generate", {"description": "d"}), (f"tools/{tool['id']}/ai/edit", {"instruction": "i"}),
             (f"tools/{tool['id']}/ai/explain", {"error": "e"}), (f"tools/{tool['id']}/ai/complete", {"source": "s"})]
    for path, body in calls:
        err = error_of(amy("POST", path, json=body), 503, "ai_off")
        assert "off" in err["message"]
        err = error_of(amy("POST", path, json={**body, "stream": True}, headers={"Accept-Language": "sv"}), 503, "ai_off")
        assert "avstängd" in err["message"]


def test_model_calls_are_counted_by_capability_and_outcome(ai_platform, tool, fake):
    """skriptoteket_ai_calls_total in the service's Prometheus metrics (docs/operations.md), read as an admin."""
    reviewer, admin = Author(ai_platform, "ai-rhea", "reviewers"), Author(ai_platform, "admin")

    def count(outcome: str) -> float:
        text = httpx.get(f"{ai_platform.service_url}/metrics", headers=admin.headers(), timeout=30).text
        line = f'skriptoteket_ai_calls_total{{capability="explain",outcome="{outcome}"}} '
        return next((float(x[len(line):]) for x in text.splitlines() if x.startswith(line)), 0.0)

    before = {outcome: count(outcome) for outcome in ("succeeded", "failed")}
    fake.script(Reply(text="The name x is not defined."))
    assert reviewer("POST", f"tools/{tool['id']}/ai/explain", json={"error": "NameError"}).status_code == 200
    fake.script(Reply(status=500, error_message="boom"))
    assert reviewer("POST", f"tools/{tool['id']}/ai/explain", json={"error": "NameError"}).status_code == 502
    assert count("succeeded") == before["succeeded"] + 1 and count("failed") == before["failed"] + 1
