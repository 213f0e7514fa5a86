"""/privacy and /forget as a citizen uses them in Telegram: what is kept and for how long (as
the settings say), what /forget deletes and the case record that stays; the retention job
runs with the bot."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import (
    RETENTION_NEXT,
    AuditLog,
    Case,
    Citizen,
    FaqQuery,
    Message,
    Subscription,
    WorkClaim,
    utcnow,
)
from bot.emulator.limits import Limits
from tests.support.e2e import FORUM_ID, OFFICERS, Harness, bot_says, buttons, eventually, topic_of

WANG = next(iter(OFFICERS))


@pytest.fixture
def emulator_limits() -> Limits:
    return Limits(enabled=False)


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {
        "officers": {"loop_seconds": 0.05, "wait_notice_minutes": 60},
        "retention": {"messages_days": 14, "faq_queries_days": 0},
    }


async def test_forget_deletes_all_but_the_case_record(harness: Harness) -> None:
    assert harness.app is not None
    ann = await harness.new_citizen(801, "Ann", last_name="Lee", username="annlee")
    answer = await ann.say("I lost my ID card, what should I do?")
    assert "ID card" in answer["text"]
    async with harness.app.sessionmaker() as session:
        session.add(Subscription(citizen_id=801, category="scam-warnings", district="*"))
        await session.commit()
    # A conversation with an officer: a case, then closed.
    assert "person from our team" in (await ann.say("/human"))["text"]
    tid = (await topic_of(harness, 1))["message_thread_id"]
    await bot_says(harness, FORUM_ID, "Case #1", tid)
    await ann.send("my bike was stolen near the station")
    await bot_says(harness, FORUM_ID, "my bike was stolen", tid)
    await harness.emu.user(WANG).send("We will look into it", chat_id=FORUM_ID, thread_id=tid)
    assert (await ann.next())["text"] == "We will look into it"
    await harness.emu.user(WANG).send("/close", chat_id=FORUM_ID, thread_id=tid)
    assert "closed" in (await ann.next())["text"]

    confirm = await ann.say("/forget")
    assert "case records" in confirm["text"]
    assert buttons(confirm) == ["Yes, delete my data", "No, keep it"]
    await ann.press(confirm, "Yes, delete my data")
    done = await ann.next()
    assert done["text"].startswith("Done: your data is deleted")
    assert "case records stay" in done["text"]
    await harness.settle()

    async with harness.app.sessionmaker() as session:
        citizen = await session.get(Citizen, 801)
        assert citizen is not None  # the case points at it; nothing in it says who it was
        assert (citizen.first_name, citizen.last_name, citizen.username) == ("", None, None)
        assert citizen.telegram_language is None and citizen.language is None
        assert (
            await session.scalars(select(FaqQuery).where(FaqQuery.citizen_id == 801))
        ).all() == []
        assert (
            await session.scalars(select(Subscription).where(Subscription.citizen_id == 801))
        ).all() == []
        case = await session.scalar(select(Case).where(Case.citizen_id == 801))
        assert case is not None and case.status == "closed"
        said = (
            await session.execute(
                select(Message.case_id, Message.direction, Message.text).where(
                    Message.citizen_id == 801
                )
            )
        ).all()
        assert all(case_id == case.id for case_id, _, _ in said)  # none outside the case
        assert {text for _, direction, text in said if direction == "citizen"} == {None}
        assert ("officer", "We will look into it") in {(d, t) for _, d, t in said}
        forgot = (
            await session.scalars(select(AuditLog).where(AuditLog.action == "citizen.forget"))
        ).all()
        assert [(a.actor_id, a.target_id, a.details) for a in forgot] == [(801, "801", {})]
    # The forum keeps its topic (Telegram's copy of the record is not the bot's to delete).
    assert (await topic_of(harness, 1))["name"].startswith("✅ #1 ")

    # Someone who never talked to an officer is deleted altogether; "No" deletes nothing.
    bob = await harness.new_citizen(804, "Bob")
    await bob.say("I lost my ID card, what should I do?")
    confirm = await bob.say("/forget")
    await bob.press(confirm, "No, keep it")
    assert (await bob.next())["text"] == "Nothing was deleted."
    confirm = await bob.say("/forget")
    await bob.press(confirm, "Yes, delete my data")
    assert (await bob.next())["text"] == (
        "Done: your data is deleted. Send any message to start again."
    )
    await harness.settle()
    async with harness.app.sessionmaker() as session:
        assert await session.get(Citizen, 804) is None
        assert (
            await session.scalars(select(FaqQuery).where(FaqQuery.citizen_id == 804))
        ).all() == []
        assert (await session.scalars(select(Message).where(Message.citizen_id == 804))).all() == []


async def test_the_retention_job_runs_with_the_bot(harness: Harness) -> None:
    assert harness.app is not None
    assert "retention" in harness.app.workers

    async def next_pass_due() -> object:
        async with harness.app.sessionmaker() as session:  # type: ignore[union-attr]
            return await session.scalar(
                select(WorkClaim.until).where(WorkClaim.name == RETENTION_NEXT)
            )

    due = await eventually(next_pass_due)  # a pass ran at start and set the next one
    assert due > utcnow()


async def test_privacy_says_what_is_kept_as_the_settings_say(harness: Harness) -> None:
    ann = await harness.new_citizen(802, "Ann")
    notice = (await ann.say("/privacy"))["text"]
    assert notice.startswith("What I keep about you, and for how long")
    assert "outside a conversation with an officer" in notice
    assert "kept for 14 days." in notice  # RETENTION_MESSAGES_DAYS=14 in this module
    assert "(to improve them): kept until you send /forget." in notice  # 0: kept until /forget
    assert "kept for 30 days after the alert ends" in notice and "kept for 3 days" in notice
    assert "case records" in notice and "/forget" in notice
    assert "/privacy" in (await ann.say("/help"))["text"]
    li = await harness.new_citizen(803, "李", language_code="zh-hans")
    notice = (await li.say("/privacy"))["text"]
    assert notice.startswith("我保存您的哪些信息、保存多久")
    assert "保存 14 天" in notice and "预警结束后保存 30 天" in notice and "案件记录" in notice
