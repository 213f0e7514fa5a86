"""Fixtures: an emulator on a free loopback port, its control client and an aiogram Bot on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot

from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from tests.support.emulator import make_bot


@pytest.fixture
def limits() -> Limits:
    """Flood limits for the emulator under test; off unless a test turns them on."""
    return Limits(enabled=False)


@pytest.fixture
async def server(limits: Limits) -> AsyncIterator[EmulatorServer]:
    """A running emulator."""
    emulator = Emulator(EmulatorConfig(limits=limits, webhook_retry_base=0.05))
    async with EmulatorServer(emulator) as running:
        yield running


@pytest.fixture
async def emu(server: EmulatorServer) -> AsyncIterator[EmulatorClient]:
    """The control-API client of the running emulator."""
    async with EmulatorClient(server.base_url) as client:
        yield client


@pytest.fixture
async def bot(server: EmulatorServer) -> AsyncIterator[Bot]:
    """A real aiogram Bot pointed at the emulator."""
    instance = make_bot(server)
    try:
        yield instance
    finally:
        await instance.session.close()
