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


from tests.conftest import private_tmpdir  # noqa: E402
from tests.e2e.api_user import ApiUser  # noqa: E402
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


Author = ApiUser
