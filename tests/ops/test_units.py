"""Small pieces without a platform: the runner host's busy answer, log redaction and the JSON format."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest

from runner_kernel import runner_host
from skriptoteket_ext.logging import JsonFormatter, redact, redact_path


async def test_runner_host_answers_busy_when_its_queue_is_full(tmp_path, monkeypatch):
    monkeypatch.setenv("SKRIPTOTEKET_RUNNER_MAX_QUEUE", "2")
    host = runner_host.RunnerHost(pool_size=1, base_dir=str(tmp_path))
    host.prepare()
    server = await asyncio.start_unix_server(host._serve, path=str(host.socket_path))
    try:
        host.active = 3  # one running + two waiting
        with pytest.raises(runner_host.RunnerUnavailable, match="busy"):
            await runner_host.request({"op": "run", "run": {"source": "x"}}, timeout=10)
        assert host.stats["busy"] == 1
    finally:
        server.close()
        monkeypatch.delenv(runner_host.ENV_DIR, raising=False)


def test_redaction():
    token = "0123456789abcdef0123456789abcdef"
    assert token not in redact(f"GET /x?token={token}&a=1")
    assert token not in redact(f"headers: {{'Authorization': 'token {token}'}}")
    assert token not in redact(f"Bearer {token}")
    assert "pw" not in redact("postgresql+psycopg://user:pw@host:5432/db").split("@")[0].split(":")[-1]
    assert redact_path(f"/hub/oauth_callback?code={token}&state={token}") == \
        "/hub/oauth_callback?code=[redacted]&state=[redacted]"
    assert redact_path("/services/skriptoteket/api/v1/runs?limit=5") == "/services/skriptoteket/api/v1/runs?limit=5"


def test_json_lines():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("skr-test-json")
    log.addHandler(handler)
    log.propagate = False
    log.warning("login with token %s", "0123456789abcdef0123456789abcdef", extra={"correlation_id": "abc", "status": 401})
    entry = json.loads(stream.getvalue())
    assert entry["level"] == "warning" and entry["logger"] == "skr-test-json" and entry["correlation_id"] == "abc"
    assert entry["status"] == 401 and "0123456789abcdef" not in entry["message"] and entry["time"].endswith("+00:00")
