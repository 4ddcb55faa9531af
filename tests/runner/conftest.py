"""A warm kernel pool shared by the runner tests (kernels are single-use, so sharing the pool is safe)."""

from __future__ import annotations

import os

import pytest

from runner_kernel import KernelPool, RunLimits, Runner, RunRequest

# Secrets in the test process's environment: no tool may ever see them (the pool builds kernel envs from scratch).
PARENT_SECRETS = {
    "JUPYTERHUB_API_TOKEN": "hub-token-do-not-leak",
    "JPY_API_TOKEN": "jpy-token-do-not-leak",
    "SKRIPTOTEKET_DB_PASSWORD": "db-password-do-not-leak",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-do-not-leak",
    "SOME_PARENT_VARIABLE": "parent-only-value",
}


@pytest.fixture(scope="session")
async def pool():
    os.environ.update(PARENT_SECRETS)
    async with KernelPool(size=2, limits=RunLimits(timeout=30)) as pool:
        await pool.wait_ready()
        yield pool


@pytest.fixture
async def runner(pool):
    await pool.wait_ready()  # every test starts from a full pool, whatever the previous one did
    return Runner(pool)


@pytest.fixture
def run(runner, tmp_path):
    async def run(source: str, **kwargs):
        kwargs.setdefault("artifacts_dir", tmp_path / "artifacts")
        return await runner.run(RunRequest(source=source, **kwargs))

    return run
