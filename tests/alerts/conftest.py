"""Fixtures for the alerts engine: an in-process emulator, a Bot on it, the sample catalog."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
from aiogram import Bot
from redis.asyncio import Redis

from bot.alerts.catalog import Catalog
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from tests.support import KNOWLEDGE
from tests.support.alerts import REDIS_URL, REQUIRE_REDIS
from tests.support.emulator import make_bot


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    """The sample Example City categories and districts."""
    return Catalog.load(KNOWLEDGE)


@pytest.fixture
def emulator_limits() -> Limits:
    """Flood limits off unless a test turns them on."""
    return Limits(enabled=False)


@pytest.fixture
async def emulator(emulator_limits: Limits) -> AsyncIterator[EmulatorServer]:
    """A running emulator."""
    async with EmulatorServer(Emulator(EmulatorConfig(limits=emulator_limits))) as server:
        yield server


@pytest.fixture
async def tg(emulator: EmulatorServer) -> AsyncIterator[Bot]:
    """A real aiogram Bot talking to the emulator."""
    bot = make_bot(emulator)
    try:
        yield bot
    finally:
        await bot.session.close()


@pytest.fixture
async def redis_factory() -> AsyncIterator[Callable[[], Redis]]:
    probe: Redis = Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        await probe.ping()
    except Exception as exc:  # any connection failure means "no Redis here"
        await probe.aclose()
        message = (
            f"Redis not reachable at SAFEWELL_TEST_REDIS_URL ({REDIS_URL}: {exc}); start one "
            "there to test the shared limiter"
        )
        if REQUIRE_REDIS:
            pytest.fail(message)
        pytest.skip(message)
    clients: list[Redis] = [probe]

    def make() -> Redis:
        # A separate client (own connection pool) per simulated process.
        client: Redis = Redis.from_url(REDIS_URL)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()
