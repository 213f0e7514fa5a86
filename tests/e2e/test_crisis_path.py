"""The crisis path on a bad day, as the citizen and the officers see it: edits, failing sends,
a blocked citizen, and the close of a crisis case."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from bot.db.models import Case, CasePriority, CaseReason, UrgentReply, UrgentReplyState
from bot.emulator.limits import Limits
from tests.support.e2e import (
    FORUM_ID,
    OFFICERS,
    Harness,
    bot_says,
    buttons,
    eventually,
    shared_triage,
    text_of,
    topic_messages,
    topic_of,
)

WANG = next(iter(OFFICERS))
CRISIS = "I want to kill myself tonight"
CRISIS_MARK = "A person from our team is joining you"


@pytest.fixture
def emulator_limits() -> Limits:
    return Limits(enabled=False)


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {"officers": {"loop_seconds": 0.05, "wait_notice_minutes": 60}}


async def crisis_replies(harness: Harness, chat_id: int) -> list[dict[str, Any]]:
    """Every crisis reply the bot sent in a citizen's chat."""
    return [
        e["message"]
        for e in await harness.emu.transcript(chat_id)
        if e["message"]["from"]["is_bot"] and CRISIS_MARK in text_of(e["message"])
    ]


async def cases_of(harness: Harness, citizen_id: int) -> list[Case]:
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        return list(
            (await session.scalars(select(Case).where(Case.citizen_id == citizen_id))).all()
        )


async def test_a_message_edited_into_a_crisis_opens_an_urgent_case(harness: Harness) -> None:
    ann = await harness.new_citizen(1401, "Ann")
    sent = await ann.send("what time does the passport office open")
    await ann.next()  # the FAQ's answer
    await harness.emu.user(ann.id).edit(sent["message_id"], CRISIS)
    reply = await ann.next()
    assert CRISIS_MARK in reply["text"]
    topic = await topic_of(harness, 1)
    card = await bot_says(harness, FORUM_ID, "Case #1", topic["message_thread_id"])
    assert "URGENT" in text_of(card)
    [case] = await cases_of(harness, ann.id)
    assert case.priority == CasePriority.URGENT and case.reason == CaseReason.CRISIS
    await harness.settle()
    assert len(await crisis_replies(harness, ann.id)) == 1


async def test_an_ordinary_edit_still_gets_the_new_messages_only_answer(harness: Harness) -> None:
    bob = await harness.new_citizen(1402, "Bob")
    sent = await bob.send("what time does the passport office open")
    await bob.next()
    await harness.emu.user(bob.id).edit(sent["message_id"], "when does the passport office open")
    assert "new messages" in (await bob.next())["text"]
    assert await cases_of(harness, bob.id) == []


async def test_an_edit_into_a_crisis_during_a_normal_case_makes_it_urgent(
    harness: Harness,
) -> None:
    cai = await harness.new_citizen(1403, "Cai")
    assert "person from our team" in (await cai.say("/human"))["text"]
    topic = await topic_of(harness, 1)
    await bot_says(harness, FORUM_ID, "Case #1", topic["message_thread_id"])
    sent = await cai.send("I need to talk about something")
    await harness.settle()
    await harness.emu.user(cai.id).edit(sent["message_id"], CRISIS)
    assert CRISIS_MARK in (await cai.next())["text"]

    async def urgent() -> bool:
        [case] = await cases_of(harness, cai.id)
        return case.priority == CasePriority.URGENT

    await eventually(urgent)

    async def copy_edited() -> bool:
        return any(
            CRISIS in text_of(m) for m in await topic_messages(harness, topic["message_thread_id"])
        )

    await eventually(copy_edited)


# A 429 is obeyed inside the bot's session (RetryAfterMiddleware): one attempt of ours.
@pytest.mark.parametrize(
    ("fault", "attempts"), [("server_error", 3), ("drop", 3), ("retry_after", 1)]
)
async def test_the_crisis_reply_is_delivered_through_telegram_failures(
    harness: Harness, fault: str, attempts: int
) -> None:
    dan = await harness.new_citizen(1404, "Dan")
    # The first two tries fail: a 502, a dropped connection, or a 429 with retry_after 1.
    await harness.emu.add_fault("sendMessage", fault, count=2, chat_id=dan.id, retry_after=1)
    await dan.send(CRISIS)
    reply = await dan.next(timeout=15)
    assert CRISIS_MARK in reply["text"]
    topic = await topic_of(harness, 1)
    await bot_says(harness, FORUM_ID, "Case #1", topic["message_thread_id"])
    await harness.settle(20)
    assert len(await crisis_replies(harness, dan.id)) == 1
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        [row] = (await session.scalars(select(UrgentReply))).all()
    assert row.state == UrgentReplyState.SENT and row.attempts == attempts


async def test_a_crisis_reply_that_cannot_reach_the_citizen_is_told_in_the_topic(
    harness: Harness,
) -> None:
    eve = await harness.new_citizen(1405, "Eve")
    await harness.emu.add_fault(
        "sendMessage",
        "error",
        count=1,
        chat_id=eve.id,
        status=403,
        description="Forbidden: bot was blocked by the user",
    )
    await eve.send(CRISIS)
    topic = await topic_of(harness, 1)
    note = await bot_says(
        harness, FORUM_ID, "could NOT reach the citizen", topic["message_thread_id"], within=10
    )
    assert "blocked" in text_of(note)
    assert await crisis_replies(harness, eve.id) == []


async def test_closing_a_crisis_case_leaves_the_crisis_line_and_asks_no_rating(
    harness: Harness,
) -> None:
    fay = await harness.new_citizen(1406, "Fay")
    assert CRISIS_MARK in (await fay.say(CRISIS))["text"]
    topic = await topic_of(harness, 1)
    tid = topic["message_thread_id"]
    await bot_says(harness, FORUM_ID, "Case #1", tid)
    await harness.emu.user(WANG).send("/claim", chat_id=FORUM_ID, thread_id=tid)
    await bot_says(harness, FORUM_ID, "took this case", tid)
    await harness.emu.user(WANG).send("/close talked, safe now", chat_id=FORUM_ID, thread_id=tid)
    closing = await fay.next()
    assert "closed" in closing["text"]
    assert "400-000-0000" in closing["text"] and "110" in closing["text"]
    assert buttons(closing) == ["💬 Talk to the officer again"]  # no stars, a way back


async def test_closing_an_ordinary_case_still_asks_for_a_rating(harness: Harness) -> None:
    gus = await harness.new_citizen(1407, "Gus")
    await gus.say("/human")
    topic = await topic_of(harness, 1)
    tid = topic["message_thread_id"]
    await bot_says(harness, FORUM_ID, "Case #1", tid)
    await harness.emu.user(WANG).send("/close", chat_id=FORUM_ID, thread_id=tid)
    closing = await gus.next()
    assert "400-000-0000" not in closing["text"]
    assert "5 ⭐" in buttons(closing)


async def test_a_crisis_said_across_short_messages_is_read_together(harness: Harness) -> None:
    hal = await harness.new_citizen(1408, "Hal")
    await hal.send("thank you for everything")
    await harness.settle()
    assert await crisis_replies(harness, hal.id) == []  # one message alone is not a crisis
    await hal.send("goodbye")
    reply = await hal.next()
    while CRISIS_MARK not in reply["text"]:
        reply = await hal.next()
    topic = await topic_of(harness, 1)
    card = await bot_says(harness, FORUM_ID, "Case #1", topic["message_thread_id"])
    assert "across_messages" in text_of(card)
    [case] = await cases_of(harness, hal.id)
    assert case.reason == CaseReason.CRISIS


async def test_pinyin_and_spaced_letters_reach_an_officer(harness: Harness) -> None:
    ivy = await harness.new_citizen(1409, "Ivy", language_code="zh")
    assert "110" in (await ivy.say("wo bu xiang huo le"))["text"]
    jon = await harness.new_citizen(1410, "Jon")
    assert CRISIS_MARK in (await jon.say("k i l l  m y s e l f"))["text"]
    for case_no in (1, 2):
        topic = await topic_of(harness, case_no)
        await bot_says(harness, FORUM_ID, f"Case #{case_no}", topic["message_thread_id"])


EMERGENCY_MARK = "Call 110 now"
# Being followed, in words no rule catches (tests/triage/test_emergency_model.py checks that):
# only the emergency model finds it.
FOLLOWED = "there's a man who's stayed right behind me for the last five streets"


async def test_an_emergency_only_the_model_finds_gets_the_emergency_reply_and_an_urgent_case(
    harness: Harness,
) -> None:
    assert shared_triage().rules(FOLLOWED).level == "normal"
    gus = await harness.new_citizen(1407, "Gus")
    reply = await gus.say(FOLLOWED)
    assert EMERGENCY_MARK in text_of(reply)
    topic = await topic_of(harness, 1)
    card = await bot_says(harness, FORUM_ID, "Case #1", topic["message_thread_id"])
    assert "URGENT" in text_of(card) and "model_en_e5_emergency" in text_of(card)
    [case] = await cases_of(harness, gus.id)
    assert case.priority == CasePriority.URGENT and case.reason == CaseReason.EMERGENCY
    await harness.settle()
    replies = [
        e["message"]
        for e in await harness.emu.transcript(gus.id)
        if e["message"]["from"]["is_bot"] and EMERGENCY_MARK in text_of(e["message"])
    ]
    assert len(replies) == 1
