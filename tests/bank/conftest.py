"""A warm kernel pool for the bank's sample runs (kernels are single-use, so sharing the pool is safe)."""

from __future__ import annotations

import pytest

from runner_kernel import KernelPool, RunLimits, Runner


@pytest.fixture(scope="session")
async def bank_pool():
    async with KernelPool(size=2, limits=RunLimits(timeout=60)) as pool:
        await pool.wait_ready()
        yield pool


@pytest.fixture
async def bank_runner(bank_pool):
    return Runner(bank_pool)
