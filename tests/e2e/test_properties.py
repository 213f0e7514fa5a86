"""Bad input found by a machine: hypothesis writes what citizens send (any Unicode, RTL and
zero-width marks, emoji sequences, 4,096 characters, commands, edits, stickers, photos, forged
button data) and plays it through the emulator into the real application and database.

After every sequence: no update failed or was parked, nothing is left in the inbox, every
background loop is alive, and the citizen's state still works: a known question gets its
answer (or, when the sequence opened a case, reaches the officers' topic).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot import metrics
from bot.db.models import Case, CaseStatus, InboxUpdate
from bot.emulator.client import EmulatorClient
from bot.emulator.core import Emulator, EmulatorConfig
from bot.emulator.limits import Limits
from bot.emulator.server import EmulatorServer
from tests.support.e2e import ADMIN_ID, FORUM_ID, OFFICERS, Harness, eventually

QUESTION = "How do I renew my passport?"
TRICKY = [
    "\u200f",
    "\u200e",
    "\u202e",
    "\u200b",
    "\u2066",
    "👨‍👩‍👧",
    "🏳️‍🌈",
    "a",
    "你",
    "/",
    "<",
    "&",
    " ",
]

texts = st.one_of(
    st.text(min_size=1, max_size=120),
    st.lists(st.sampled_from(TRICKY), min_size=1, max_size=40).map("".join),
    st.builds(
        lambda part, n: (part * n)[:4096], st.text("ab 你", min_size=1, max_size=4), st.just(4096)
    ),
    st.sampled_from(
        [
            "/start",
            "/start sub_x",
            "/human",
            "/forget",
            "/language",
            "/help",
            "/privacy",
            "/subscribe",
            "/alert",
            "/close",
            "/stats",
            "/unknown",
            QUESTION,
            "help me",
        ]
    ),
).filter(lambda text: text.strip() != "")

actions = st.lists(
    st.one_of(
        st.tuples(st.just("text"), texts),
        st.tuples(st.just("edit"), texts),
        st.tuples(st.just("press"), st.text(max_size=64)),
        st.tuples(st.just("sticker"), st.just("")),
        st.tuples(st.just("photo"), st.one_of(st.just(""), texts)),
        st.tuples(st.just("voice"), st.just("")),
    ),
    min_size=1,
    max_size=6,
)


class Running:
    """One application against one emulator, on an event loop of its own, for every example."""

    def __init__(self, db_url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = EmulatorServer(Emulator(EmulatorConfig(limits=Limits(enabled=False))))
        self.ids = itertools.count(71000)
        self.db_url = db_url

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    async def start(self) -> None:
        await self.server.__aenter__()
        self.emu = EmulatorClient(self.server.base_url)
        await self.emu.__aenter__()
        for user_id, name in {**OFFICERS, ADMIN_ID: "Admin Sun"}.items():
            await self.emu.create_user(user_id, first_name=name, language_code="en")
        await self.emu.create_forum(members=[*OFFICERS, ADMIN_ID], chat_id=FORUM_ID)
        self.harness = Harness(self.server, self.emu, self.db_url, {})
        await self.harness.start()

    async def stop(self) -> None:
        await self.harness.stop()
        await self.emu.__aexit__(None, None, None)
        await self.server.__aexit__(None, None, None)


@pytest.fixture
def running(db_url: str) -> Iterator[Running]:
    bot = Running(db_url)
    bot.run(bot.start())
    try:
        yield bot
    finally:
        bot.run(bot.stop())
        bot.loop.close()


def _failed() -> float:
    return sum(
        sample.value
        for family in metrics.UPDATES.collect()
        for sample in family.samples
        if sample.name == "safewell_updates_total" and sample.labels["outcome"] == "failed"
    )


async def _play(bot: Running, steps: list[tuple[str, str]]) -> None:
    harness, emu = bot.harness, bot.emu
    app = harness.app
    assert app is not None
    citizen = await harness.new_citizen(next(bot.ids))
    failed = _failed()
    last_text: int | None = None
    last_bot: int | None = None
    for kind, value in steps:
        if kind == "text":
            last_text = (await citizen.send(value))["message_id"]
        elif kind == "edit" and last_text is not None:
            await citizen.user.edit(last_text, value)
        elif kind == "press":
            transcript = await emu.transcript(citizen.id)
            mine = [e["message"]["message_id"] for e in transcript if e["from_bot"]]
            last_bot = mine[-1] if mine else last_bot
            if last_bot is not None and value:
                await emu.inject_callback(citizen.id, last_bot, value)
        elif kind == "sticker":
            await citizen.user.send_sticker()
        elif kind == "photo":
            await citizen.user.send_photo(caption=value or None)
        elif kind == "voice":
            await citizen.user.send_voice()
    await harness.settle(30)
    assert _failed() == failed, "an update failed"
    async with app.sessionmaker() as session:
        left = await session.scalar(select(func.count()).select_from(InboxUpdate))
        assert left == 0, f"{left} update(s) left in the inbox"
        open_case = await session.scalar(
            select(Case.id).where(Case.citizen_id == citizen.id, Case.status != CaseStatus.CLOSED)
        )
    assert app.dead_loops() == []
    # The citizen's state still works: a known question is answered, or with a case open it
    # reaches the officers' topic.
    watched = citizen.id if open_case is None else FORUM_ID
    seen = len(await emu.transcript(watched))
    await citizen.send(QUESTION)

    async def arrived() -> bool:
        new = (await emu.transcript(watched))[seen:]
        return any("passport" in (e["message"].get("text") or "").lower() for e in new)

    await eventually(arrived, 15)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
@given(steps=actions)
def test_any_input_is_survived(running: Running, steps: list[tuple[str, str]]) -> None:
    running.run(_play(running, steps))
