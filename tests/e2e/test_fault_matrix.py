"""The crisis path's fault matrix: the bot process is killed with -9 at each stage of a crisis
message's path, in polling and webhook mode, on SQLite and PostgreSQL; and PostgreSQL goes away
for 15 s while a crisis message arrives. In every cell, once the process is back, the citizen
has exactly one crisis reply and the officers exactly one case."""

from __future__ import annotations

import asyncio
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest

from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from bot.failpoints import POINTS
from tests.support.e2e import FORUM_ID, text_of
from tests.support.processes import BotProcess, TcpProxy, free_port

CRISIS = "I want to kill myself tonight"
CRISIS_MARK = "A person from our team is joining you"


@pytest.fixture
def emulator_limits() -> Limits:
    return Limits(enabled=False)


async def outcome(emu: EmulatorClient, citizen: int, name: str) -> tuple[int, int, int]:
    """(crisis replies the citizen got, topics opened for them, case cards in those topics)."""
    replies = [
        e
        for e in await emu.transcript(citizen)
        if e["message"]["from"]["is_bot"] and CRISIS_MARK in text_of(e["message"])
    ]
    topics = {t["message_thread_id"] for t in await emu.topics(FORUM_ID) if name in t["name"]}
    cards = [
        e
        for e in await emu.transcript(FORUM_ID)
        if e["message"]["from"]["is_bot"]
        and e["message"].get("message_thread_id") in topics
        and "Case #" in text_of(e["message"])
    ]
    return len(replies), len(topics), len(cards)


async def exactly_one_of_each(
    emu: EmulatorClient, bot: BotProcess, citizen: int, name: str, within: float = 30
) -> None:
    """Wait for one reply and one case card, then make sure no second one follows."""
    deadline = asyncio.get_running_loop().time() + within
    seen = (0, 0, 0)
    while asyncio.get_running_loop().time() < deadline:
        seen = await outcome(emu, citizen, name)
        if seen >= (1, 1, 1):
            break
        await asyncio.sleep(0.1)
    assert seen == (1, 1, 1), f"{name}: replies, topics, cards = {seen}; log:\n{bot.log()}"
    await asyncio.sleep(2.5)  # longer than a lease: a wrongly repeated update would show now
    assert await outcome(emu, citizen, name) == (1, 1, 1), bot.log()


async def kill_at_each_stage(mode: str, database_url: str, workdir: Path) -> None:
    """One process chain against an emulator of its own: the process restarted after one
    stage's kill is armed for the next stage."""
    server = EmulatorServer(Emulator(EmulatorConfig(limits=Limits(enabled=False))))
    async with server, EmulatorClient(server.base_url) as emu:
        await emu.create_forum(chat_id=FORUM_ID)
        port = free_port() if mode == "webhook" else None
        bot = BotProcess(server, database_url, workdir, FORUM_ID, webhook_port=port)
        try:
            await bot.start()
            for n, stage in enumerate(POINTS):
                citizen, name = 5000 + n, f"Stage{n}"
                await emu.create_user(citizen, first_name=name, language_code="en")
                bot.arm(stage)
                await emu.user(citizen).send(CRISIS)
                status = await bot.killed()
                assert status == -signal.SIGKILL, f"{stage}: exit {status}:\n{bot.log()}"
                await bot.start()
                await exactly_one_of_each(emu, bot, citizen, name)
        finally:
            await bot.stop()


async def test_kill_9_at_each_stage_loses_and_doubles_nothing(
    sqlite_template: Path, pg_db_url: str, another_pg_db_url: str, tmp_path: Path
) -> None:
    # Four chains side by side (polling and webhook, SQLite and PostgreSQL): each mostly waits
    # for its process to start, so together they take about half as long as one after another.
    chains = []
    for mode in ("polling", "webhook"):
        sqlite = tmp_path / f"{mode}.sqlite3"
        shutil.copy(sqlite_template, sqlite)
        postgres = pg_db_url if mode == "polling" else another_pg_db_url
        chains += [
            kill_at_each_stage(mode, f"sqlite+aiosqlite:///{sqlite}", tmp_path / f"{mode}-sqlite"),
            kill_at_each_stage(mode, postgres, tmp_path / f"{mode}-postgres"),
        ]
    await asyncio.gather(*chains)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_postgres_away_for_15_seconds_loses_and_doubles_nothing(
    emulator: EmulatorServer,
    emu: EmulatorClient,
    forum: dict[str, Any],
    pg_db_url: str,
    tmp_path: Path,
    mode: str,
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.start()
    port = free_port() if mode == "webhook" else None
    bot = BotProcess(emulator, proxy.url(pg_db_url), tmp_path, FORUM_ID, webhook_port=port)
    citizen, name = 6000, "Outage"
    await emu.create_user(citizen, first_name=name, language_code="en")
    try:
        await bot.start()
        await proxy.cut()
        await emu.user(citizen).send("what time does the passport office open")
        await emu.user(citizen).send(CRISIS)
        # The crisis reply needs no database: it comes during the outage.
        reply = await emu.wait_bot_message(citizen, timeout=10)
        assert CRISIS_MARK in text_of(reply), bot.log()
        await asyncio.sleep(15)
        await proxy.restore()
        await exactly_one_of_each(emu, bot, citizen, name)
        # The question asked during the outage is answered once the database is back.
        others = [
            e
            for e in await emu.transcript(citizen)
            if e["message"]["from"]["is_bot"] and CRISIS_MARK not in text_of(e["message"])
        ]
        assert len(others) == 1, (others, bot.log())
    finally:
        await bot.stop()
        await proxy.close()
