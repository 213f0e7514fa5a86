"""The durable intake on both databases: each update handled once, in order per chat, retried,
parked, taken over from a dead process, and kept on disk while the database is away."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot, Dispatcher, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message, Update
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import IntakeSettings
from bot.db.models import InboxUpdate, ProcessedUpdate, utcnow
from bot.db.session import create_engine, create_sessionmaker
from bot.i18n import Locales
from bot.intake import Intake, UrgentReplies
from bot.triage import Triage
from tests.support import REPO

TOKEN = "123456789:AAH-valid_looking_secret_for_tests_only"
Maker = async_sessionmaker[AsyncSession]


def update(update_id: int, chat_id: int, text: str = "hello") -> Update:
    return Update.model_validate(
        {
            "update_id": update_id,
            "message": {
                "message_id": update_id,
                "date": 1_700_000_000,
                "chat": {"id": chat_id, "type": "private", "first_name": "A"},
                "from": {"id": chat_id, "is_bot": False, "first_name": "A"},
                "text": text,
            },
        }
    )


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def rules() -> Triage:
    return Triage.load(REPO / "knowledge" / "triage", models=False)


@pytest.fixture
async def bot() -> AsyncIterator[Bot]:
    # Nothing here talks to Telegram: the updates are not urgent.
    bot = Bot(TOKEN)
    yield bot
    await bot.session.close()


class Rig:
    """A dispatcher whose one handler records (or fails) the texts it is given."""

    def __init__(self, fail: Callable[[str], bool] = lambda _: False) -> None:
        self.handled: list[tuple[int, str]] = []
        self.fail = fail
        self.dispatcher = Dispatcher()
        router = Router()

        @router.message()
        async def record(message: Message) -> None:
            slow = (message.text or "").startswith("slow")
            await asyncio.sleep(0.5 if slow else random.random() / 100)
            if self.fail(message.text or ""):
                raise RuntimeError("handler bug")
            self.handled.append((message.chat.id, message.text or ""))

        self.dispatcher.include_router(router)

    def intake(
        self,
        bot: Bot,
        sessionmaker: Maker,
        rules: Triage,
        tmp_path: Path,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        **settings: Any,
    ) -> Intake:
        locales = Locales.load(REPO / "knowledge" / "locales", "en")
        replies = UrgentReplies(bot, sessionmaker, lambda lang, key: key)
        options = IntakeSettings(spool_dir=tmp_path / "spool", **settings)
        return Intake(
            self.dispatcher,
            bot,
            sessionmaker,
            rules,
            locales,
            replies,
            options,
            clock=clock,
            owner=owner,
        )


async def quiet(intake: Intake) -> None:
    for _ in range(500):
        if not intake.busy:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the intake did not finish")


async def inbox(sessionmaker: Maker) -> list[InboxUpdate]:
    async with sessionmaker() as session:
        return list((await session.scalars(select(InboxUpdate))).all())


async def test_an_update_is_handled_once_however_often_it_arrives(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    rig = Rig()
    intake = rig.intake(bot, sessionmaker, rules, tmp_path)
    await intake.accept([update(1, 10, "a")])
    await intake.accept([update(1, 10, "a")])  # delivered again before it was handled
    intake.start()
    await quiet(intake)
    await intake.accept([update(1, 10, "a")])  # and again after
    await quiet(intake)
    assert rig.handled == [(10, "a")]
    assert await inbox(sessionmaker) == []
    async with sessionmaker() as session:
        assert list((await session.scalars(select(ProcessedUpdate.update_id))).all()) == [1]
    await intake.close(1)


async def test_one_chats_updates_are_handled_in_order(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    rig = Rig()
    intake = rig.intake(bot, sessionmaker, rules, tmp_path, concurrency=8)
    intake.start()
    batch = [update(n, 100 + n % 4, f"m{n}") for n in range(1, 41)]
    for start in range(0, 40, 5):
        await intake.accept(batch[start : start + 5])
    await quiet(intake)
    for chat in range(100, 104):
        texts = [text for c, text in rig.handled if c == chat]
        assert texts == [f"m{n}" for n in range(1, 41) if 100 + n % 4 == chat]
    assert len(rig.handled) == 40
    await intake.close(1)


async def test_concurrent_deliveries_are_kept_together_once_each(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    """Webhook requests that come in while a batch is being stored share the next commit;
    an update delivered twice among them is kept and handled once."""
    rig = Rig()
    intake = rig.intake(bot, sessionmaker, rules, tmp_path, concurrency=8)
    stores: list[int] = []
    store = intake._store

    async def counted(arrivals: Any, spooled: Any = None) -> Any:
        stores.append(len(arrivals))
        return await store(arrivals, spooled)

    intake._store = counted  # type: ignore[method-assign]
    intake.start()
    deliveries = [[update(n, 200 + n % 5, f"w{n}")] for n in range(1, 31)]
    deliveries.append([update(7, 202, "w7")])  # a retry of update 7 while it is being kept
    await asyncio.gather(*(intake.accept(d) for d in deliveries))
    await quiet(intake)
    assert sorted(rig.handled) == sorted((200 + n % 5, f"w{n}") for n in range(1, 31))
    assert sum(stores) == 30 and len(stores) < 10  # a few commits, not one per request
    await intake.close(1)


async def test_a_failing_update_is_retried_with_backoff_then_parked(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    clock = Clock()
    failures: dict[str, int] = {}

    def fail(text: str) -> bool:
        failures[text] = failures.get(text, 0) + 1
        return text == "always" or (text == "once" and failures[text] == 1)

    rig = Rig(fail)
    intake = rig.intake(bot, sessionmaker, rules, tmp_path, clock, max_attempts=3)
    intake.start()
    await intake.accept([update(1, 10, "once"), update(2, 20, "always")])
    await quiet(intake)
    await intake.tick()  # the backoff has not passed: nothing is taken again
    await quiet(intake)
    assert failures == {"once": 1, "always": 1}
    for _ in range(4):
        clock.now += timedelta(minutes=10)
        await intake.tick()
        await quiet(intake)
    assert rig.handled == [(10, "once")]
    assert failures["always"] == 3  # then parked: never tried again
    [parked] = await inbox(sessionmaker)
    assert parked.update_id == 2 and parked.parked and parked.attempts == 3
    assert "handler bug" in (parked.last_error or "")
    await intake.close(1)


async def test_a_dead_process_updates_are_taken_over_when_the_lease_ends(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    clock = Clock()
    dead = Rig().intake(bot, sessionmaker, rules, tmp_path, clock, lease_seconds=10)
    await dead.accept([update(1, 10, "a"), update(2, 10, "b")])  # kept, never handled
    rig = Rig()
    heir = rig.intake(bot, sessionmaker, rules, tmp_path, clock, lease_seconds=10)
    heir.start()
    await heir.tick()
    await quiet(heir)
    assert rig.handled == []  # the lease still holds
    clock.now += timedelta(seconds=11)
    await heir.tick()
    await quiet(heir)
    assert rig.handled == [(10, "a"), (10, "b")]
    await heir.close(1)


async def test_a_live_process_renews_its_leases_in_time_but_not_on_every_pass(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    clock = Clock()
    # Kept and never handled (not started): still this process's, as a slow update would be.
    alive = Rig().intake(bot, sessionmaker, rules, tmp_path, clock, lease_seconds=9)
    await alive.accept([update(1, 10, "a")])
    rig = Rig()
    heir = rig.intake(bot, sessionmaker, rules, tmp_path, clock, lease_seconds=9)
    heir.start()
    [row] = await inbox(sessionmaker)
    leases = [row.lease_until]
    for _ in range(12):  # 24 seconds, the loop passing every 2: longer than two leases
        clock.now += timedelta(seconds=2)
        await alive.tick()
        await heir.tick()
        [row] = await inbox(sessionmaker)
        leases.append(row.lease_until)
    await quiet(heir)
    assert rig.handled == []  # never taken over from the live process
    renewals = len(set(leases)) - 1
    assert 6 <= renewals <= 8  # every third of a lease (3 s here), not on each of the 12 passes
    await heir.close(1)


async def test_updates_are_kept_on_disk_while_the_database_is_away(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    rig = Rig()
    intake = rig.intake(bot, sessionmaker, rules, tmp_path)
    intake.start()
    away = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    intake.sessionmaker = create_sessionmaker(away)
    try:
        await intake.accept([update(1, 10, "a"), update(2, 20, "b")])
    finally:
        intake.sessionmaker = sessionmaker
        await away.dispose()
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [intake.spool.path.name]
    assert rig.handled == []
    await intake.tick()  # the database is back: the spool is drained into the inbox
    await quiet(intake)
    assert sorted(rig.handled) == [(10, "a"), (20, "b")]
    assert intake.spool.path.stat().st_size == 0
    await intake.close(1)
    assert list((tmp_path / "spool").iterdir()) == []


async def test_a_dead_process_spool_is_drained_by_another(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    dead = Rig().intake(bot, sessionmaker, rules, tmp_path)
    await dead.spool.keep(
        [
            {
                "update": update(7, 70, "left behind").model_dump(
                    mode="json", exclude_unset=True, by_alias=True
                ),
                "urgent": None,
            }
        ]
    )
    assert dead.spool._file is not None
    dead.spool._file.close()  # the process died: its lock on the file is gone
    rig = Rig()
    heir = rig.intake(bot, sessionmaker, rules, tmp_path)
    heir.start()
    await heir.tick()
    await quiet(heir)
    assert rig.handled == [(70, "left behind")]
    assert list((tmp_path / "spool").iterdir()) == []
    await heir.close(1)


async def test_a_batch_waiting_on_its_crisis_reply_keeps_later_batches_behind_it(
    sessionmaker: Maker, rules: Triage, tmp_path: Path
) -> None:
    # Telegram refuses connections: the crisis reply of the first batch is retried, and the
    # batch waits for it (a few seconds) before its updates reach the workers.
    away = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9")))
    rig = Rig()
    intake = rig.intake(away, sessionmaker, rules, tmp_path)
    intake.start()
    try:
        await intake.accept([update(1, 10, "I want to kill myself tonight")])
        await intake.accept([update(2, 10, "hello?"), update(3, 20, "b")])
        await quiet_for(intake, lambda: len(rig.handled) == 3)
        # One chat's messages in the order sent, although the second batch was ready first.
        assert [text for chat, text in rig.handled if chat == 10] == [
            "I want to kill myself tonight",
            "hello?",
        ]
    finally:
        for task in list(intake.replies._sending.values()):
            task.cancel()
        await intake.close(1)
        await away.session.close()


async def quiet_for(intake: Intake, done: Callable[[], bool], seconds: float = 15) -> None:
    for _ in range(int(seconds / 0.02)):
        if done():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("not handled in time")


async def test_an_urgent_arrival_is_marked_urgent_in_the_inbox(
    sessionmaker: Maker, rules: Triage, tmp_path: Path
) -> None:
    """Another process that takes the inbox over after a crash starts with the crisis."""
    away = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9")))
    intake = Rig().intake(away, sessionmaker, rules, tmp_path)  # no workers: nothing handled
    try:
        await intake.accept([update(1, 10, "what time is it"), update(2, 20, "I want to die")])

        async def marks() -> dict[int, bool] | None:
            rows = {row.update_id: row.urgent for row in await inbox(sessionmaker)}
            return rows if rows.get(2) else None

        for _ in range(150):
            if found := await marks():
                break
            await asyncio.sleep(0.02)
        assert found == {1: False, 2: True}
    finally:
        for task in list(intake.replies._sending.values()):
            task.cancel()
        await intake.close(1)
        await away.session.close()


async def test_an_update_leaves_the_inbox_in_the_handlers_own_commit(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    """With the handlers' session middleware, "handled" is committed with their writes: a
    handler whose writes fail to commit leaves its update in the inbox, to be tried again."""
    from bot.db.models import Citizen
    from bot.middlewares import DbSessionMiddleware

    rig = Rig()
    rig.dispatcher = Dispatcher()  # this handler alone
    rig.dispatcher.update.outer_middleware(DbSessionMiddleware(sessionmaker))
    router = Router()

    @router.message()
    async def write(message: Message, session: AsyncSession) -> None:
        # A second row with the same id fails at the middleware's final commit.
        session.add(Citizen(id=message.chat.id, first_name="A"))

    rig.dispatcher.include_router(router)
    intake = rig.intake(bot, sessionmaker, rules, tmp_path, max_attempts=1)
    separately: list[int] = []
    done = intake._done

    async def counted(update_id: int) -> None:
        separately.append(update_id)
        await done(update_id)

    intake._done = counted  # type: ignore[method-assign]
    intake.start()
    await intake.accept([update(1, 31, "first"), update(2, 32, "second")])
    await quiet(intake)
    async with sessionmaker() as session:
        session.add(Citizen(id=33, first_name="B"))
        await session.commit()
    await intake.accept([update(3, 33, "third")])
    await quiet(intake)
    async with sessionmaker() as session:
        handled = set((await session.scalars(select(ProcessedUpdate.update_id))).all())
        citizens = set((await session.scalars(select(Citizen.id))).all())
    assert handled == {1, 2} and citizens == {31, 32, 33}
    left = await inbox(sessionmaker)
    assert [(row.update_id, row.parked) for row in left] == [(3, True)]
    assert separately == []  # no transaction of its own for "handled"
    await intake.close(1)


async def test_ordinary_handling_waits_while_more_updates_are_arriving(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full getUpdates batch says more are waiting at Telegram: the burst is kept and read
    first (a crisis late in it is found sooner), questions wait, but never for long."""
    from bot.intake import inbox as module

    rig = Rig()
    intake = rig.intake(bot, sessionmaker, rules, tmp_path)
    intake.start()
    await intake.accept([update(1, 10, "a")], more=True)
    await asyncio.sleep(0.5)
    assert rig.handled == []
    await intake.accept([update(2, 11, "b")])  # the rest of the burst: handling goes on
    await quiet(intake)
    assert sorted(rig.handled) == [(10, "a"), (11, "b")]
    # Telegram said "more" and then nothing came (a poll failed): the wait has an end.
    monkeypatch.setattr(module, "ARRIVALS_FIRST_MAX", 0.3)
    await intake.accept([update(3, 12, "c")], more=True)
    await quiet_for(intake, lambda: len(rig.handled) == 3, seconds=3)
    await intake.close(1)


async def test_two_processes_keep_one_chats_order(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    """Behind nginx one chat's updates reach both processes in turn: a newer update waits
    while an older one of its chat is being handled by the other process."""
    handled: list[tuple[int, str]] = []
    rigs = [Rig(), Rig()]
    intakes = []
    for name, rig in zip("ab", rigs, strict=True):
        rig.handled = handled  # one transcript: what the citizen would see, in order
        intakes.append(rig.intake(bot, sessionmaker, rules, tmp_path / name, owner=name))
    for intake in intakes:
        intake.start()
    texts = ["slow first", "second", "third", "slow fourth", "fifth"]
    for n, text in enumerate(texts):
        # Telegram sends a chat's next update once the previous one was acknowledged (kept).
        await intakes[n % 2].accept([update(n + 1, 10, text), update(100 + n, 20 + n, "x")])
    for intake in intakes:
        await quiet_for(intake, lambda: len(handled) == 10)
    assert [text for chat, text in handled if chat == 10] == texts
    for intake in intakes:
        await intake.close(1)
    assert await inbox(sessionmaker) == []


async def test_a_failed_update_holds_back_its_chat_until_tried_again(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    """Like Telegram's own webhook delivery: a chat's later updates wait for the retry of
    one that failed (the citizen reads answers in the order asked); other chats go on."""
    clock = Clock()
    tries: dict[str, int] = {}

    def fail(text: str) -> bool:
        tries[text] = tries.get(text, 0) + 1
        return text == "flaky" and tries[text] == 1

    rig = Rig(fail)
    intake = rig.intake(bot, sessionmaker, rules, tmp_path, clock)
    intake.start()
    await intake.accept([update(1, 10, "flaky"), update(2, 10, "after"), update(3, 20, "other")])
    await quiet_for(intake, lambda: (20, "other") in rig.handled)
    await asyncio.sleep(0.3)
    assert (10, "after") not in rig.handled  # waits for "flaky"
    clock.now += timedelta(minutes=1)  # its backoff has passed
    await intake.tick()
    await quiet_for(intake, lambda: len(rig.handled) == 3)
    assert [text for chat, text in rig.handled if chat == 10] == ["flaky", "after"]
    await intake.close(1)


async def test_a_parked_update_of_another_process_holds_back_nothing(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    handled: list[tuple[int, str]] = []
    rigs = [Rig(lambda text: text == "broken"), Rig()]
    intakes = []
    for name, rig in zip("ab", rigs, strict=True):
        rig.handled = handled
        intakes.append(
            rig.intake(bot, sessionmaker, rules, tmp_path / name, owner=name, max_attempts=1)
        )
    for intake in intakes:
        intake.start()
    await intakes[0].accept([update(1, 10, "broken")])
    await quiet(intakes[0])  # failed once: parked
    await intakes[1].accept([update(2, 10, "next")])
    await quiet_for(intakes[1], lambda: handled == [(10, "next")])
    for intake in intakes:
        await intake.close(1)


class _ArrivalDuringWatch:
    """The sessions of one process, running `arrive()` once at the start of the watcher's
    look at the inbox (after it chose which updates to look up): an arrival kept meanwhile."""

    def __init__(self, real: Maker, arrive: Callable[[], Any]) -> None:
        self.real, self.arrive, self.done = real, arrive, False

    def __call__(self) -> Any:
        outer = self

        class Session:
            async def __aenter__(self) -> Any:
                self.inner = await outer.real().__aenter__()
                return self

            async def __aexit__(self, *exc: object) -> None:
                await self.inner.__aexit__(*exc)

            async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
                watching = {c.name for c in getattr(statement, "selected_columns", ())} == {
                    "update_id",
                    "owner",
                }
                if watching and not outer.done:
                    outer.done = True
                    await outer.arrive()
                return await self.inner.execute(statement, *args, **kwargs)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.inner, name)

        return Session()


async def test_an_older_update_found_while_the_watcher_looks_is_still_waited_for(
    sessionmaker: Maker, bot: Bot, rules: Triage, tmp_path: Path
) -> None:
    """Process A waits for chat 10's older update held by B, so its watcher polls the inbox.
    While it looks, A keeps chat 30's second update, whose first B holds: that wait must
    survive the look (it was dropped once, and A answered chat 30 out of order)."""
    handled: list[tuple[int, str]] = []
    rigs = [Rig(), Rig()]
    for rig in rigs:
        rig.handled = handled
    a = rigs[0].intake(bot, sessionmaker, rules, tmp_path / "a", owner="a")
    b = rigs[1].intake(bot, sessionmaker, rules, tmp_path / "b", owner="b")
    a.start()
    b.start()
    await b.accept([update(1, 10, "slow first of 10"), update(3, 30, "slow first of 30")])

    async def arrive() -> None:
        await a.accept([update(4, 30, "second of 30")])

    a.sessionmaker = _ArrivalDuringWatch(sessionmaker, arrive)  # type: ignore[assignment]
    await a.accept([update(2, 10, "second of 10")])  # A waits for B's update 1: it watches
    for intake in (a, b):
        await quiet_for(intake, lambda: len(handled) == 4)
    assert a.sessionmaker.done  # type: ignore[attr-defined]
    assert [text for chat, text in handled if chat == 30] == ["slow first of 30", "second of 30"]
    assert [text for chat, text in handled if chat == 10] == ["slow first of 10", "second of 10"]
    for intake in (a, b):
        await intake.close(1)
