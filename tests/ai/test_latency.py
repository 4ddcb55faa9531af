"""The proxy's overhead: the same chat completion directly against the fake server (``openai`` client) and
through the service (hub proxy → service → ``openai`` → fake server). Prints medians for docs/ai.md.

Run: .venv/bin/pytest -s tests/ai/test_latency.py
"""

from __future__ import annotations

import statistics
import time

import httpx
import openai
import pytest

from .conftest import Author
from .fake_openai import Reply

pytestmark = [pytest.mark.hub, pytest.mark.timeout(900)]

N = 20
ANSWER = "The name x is not defined; define it before use."


def test_proxy_overhead(ai_platform, fake):
    fake.default_chunk_delay = 0.0
    amy = Author(ai_platform, "lat-amy", "authors")
    bob = Author(ai_platform, "lat-bob", "authors")  # the rate limit (30/min) counts per user: one each
    tools = {who.name: who.ok("POST", "tools", json={"title": "Latency", "summary": "s", "professions": ["teacher"],
                                                     "categories": ["other"]}) for who in (amy, bob)}
    body = {"error": "Tool execution failed (NameError).", "current": {"source": "def run_tool(i, o):\n    return x\n"}}
    direct = openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key, max_retries=0)
    messages = None

    def via_service(stream: bool) -> tuple[float, float]:
        t0 = time.perf_counter()
        first = None
        who = bob if stream else amy
        headers = who.headers(**({"Accept": "text/event-stream"} if stream else {}))
        url = f"{who.api}/tools/{tools[who.name]['id']}/ai/explain"
        with httpx.stream("POST", url, json=body, headers=headers, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if first is None and line.startswith("data:") and ('"text"' in line or not stream):
                    first = time.perf_counter()
        end = time.perf_counter()
        return (first or end) - t0, end - t0

    def direct_call(stream: bool) -> tuple[float, float]:
        t0 = time.perf_counter()
        first = None
        if stream:
            for chunk in direct.chat.completions.create(model="fake-model", messages=messages, stream=True):
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter()
        else:
            direct.chat.completions.create(model="fake-model", messages=messages)
        end = time.perf_counter()
        return (first or end) - t0, end - t0

    fake.script(Reply(text=ANSWER, chunk_delay=0.0))
    via_service(False)  # warm up, and capture the service's prompt so the direct call sends the same
    messages = fake.requests[-1]["body"]["messages"]
    results = {}
    for name, fn in (("direct", direct_call), ("service", via_service)):
        for stream in (False, True):
            samples = []
            for _ in range(N):
                fake.script(Reply(text=ANSWER, chunk_delay=0.0, usage=(1, 1)))
                samples.append(fn(stream))
            results[(name, stream)] = (statistics.median(s[0] for s in samples) * 1000,
                                       statistics.median(s[1] for s in samples) * 1000)
    print("\nmedian ms over", N, "calls (first text, whole answer):")
    for (name, stream), (first, total) in results.items():
        print(f"  {name:8s} {'stream' if stream else 'json  '}  first {first:7.1f}  total {total:7.1f}")
    for stream in (False, True):
        print(f"  overhead {'stream' if stream else 'json  '}: "
              f"{results[('service', stream)][1] - results[('direct', stream)][1]:+.1f} ms total")
