"""Crisis triage and the human handoff, as citizens and officers see them in Telegram."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.emulator.limits import Limits
from tests.e2e.conftest import FORUM_ID, OFFICERS, Harness

WANG, LI = list(OFFICERS)


@pytest.fixture
def emulator_limits() -> Limits:
    """Group limits off: these tests post more into one forum than 20 a minute."""
    return Limits(enabled=False)


@pytest.fixture
def settings_overrides() -> dict[str, dict[str, Any]]:
    return {"officers": {"loop_seconds": 0.05, "wait_notice_minutes": 60}}


async def topic_of(harness: Harness, case_no: int, within: float = 5.0) -> dict[str, Any]:
    """The forum topic of a case, once the bot has created it."""
    topics: list[dict[str, Any]] = []
    for _ in range(int(within / 0.02)):
        topics = await harness.emu.topics(FORUM_ID)
        found = [t for t in topics if f"#{case_no} " in t["name"]]
        if found:
            return found[-1]
        await asyncio.sleep(0.02)
    raise AssertionError(f"no topic for case #{case_no}: {topics}")


async def topic_texts(harness: Harness, thread_id: int) -> list[str]:
    transcript = await harness.emu.transcript(FORUM_ID)
    return [
        e["message"].get("text") or e["message"].get("caption") or ""
        for e in transcript
        if e["message"].get("message_thread_id") == thread_id
    ]


def mentioned(message: dict[str, Any]) -> list[int]:
    """User ids a message mentions (tg://user links become text_mention entities)."""
    ids = []
    for entity in message.get("entities", []):
        if entity["type"] == "text_mention":
            # Telegram sends a User object; the emulator may send only its id.
            ids.append(entity["user"]["id"] if "user" in entity else entity["user_id"])
    return ids


async def test_crisis_reply_urgent_topic_and_mention(harness: Harness) -> None:
    ann = await harness.new_citizen(701, "Ann", last_name="Lee", username="annlee")
    await harness.emu.user(WANG).send("/onduty", chat_id=FORUM_ID)
    reply = await ann.say("I want to kill myself tonight")
    assert "A person from our team is joining you" in reply["text"]
    assert "110" in reply["text"] and "120" in reply["text"]
    topic = await topic_of(harness, 1)
    assert topic["name"] == "#1 🔴 URGENT · Ann L."
    card = await harness.emu.wait_bot_message(FORUM_ID, topic["message_thread_id"])
    assert "Case #1" in card["text"] and "@annlee" in card["text"]
    assert "crisis" in card["text"]
    page = await harness.emu.wait_bot_message(FORUM_ID, topic["message_thread_id"])
    assert "Urgent case #1" in page["text"]
    assert mentioned(page) == [WANG]
    copied = await harness.emu.wait_bot_message(FORUM_ID, topic["message_thread_id"])
    assert copied["text"] == "I want to kill myself tonight"
