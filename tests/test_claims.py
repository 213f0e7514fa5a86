"""Claims in the database, on both backends: two processes (two owners on one database) never
hold the same work at once, a live holder keeps it by renewing, a dead one's runs out; and an
urgent reply owed in one process and retried by another is sent once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiogram import Bot
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.claims import Claims
from bot.db.models import UrgentReply, UrgentReplyState, utcnow
from bot.intake.replies import UrgentReplies, insert_ignore

Maker = async_sessionmaker[AsyncSession]
TOKEN = "123456789:AAH-valid_looking_secret_for_tests_only"


async def test_one_process_holds_a_claim_and_the_other_waits_for_it(sessionmaker: Maker) -> None:
    first, second = Claims(sessionmaker, 5, owner="a"), Claims(sessionmaker, 5, owner="b")
    async with first.hold("case:1") as held:
        assert held
        async with second.hold("case:1") as other:
            assert not other  # no wait: refused at once
        async with second.hold("case:1", wait=0.3) as other:
            assert not other  # still held after the wait
        async with second.hold("case:2") as other:
            assert other  # other work is free
    async with second.hold("case:1") as other:
        assert other  # released at the end of the block


async def test_a_holder_cancelled_at_shutdown_still_releases(sessionmaker: Maker) -> None:
    """A loop stopped while it holds a case must not leave the case to wait for the lease
    (the next start would wait OFFICERS_CLAIM_SECONDS for its own old claim)."""
    first, second = Claims(sessionmaker, 30, owner="a"), Claims(sessionmaker, 30, owner="b")
    inside = asyncio.Event()

    async def holder() -> None:
        async with first.hold("case:9") as held:
            assert held
            inside.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(holder())
    await inside.wait()
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    async with second.hold("case:9") as other:
        assert other  # released at once, not after 30 s


async def test_a_waiting_process_gets_the_claim_once_released(sessionmaker: Maker) -> None:
    first, second = Claims(sessionmaker, 5, owner="a"), Claims(sessionmaker, 5, owner="b")
    order: list[str] = []

    async def holder() -> None:
        async with first.hold("case:1") as held:
            assert held
            order.append("a in")
            await asyncio.sleep(0.3)
            order.append("a out")

    task = asyncio.create_task(holder())
    await asyncio.sleep(0.05)
    async with second.hold("case:1", wait=3) as held:
        assert held
        order.append("b in")
    await task
    assert order == ["a in", "a out", "b in"]


async def test_a_live_holder_renews_and_a_dead_ones_claim_runs_out(sessionmaker: Maker) -> None:
    live, other = Claims(sessionmaker, 0.3, owner="a"), Claims(sessionmaker, 0.3, owner="b")
    async with live.hold("case:1") as held:
        assert held
        await asyncio.sleep(0.8)  # longer than the lease: renewed meanwhile
        assert not await other.take("case:1")
    dead = Claims(sessionmaker, 0.3, owner="dead")
    assert await dead.take("case:2")  # taken, never renewed nor released (kill -9)
    assert not await other.take("case:2")
    await asyncio.sleep(0.4)
    assert await other.take("case:2")
    assert not await dead.take("case:2")  # back from the dead: it is someone else's now


async def test_two_tasks_of_one_process_do_not_hold_the_same_claim(sessionmaker: Maker) -> None:
    claims = Claims(sessionmaker, 5, owner="a")
    async with claims.hold("case:1") as held:
        assert held
        async with claims.hold("case:1") as again:
            assert not again


class CountingReplies(UrgentReplies):
    """Urgent replies whose sends are counted instead of reaching Telegram."""

    sent: list[int]

    async def send(self, chat_id: int, text: str) -> tuple[bool, int, str | None]:
        await asyncio.sleep(0.1)  # Telegram takes a while
        self.sent.append(chat_id)
        return True, 1, None


async def test_an_urgent_reply_is_sent_by_one_process_only(sessionmaker: Maker) -> None:
    bot = Bot(TOKEN)
    sent: list[int] = []
    processes = []
    for owner in ("a", "b"):
        replies = CountingReplies(bot, sessionmaker, lambda lang, key: key, owner=owner)
        replies.sent = sent
        processes.append(replies)
    try:
        async with sessionmaker() as session:
            await insert_ignore(session, UrgentReply, [processes[0].row(1, 42, "crisis", "en")])
            await session.commit()
        # The process that owes it sends it while the other's loop finds it pending.
        await asyncio.gather(processes[0].deliver([1]), processes[1].tick())
        await asyncio.gather(*(p.wait(5) for p in processes))
        await processes[1].tick()
        await asyncio.gather(*(p.wait(5) for p in processes))
        assert sent == [42]
        async with sessionmaker() as session:
            row = await session.get(UrgentReply, 1)
            assert row is not None and row.state == UrgentReplyState.SENT
    finally:
        await bot.session.close()


async def test_a_dead_processes_urgent_reply_is_taken_over(sessionmaker: Maker) -> None:
    bot = Bot(TOKEN)
    survivor = CountingReplies(bot, sessionmaker, lambda lang, key: key, owner="b")
    survivor.sent = []
    try:
        async with sessionmaker() as session:
            await insert_ignore(session, UrgentReply, [survivor.row(1, 42, "crisis", "en")])
            # Claimed by a process that died while sending.
            await session.execute(
                update(UrgentReply).values(
                    claimed_by="dead", claimed_until=utcnow() + timedelta(seconds=0.3)
                )
            )
            await session.commit()
        await survivor.tick()
        await survivor.wait(5)
        assert survivor.sent == []  # its claim still runs
        await asyncio.sleep(0.4)
        await survivor.tick()
        await survivor.wait(5)
        assert survivor.sent == [42]
        async with sessionmaker() as session:
            state = await session.scalar(select(UrgentReply.state))
        assert state == UrgentReplyState.SENT
    finally:
        await bot.session.close()
