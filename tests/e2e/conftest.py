"""End-to-end fixtures: the emulator, the officers' forum and the real Safewell application
(`tests.support.e2e.Harness`, which also says how it is built and the helpers tests act with).

Override `settings_overrides` in a test module to change settings, and `emulator_limits` to
change the emulator's flood limits (on by default, as on Telegram).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from tests.support.e2e import ADMIN_ID, BACKUP_ID, FORUM_ID, OFFICERS, OUTSIDER_ID, Harness


@pytest.fixture
def emulator_limits() -> Limits:
    """Telegram's flood limits, on (override in a module to change them)."""
    return Limits()


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    """Extra settings per group, e.g. {"officers": {"repage_minutes": 0.01}}."""
    return {}


@pytest.fixture
async def emulator(emulator_limits: Limits) -> AsyncIterator[EmulatorServer]:
    """A running Bot API emulator on a free loopback port."""
    server = EmulatorServer(Emulator(EmulatorConfig(limits=emulator_limits)))
    async with server:
        yield server


@pytest.fixture
async def emu(emulator: EmulatorServer) -> AsyncIterator[EmulatorClient]:
    """The emulator's control client."""
    async with EmulatorClient(emulator.base_url) as client:
        yield client


@pytest.fixture
async def forum(emu: EmulatorClient) -> dict[str, Any]:
    """The officers' forum supergroup (officers, the admin and one outsider are members)."""
    for user_id, name in {**OFFICERS, ADMIN_ID: "Admin Sun", OUTSIDER_ID: "Visitor"}.items():
        await emu.create_user(user_id, first_name=name, language_code="en")
    members = [*OFFICERS, ADMIN_ID, OUTSIDER_ID]
    await emu.create_group(
        title="Example City backup desk", members=members, chat_id=BACKUP_ID, is_forum=False
    )
    return await emu.create_forum(members=members, admins=[ADMIN_ID], chat_id=FORUM_ID)


@pytest.fixture
async def harness(
    emulator: EmulatorServer,
    emu: EmulatorClient,
    forum: dict[str, Any],
    db_url: str,
    settings_overrides: dict[str, dict[str, Any]],
) -> AsyncIterator[Harness]:
    """The running application; stopped after the test."""
    running = Harness(emulator, emu, db_url, settings_overrides)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()
