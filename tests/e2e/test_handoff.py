"""Crisis triage and the human handoff, as citizens and officers see them in Telegram."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from bot.db import repo
from bot.db.models import AuditLog, Case, CasePriority, CaseReason, utcnow
from bot.emulator.limits import Limits
from tests.support.e2e import (
    ADMIN_ID,
    FORUM_ID,
    OFFICERS,
    OUTSIDER_ID,
    Harness,
    bot_message,
    bot_says,
    buttons,
    callback_answer,
    eventually,
    mentioned,
    text_of,
    topic_messages,
    topic_of,
)

WANG, LI = list(OFFICERS)


@pytest.fixture
def emulator_limits() -> Limits:
    """Group limits off: these tests post more into one forum than 20 a minute."""
    return Limits(enabled=False)


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {"officers": {"loop_seconds": 0.05, "wait_notice_minutes": 60}}


async def officer_says(harness: Harness, officer: int, thread_id: int, text: str) -> dict[str, Any]:
    """An officer writes in a case topic."""
    return await harness.emu.user(officer).send(text, chat_id=FORUM_ID, thread_id=thread_id)


async def open_human_case(harness: Harness, user_id: int, name: str = "Bob") -> tuple[Any, int]:
    """A citizen asks for a person with /human; returns the actor and the topic id."""
    citizen = await harness.new_citizen(user_id, name)
    reply = await citizen.say("/human")
    assert "person from our team" in reply["text"]
    topics = await harness.emu.topics(FORUM_ID)
    case_no = len(topics) + 1
    topic = await topic_of(harness, case_no)
    await bot_says(harness, FORUM_ID, "Case #", topic["message_thread_id"])
    return citizen, topic["message_thread_id"]


async def test_crisis_reply_urgent_topic_and_mention(harness: Harness) -> None:
    ann = await harness.new_citizen(701, "Ann", last_name="Lee", username="annlee")
    await harness.emu.user(WANG).send("/onduty", chat_id=FORUM_ID)
    # Updates from different chats run concurrently: wait until the duty roster has WANG.
    await bot_says(harness, FORUM_ID, "You are on duty")
    reply = await ann.say("I want to kill myself tonight")
    assert "A person from our team is joining you" in reply["text"]
    assert "110" in reply["text"] and "120" in reply["text"]
    assert not buttons(reply)  # never an FAQ answer with feedback buttons
    topic = await topic_of(harness, 1)
    assert topic["name"] == "#1 🔴 URGENT · Ann L."
    tid = topic["message_thread_id"]
    # One message opens the topic: the page (it notifies, so it comes first) and the card.
    # A group takes 20 messages a minute; each saved one is room for the next case.
    card = await harness.emu.wait_bot_message(FORUM_ID, tid)
    assert card["text"].startswith("📣 Urgent case #1")
    assert mentioned(card) == [WANG]  # only the officer on duty
    assert "Case #1" in card["text"] and "@annlee" in card["text"]
    assert "crisis" in card["text"] and "URGENT" in card["text"]
    assert "the message that opened the case follows the card" in card["text"]
    copied = await harness.emu.wait_bot_message(FORUM_ID, tid)
    assert copied["text"] == "I want to kill myself tonight"
    await ann.silence(0.25)  # no FAQ answer follows the crisis reply


async def test_a_crisis_only_the_embedding_model_recognises_still_reaches_officers(
    harness: Harness,
) -> None:
    # No rule matches this third-party alarm; the examples' nearest neighbours do.
    text = "my son sent a message saying sorry for everything and now his phone is off"
    mia = await harness.new_citizen(705, "Mia")
    reply = await mia.say(text)
    assert "A person from our team is joining you" in reply["text"]
    assert not buttons(reply)
    topic = await topic_of(harness, 1)
    assert "🔴 URGENT" in topic["name"]
    card = await harness.emu.wait_bot_message(FORUM_ID, topic["message_thread_id"])
    assert "model_en" in card["text"]
    await mia.silence(0.25)


async def test_emergency_first_then_a_case_and_chinese_crisis_in_chinese(
    harness: Harness,
) -> None:
    ann = await harness.new_citizen(703)
    reply = await ann.say("someone is breaking into my house right now")
    assert reply["text"].startswith("🚨") and "Call 110 now" in reply["text"]
    topic = await topic_of(harness, 1)
    assert "🔴 URGENT" in topic["name"]
    card = await bot_says(harness, FORUM_ID, "Case #1", topic["message_thread_id"])
    assert "emergency" in card["text"]
    li = await harness.new_citizen(702, "李", language_code="zh-hans")
    reply = await li.say("我不想活了")
    assert "工作人员正在加入" in reply["text"] and "110" in reply["text"]
    assert "URGENT" in (await topic_of(harness, 2))["name"]


async def test_human_command_and_faq_button_open_normal_cases(harness: Harness) -> None:
    bob, _ = await open_human_case(harness, 704, "Bob")
    topic = await topic_of(harness, 1)
    assert topic["name"] == "#1 🔵 normal · Bob"
    # A second /human while connected does not open another case.
    again = await bob.say("/human")
    assert "already connected" in again["text"]
    assert len(await harness.emu.topics(FORUM_ID)) == 1

    cat = await harness.new_citizen(705, "Cat")
    reply = await cat.say("what is the airspeed velocity of an unladen swallow")
    await cat.press(reply, "Talk to an officer")
    handed = await cat.next()
    assert "person from our team" in handed["text"]
    topic = await topic_of(harness, 2)
    assert "normal" in topic["name"]
    card = await bot_says(harness, FORUM_ID, "Case #2", topic["message_thread_id"])
    assert "swallow" in card["text"]  # the recent transcript is on the card
    # Opened by a button: no message of the citizen's follows the card, and it says so.
    assert "no message of theirs follows yet" in card["text"]
    assert "the message that opened the case follows" not in card["text"]

    # /cases lists open cases, urgent first, then oldest first, with links to the topics.
    dan = await harness.new_citizen(706, "Urgent Dan")
    await dan.say("I want to end my life")
    await topic_of(harness, 3)
    await harness.emu.user(WANG).send("/cases", chat_id=FORUM_ID)
    listing = await bot_says(harness, FORUM_ID, "Open cases")
    lines = listing["text"].splitlines()
    assert "#3" in lines[1] and "URGENT" in lines[1] and "Urgent D" in lines[1]
    assert "#1" in lines[2] and "#2" in lines[3]
    links = [e["url"] for e in listing.get("entities", []) if e["type"] == "text_link"]
    assert len(links) == 3 and all(link.startswith("https://t.me/c/") for link in links)


async def test_cases_lists_many_open_cases_in_several_whole_messages(harness: Harness) -> None:
    # 230 open cases (delivered to topics already): more than one message holds, more than
    # the listing shows. Every listed line arrives whole; none is cut at 4,096 characters.
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        for n in range(230):
            citizen = await repo.upsert_citizen(
                session,
                800_000 + n,
                first_name=f"Resident{n:03d} of Example City",
                last_name=None,
                username=None,
                telegram_language="en",
            )
            session.add(
                Case(
                    citizen_id=citizen.id,
                    priority=CasePriority.NORMAL,
                    reason=CaseReason.HUMAN,
                    forum_chat_id=FORUM_ID,
                    forum_topic_id=50_000 + n,
                    delivered_at=utcnow(),
                )
            )
        await session.commit()

    # The listing reads the cases with their citizens in one statement, not one per case.
    citizen_reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM citizens" in statement and "FROM cases" not in statement:
            citizen_reads.append(statement)

    engine = harness.app.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        await harness.emu.user(WANG).send("/cases", chat_id=FORUM_ID)
        first = await bot_says(harness, FORUM_ID, "Open cases (230)")
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert len(citizen_reads) < 10, citizen_reads[:3]
    parts = [first]
    while "and 30 more" not in text_of(parts[-1]):
        parts.append(await bot_says(harness, FORUM_ID, lambda m: "Resident" in text_of(m)))
    assert len(parts) > 1
    assert all(len(text_of(p).encode("utf-16-le")) // 2 <= 4096 for p in parts)
    lines = [line for p in parts for line in text_of(p).splitlines() if "Resident" in line]
    assert [line.split("Resident")[1][:3] for line in lines] == [f"{n:03d}" for n in range(200)]
    links = [e for p in parts for e in p.get("entities", []) if e["type"] == "text_link"]
    assert len(links) == 200


async def test_claim_relay_both_ways_edits_and_notes(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 710)
    # The first officer reply claims the case and reaches the citizen as the bot.
    await officer_says(harness, WANG, tid, "Hello, I am here to help.")
    got = await bob.next()
    assert got["text"] == "Hello, I am here to help."
    assert got["from"]["is_bot"] and "forward_origin" not in got
    await bot_says(harness, FORUM_ID, "Officer Wang took this case", tid)

    # Citizen -> topic: text, photo, document, voice, location, sticker.
    sent = await bob.send("My bike was stolen")
    await bob.user.send_photo(b"\x89PNG fake", caption="the lock")
    await bob.user.send_document(b"%PDF-1.4", file_name="receipt.pdf")
    await bob.user.send_voice(b"OggS", duration=2)
    await bob.user.send_location(31.23, 121.47)
    await bob.user.send_sticker("😢")

    async def copies() -> list[dict[str, Any]] | None:
        got = [m for m in await topic_messages(harness, tid) if m["from"]["is_bot"]]
        kinds = {
            k for m in got for k in ("photo", "document", "voice", "location", "sticker") if k in m
        }
        texts = {m.get("text") for m in got}
        return got if len(kinds) == 5 and "My bike was stolen" in texts else None

    copied = await eventually(copies)
    assert any(m.get("text") == "My bike was stolen" for m in copied)
    assert any(m.get("caption") == "the lock" for m in copied)

    # Officer -> citizen: photo, document, voice, location.
    await harness.emu.user(WANG).send_photo(
        b"\x89PNG", caption="map", chat_id=FORUM_ID, thread_id=tid
    )
    await harness.emu.user(WANG).send_document(b"%PDF", chat_id=FORUM_ID, thread_id=tid)
    await harness.emu.user(WANG).send_voice(b"OggS", chat_id=FORUM_ID, thread_id=tid)
    await harness.emu.user(WANG).send_location(31.2, 121.5, chat_id=FORUM_ID, thread_id=tid)
    kinds = set()
    for _ in range(4):
        msg = await bob.next()
        kinds |= {k for k in ("photo", "document", "voice", "location") if k in msg}
    assert kinds == {"photo", "document", "voice", "location"}

    # Edits both ways.
    await bob.user.edit(sent["message_id"], "My e-bike was stolen")

    async def edited_in_topic() -> bool:
        return any(
            m.get("text") == "My e-bike was stolen" for m in await topic_messages(harness, tid)
        )

    await eventually(edited_in_topic)
    mine = await officer_says(harness, WANG, tid, "Which street?")
    await bob.next()
    await harness.emu.user(WANG).edit(mine["message_id"], "Which street, please?", chat_id=FORUM_ID)

    async def edited_for_citizen() -> bool:
        return any(
            e["message"].get("text") == "Which street, please?"
            for e in await harness.emu.transcript(bob.id)
        )

    await eventually(edited_for_citizen)

    # Notes stay internal.
    await officer_says(harness, WANG, tid, "/note caller sounds calm")
    await bot_says(harness, FORUM_ID, "Note saved", tid)
    await bob.silence(0.25)
    citizen_side = [text_of(e["message"]) for e in await harness.emu.transcript(bob.id)]
    assert not any("calm" in t or "Wang" in t for t in citizen_side)


async def test_close_rating_and_reopen(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 720)
    await officer_says(harness, LI, tid, "/claim")
    await bot_says(harness, FORUM_ID, "Officer Li took this case", tid)
    await officer_says(harness, LI, tid, "Is the bike insured?")
    officers_message = await bob.next()
    await officer_says(harness, LI, tid, "/close resolved by phone")
    closing = await bob.next()
    assert "closed" in closing["text"]
    talk_again = "💬 Talk to the officer again"
    assert buttons(closing) == ["1 ⭐", "2 ⭐", "3 ⭐", "4 ⭐", "5 ⭐", talk_again]

    async def topic_closed() -> dict[str, Any] | None:
        topic = await topic_of(harness, 1)
        return topic if topic["is_closed"] else None

    topic = await eventually(topic_closed)
    assert topic["name"].startswith("✅ #1 ")
    # Someone else's forged rating is refused; the citizen's first counts, a second not.
    forged = await harness.emu.inject_callback(
        OUTSIDER_ID, closing["message_id"], "rate:1:1", chat_id=bob.id
    )
    assert "cannot be accepted" in (await callback_answer(harness, forged))["text"]
    first = await bob.press(closing, "5 ⭐")
    assert "Thank you" in (await callback_answer(harness, first))["text"]
    again = await harness.emu.inject_callback(bob.id, closing["message_id"], "rate:1:2")
    assert "cannot be accepted" in (await callback_answer(harness, again))["text"]
    junk = await harness.emu.inject_callback(bob.id, closing["message_id"], "rate:1:99")
    assert (await callback_answer(harness, junk))["show_alert"]
    async with harness.app.sessionmaker() as session:  # type: ignore[union-attr]
        case = await session.get(Case, 1)
        assert case is not None and case.rating == 5 and case.close_note == "resolved by phone"
    rated = await bot_message(harness.emu, bob.id, closing["message_id"])
    assert buttons(rated) == [talk_again]  # the stars went, the way back stays

    # An ordinary question after the close gets its FAQ answer; the case stays closed.
    answer = await bob.say("I lost my ID card, what should I do?")
    assert "ID card" in answer["text"] and "open again" not in answer["text"]
    assert (await topic_of(harness, 1))["is_closed"]

    # A reply to the officer's message brings the case and its topic back.
    await bob.user.send("Sorry, one more thing", reply_to=officers_message["message_id"])
    reopened = await bob.next()
    assert "open again" in reopened["text"]
    # Reopened, then renamed (two calls): wait for the name, not only the open state.
    topic = await eventually(lambda: _open_topic(harness, renamed=True))
    assert topic["name"].startswith("#1 ")
    await bot_says(harness, FORUM_ID, lambda m: m.get("text") == "Sorry, one more thing", tid)

    # Closed again, the button brings it back too.
    await officer_says(harness, LI, tid, "/close")
    closing = await bob.next()
    await eventually(topic_closed)
    await bob.press(closing, talk_again)
    assert "open again" in (await bob.next())["text"]
    await eventually(lambda: _open_topic(harness))


async def _open_topic(harness: Harness, renamed: bool = False) -> dict[str, Any] | None:
    topic = await topic_of(harness, 1)
    if topic["is_closed"] or (renamed and topic["name"].startswith("✅")):
        return None
    return topic


async def test_deleted_topic_is_recreated_with_the_card(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 730)
    await harness.emu.delete_topic(FORUM_ID, tid)
    await bob.send("are you there?")

    async def new_topic() -> dict[str, Any] | None:
        topics = [t for t in await harness.emu.topics(FORUM_ID) if t["message_thread_id"] != tid]
        return topics[0] if topics else None

    topic = await eventually(new_topic)
    new_tid = topic["message_thread_id"]
    card = await bot_says(harness, FORUM_ID, "Case #1", new_tid)
    assert "recreated" in card["text"]
    await bot_says(harness, FORUM_ID, lambda m: m.get("text") == "are you there?", new_tid)
    # Officers' replies in the new topic still reach the citizen.
    await officer_says(harness, WANG, new_tid, "Yes, I am here.")
    assert (await bob.next())["text"] == "Yes, I am here."


async def test_ban_unban_and_block(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 740)
    await officer_says(harness, WANG, tid, "/ban")
    await bot_says(harness, FORUM_ID, "is banned", tid)
    notice = await bob.say("hello?")
    assert "not available to you" in notice["text"]
    await bob.send("hello??")
    await bob.silence(0.25)
    await officer_says(harness, WANG, tid, "/unban")
    await bot_says(harness, FORUM_ID, "no longer banned", tid)
    await bob.send("thanks")
    await bot_says(harness, FORUM_ID, lambda m: m.get("text") == "thanks", tid)
    # A citizen who blocks the bot: the topic says so, also when a reply cannot reach them.
    await bob.user.block()
    await bot_says(harness, FORUM_ID, "blocked the bot", tid)
    await officer_says(harness, WANG, tid, "Are you safe?")
    await bot_says(harness, FORUM_ID, "has blocked the bot", tid)


async def test_a_banned_citizen_in_crisis_still_reaches_the_officers(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 745)
    await officer_says(harness, WANG, tid, "/ban")
    await bot_says(harness, FORUM_ID, "is banned", tid)
    assert "not available to you" in (await bob.say("you are useless"))["text"]
    await bob.send("answer me")
    await bob.silence(0.25)
    # Danger overrides the ban: the crisis reply, and the case becomes urgent.
    reply = await bob.say("I am going to kill myself")
    assert "A person from our team is joining you" in reply["text"]
    await bot_says(harness, FORUM_ID, lambda m: m.get("text") == "I am going to kill myself", tid)
    # The crisis reply goes out on arrival; the handler then upgrades the case and renames
    # its topic, a moment later.

    async def renamed_urgent() -> bool:
        return "URGENT" in (await topic_of(harness, 1))["name"]

    await eventually(renamed_urgent)
    # While the urgent case is open, everything the citizen says reaches the officers.
    await bob.send("I am on the bridge")
    await bot_says(harness, FORUM_ID, lambda m: m.get("text") == "I am on the bridge", tid)
    await officer_says(harness, WANG, tid, "Stay where you are, we are coming.")
    assert (await bob.next())["text"] == "Stay where you are, we are coming."


async def test_non_officers_cannot_act_and_are_not_relayed(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 750)
    for command in ("/claim", "/close", "/cases", "/onduty"):
        await harness.emu.user(OUTSIDER_ID).send(command, chat_id=FORUM_ID, thread_id=tid)
        refusal = await bot_says(harness, FORUM_ID, "Only registered officers", tid)
        assert refusal
    await harness.emu.user(OUTSIDER_ID).send("hi citizen", chat_id=FORUM_ID, thread_id=tid)
    await bot_says(harness, FORUM_ID, "was not sent", tid)
    await bob.silence(0.25)
    assert harness.app is not None
    async with harness.app.sessionmaker() as session:
        actions = (
            await session.scalars(select(AuditLog.action).where(AuditLog.actor_id == OUTSIDER_ID))
        ).all()
    assert actions.count("officer.refused") == 4 and "case.relay.refused" in actions
    # The admin may act.
    await harness.emu.user(ADMIN_ID).send("/claim", chat_id=FORUM_ID, thread_id=tid)
    await bot_says(harness, FORUM_ID, "took this case", tid)
    # General-topic messages carry no is_topic_message: chatter is ignored, case commands
    # are explained, and nothing reaches the citizen.
    await harness.emu.user(WANG).send("morning all", chat_id=FORUM_ID)
    await harness.emu.user(WANG).send("/close", chat_id=FORUM_ID)
    await bot_says(harness, FORUM_ID, "inside a case topic")
    await bob.silence(0.25)


async def test_long_texts_and_floods_still_relayed(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 780)
    long_text = "x" * 3990 + " <b>&"
    await bob.send(long_text)
    for i in range(22):  # past the flood limit (20): still relayed
        await bob.send(f"message {i}")

    async def all_there() -> bool:
        texts = [m.get("text") for m in await topic_messages(harness, tid)]
        return long_text in texts and all(f"message {i}" in texts for i in range(22))

    await eventually(all_there, seconds=10)


async def test_restart_mid_conversation_loses_nothing(harness: Harness) -> None:
    bob, tid = await open_human_case(harness, 790)
    await officer_says(harness, WANG, tid, "Hi")
    assert (await bob.next())["text"] == "Hi"
    await harness.stop()
    # While the bot is down both sides keep writing; Telegram queues the updates.
    await bob.send("while you were away")
    await officer_says(harness, WANG, tid, "still with you")
    await harness.start()
    await bot_says(harness, FORUM_ID, lambda m: m.get("text") == "while you were away", tid)
    got = await bob.next()
    assert got["text"] == "still with you"
    assert len(await harness.emu.topics(FORUM_ID)) == 1


async def test_a_long_edit_of_angle_brackets_reaches_the_topic_whole_and_valid(
    harness: Harness,
) -> None:
    """Escaped, 4,000 "<" are 16,000 characters of "&lt;": the topic's copy is cut by what
    Telegram counts (the visible text, 4,096) and never inside an entity."""
    bob, tid = await open_human_case(harness, 715)
    sent = await bob.send("short first")

    async def copied() -> bool:
        return any(m.get("text") == "short first" for m in await topic_messages(harness, tid))

    await eventually(copied)
    await bob.user.edit(sent["message_id"], "<" * 4000)

    async def edited() -> dict[str, Any] | None:
        return next(
            (m for m in await topic_messages(harness, tid) if (m.get("text") or "")[:1] == "<"),
            None,
        )

    copy = await eventually(edited)
    assert copy["text"] == "<" * 4000  # fits: 4,000 visible characters
    await bob.user.edit(sent["message_id"], "<" * 4095 + "😀")  # 4,097 UTF-16 units

    async def cut() -> dict[str, Any] | None:
        return next(
            (m for m in await topic_messages(harness, tid) if (m.get("text") or "").endswith("…")),
            None,
        )

    copy = await eventually(cut)
    assert copy["text"] == "<" * 4095 + "…"
