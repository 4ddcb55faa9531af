"""Fixtures of the AI tests: the fake OpenAI-compatible server (real HTTP, real protocol)."""

from __future__ import annotations

import pytest

from .fake_openai import FakeOpenAI


@pytest.fixture(scope="session")
def fake_openai():
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def fake(fake_openai):
    fake_openai.queue.clear()
    fake_openai.requests.clear()
    yield fake_openai
    fake_openai.queue.clear()


# ---- platforms: one with AI pointed at the fake server, and the ordinary one (AI off) ---------------------------

import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402

from tests.conftest import private_tmpdir  # noqa: E402
from tests.e2e.conftest import _running, platform, start_platform, stop_platform  # noqa: E402,F401

AI_TIMEOUT = 4  # seconds: the timeout test makes the model wait longer


def ai_env(fake) -> dict:
    return {
        "SKRIPTOTEKET_AI_BASE_URL": fake.base_url,
        "SKRIPTOTEKET_AI_API_KEY": fake.api_key,
        "SKRIPTOTEKET_AI_MODEL": "fake-model",
        "SKRIPTOTEKET_AI_TIMEOUT": str(AI_TIMEOUT),
        "SKRIPTOTEKET_AI_REQUESTS_PER_MINUTE": "30",
        "SKRIPTOTEKET_AI_COMPLETE_REQUESTS_PER_MINUTE": "3",
        "SKRIPTOTEKET_AI_COMPLETE_TOKENS_PER_DAY": "3000",
    }


@pytest.fixture(scope="session")
def ai_platform(fake_openai):
    path = Path(private_tmpdir("skr-ai-platform-"))
    running = start_platform(path / "home", extra_env=ai_env(fake_openai))
    _running.append(running)
    yield running
    _running.remove(running)
    stop_platform(running)
    running.postgres.stop(mode="immediate")
    shutil.rmtree(path, ignore_errors=True)


class Author:
    """A user of the service's API with their own hub token."""

    def __init__(self, platform, name, *groups):
        if name != "admin":
            platform.create_user(name, *groups)
        self.name = name
        self.token = platform.token_for(name)
        self.api = f"{platform.service_url}/api/v1"

    def headers(self, **extra) -> dict:
        return {"Authorization": f"token {self.token}", **extra}

    def __call__(self, method, path, **kw):
        headers = self.headers(**kw.pop("headers", {}))
        return httpx.request(method, f"{self.api}/{path}", headers=headers, timeout=60, **kw)

    def ok(self, method, path, **kw):
        r = self(method, path, **kw)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json() if r.content else None
